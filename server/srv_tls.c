#include "srv_tls.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "ts_util.h"

#define CERT_DAYS 3650

static void tls_log_errors(const char *where)
{
	unsigned long e;
	char buf[256];
	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		fprintf(stderr, "%s: %s\n", where, buf);
	}
}

static int tls_add_ext(X509 *cert, int nid, const char *value)
{
	X509V3_CTX v3;
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, cert, cert, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (!ext)
		return 0;
	int ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

static ts_err tls_write_pem(const char *path, EVP_PKEY *key, X509 *cert)
{
	ts_err result = TS_ERR_IO;
	BIO *mem = BIO_new(BIO_s_mem());
	char *data;
	if (!mem)
		return TS_ERR_NOMEM;
	if (key && !PEM_write_bio_PrivateKey(mem, key, NULL, NULL, 0, NULL, NULL))
		goto out;
	if (cert && !PEM_write_bio_X509(mem, cert))
		goto out;
	long n = BIO_get_mem_data(mem, &data);
	result = ts_write_file(path, data, (size_t)n, 0600);
out:
	BIO_free(mem);
	return result;
}

ts_err srv_tls_generate(const char *key_path, const char *cert_path)
{
	ts_err result = TS_ERR_TLS;
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *cert = X509_new();
	unsigned char serial[16];
	char host[256] = "localhost", san[512];
	if (!key || !cert)
		goto out;
	if (ts_random(serial, sizeof(serial)))
		goto out;
	serial[0] &= 0x7f; /* a positive serial */
	BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert))) {
		BN_free(bn);
		goto out;
	}
	BN_free(bn);
	gethostname(host, sizeof(host) - 1);
	X509_set_version(cert, 2);
	X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
	X509_gmtime_adj(X509_getm_notAfter(cert), (long)CERT_DAYS * 86400);
	X509_NAME *name = X509_get_subject_name(cert);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"Tessera", -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)host, -1, -1, 0);
	X509_set_issuer_name(cert, name);
	X509_set_pubkey(cert, key);
	snprintf(san, sizeof(san), "DNS:localhost,IP:127.0.0.1,IP:::1%s%s",
		 strcmp(host, "localhost") ? ",DNS:" : "", strcmp(host, "localhost") ? host : "");
	if (!tls_add_ext(cert, NID_subject_alt_name, san) ||
	    !tls_add_ext(cert, NID_basic_constraints, "critical,CA:FALSE") ||
	    !tls_add_ext(cert, NID_ext_key_usage, "serverAuth"))
		goto out;
	if (!X509_sign(cert, key, EVP_sha256()))
		goto out;
	result = tls_write_pem(key_path, key, NULL);
	if (!result)
		result = tls_write_pem(cert_path, NULL, cert);
out:
	if (result == TS_ERR_TLS)
		tls_log_errors(__func__);
	X509_free(cert);
	EVP_PKEY_free(key);
	return result;
}

ts_err srv_tls_pin(const char *cert_path, unsigned char out[32])
{
	ts_err result = TS_ERR_TLS;
	FILE *f = fopen(cert_path, "r");
	X509 *cert = NULL;
	unsigned char *der = NULL;
	if (!f)
		return TS_ERR_IO;
	cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!cert)
		goto out;
	int n = i2d_PUBKEY(X509_get0_pubkey(cert), &der);
	if (n <= 0)
		goto out;
	ts_sha256(der, (size_t)n, out);
	result = TS_OK;
out:
	OPENSSL_free(der);
	X509_free(cert);
	return result;
}

ts_err srv_tls_context(const char *key_path, const char *cert_path, SSL_CTX **out)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		goto fail;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* TLS 1.2: ECDHE with AEAD only. TLS 1.3 suites are all modern already. */
	if (!SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20"))
		goto fail;
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
					 SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)
		goto fail;
	*out = ctx;
	return TS_OK;
fail:
	tls_log_errors(__func__);
	SSL_CTX_free(ctx);
	return TS_ERR_TLS;
}
