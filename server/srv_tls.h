/* srv_tls: the server's key and certificate, the TLS context, and the public-key pin. */
#ifndef SRV_TLS_H
#define SRV_TLS_H

#include <openssl/ssl.h>

#include "ts_err.h"

/* Makes a P-256 key and a self-signed certificate (10 years; SAN localhost, 127.0.0.1, ::1 and
 * the host name) and writes them as PEM, both files 0600. */
ts_err srv_tls_generate(const char *key_path, const char *cert_path);

/* sha256 of the certificate's SubjectPublicKeyInfo (DER): the pin, raw. */
ts_err srv_tls_pin(const char *cert_path, unsigned char out[32]);

/* A server context: TLS 1.2+ only, forward-secret AEAD ciphers, the given key and chain.
 * The caller frees it with SSL_CTX_free. */
ts_err srv_tls_context(const char *key_path, const char *cert_path, SSL_CTX **out);

#endif
