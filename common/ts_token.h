/* ts_token: the formats of Tessera's bearer tokens and public-key pins.
 *
 * Every token is a prefix naming its kind and 256 random bits in base64url:
 *   session "tss.<43>", API "tsa.<43>", node "tsn.<43>".
 * An enrollment token also carries the server's public-key pin so a node needs nothing else:
 *   "tse1.<43 secret>.<43 pin>", the pin being base64url(sha256(SubjectPublicKeyInfo DER)).
 * The server stores only sha256 of the token's secret part ("tse1.<secret>" or the whole token).
 * A pin is shown to people in curl's form: "sha256//<standard base64>". */
#ifndef TS_TOKEN_H
#define TS_TOKEN_H

#include <stddef.h>

#include "ts_err.h"

#define TS_TOKEN_MAX 128      /* room for any token and its NUL */
#define TS_TOKEN_HASH_HEX 65  /* 64 hex digits and NUL */
#define TS_PIN_MAX 64         /* "sha256//" + 44 base64 + NUL */

#define TS_TOKEN_SESSION "tss"
#define TS_TOKEN_API "tsa"
#define TS_TOKEN_NODE "tsn"
#define TS_TOKEN_ENROLL "tse1"

/* Makes "<prefix>.<random>" into out (TS_TOKEN_MAX bytes). */
ts_err ts_token_make(const char *prefix, char *out);
/* Makes an enrollment token carrying the 32-byte pin digest. */
ts_err ts_token_make_enroll(const unsigned char pin[32], char *out);
/* Splits an enrollment token: secret gets "tse1.<secret>" (what the server hashes), pin gets
 * the curl form. Returns TS_ERR_BAD_REQUEST on anything malformed. */
ts_err ts_token_parse_enroll(const char *token, char *secret, char *pin);
/* sha256 of the token string as hex: what the store keeps. */
void ts_token_hash(const char *token, char out[TS_TOKEN_HASH_HEX]);
/* Formats a pin digest as "sha256//<base64>" into out (TS_PIN_MAX bytes). */
void ts_pin_format(const unsigned char digest[32], char *out);
/* Checks a pin string has the curl form with a 32-byte digest. */
int ts_pin_valid(const char *pin);

#endif
