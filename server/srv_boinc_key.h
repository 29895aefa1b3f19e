/* srv_boinc_key: the BOINC code-signing key and the per-result secrets.
 *
 * BOINC clients run only app files whose <file_signature> verifies against the project's
 * <code_sign_key>: RSA (at most 1024 bits), PKCS#1 type-1 padding with no DigestInfo, over the
 * file's 32-digit lowercase hex MD5 (BOINC's lib/crypt.cpp). That scheme is fixed by every
 * installed client; docs/SECURITY.md says why it is acceptable here. The key lives in the data
 * dir (0600) and never leaves the server: only its public half is sent.
 *
 * The per-result secrets are HMAC-SHA256 of a name under a second random key (also 0600): a
 * download or upload URL for a result is only known to the host it was sent to. */
#ifndef SRV_BOINC_KEY_H
#define SRV_BOINC_KEY_H

#include <stddef.h>

#include "ts_err.h"

#define SRV_BOINC_KEY_FILE "boinc_sign.key"
#define SRV_BOINC_SECRET_FILE "boinc_secret.key"
/* BOINC's text forms: "1024\n" + 8 lines of 64 hex digits + ".\n" (key); 4 lines + ".\n" (sig). */
#define SRV_BOINC_PUBKEY_TEXT 600
#define SRV_BOINC_SIG_TEXT 300
#define SRV_BOINC_MAC_HEX 33 /* 128 bits of the HMAC in hex, NUL included */

typedef struct srv_boinc_key srv_boinc_key;

/* Makes both keys in data_dir unless they exist (tessera-server init, and the first start of a
 * store made before BOINC support). */
ts_err srv_boinc_key_ensure(const char *data_dir);
/* Loads them; NULL *out on failure. */
ts_err srv_boinc_key_load(const char *data_dir, srv_boinc_key **out);
void srv_boinc_key_free(srv_boinc_key *k);

/* The public key in BOINC's text form (NUL-terminated, ends with ".\n"). */
const char *srv_boinc_key_public(const srv_boinc_key *k);
/* BOINC's file signature of data in its text form into out. */
ts_err srv_boinc_key_sign(const srv_boinc_key *k, const void *data, size_t n, char out[SRV_BOINC_SIG_TEXT]);
/* The lowercase hex MD5 of data (BOINC's file checksum). */
void srv_boinc_md5_hex(const void *data, size_t n, char out[33]);
/* The per-result secret of name: 32 lowercase hex digits. */
void srv_boinc_mac(const srv_boinc_key *k, const char *name, char out[SRV_BOINC_MAC_HEX]);
/* Whether mac (any string) is name's secret, compared in constant time. */
int srv_boinc_mac_ok(const srv_boinc_key *k, const char *name, const char *mac);

#endif
