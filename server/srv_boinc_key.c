#include "srv_boinc_key.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "ts_util.h"

#define SIGN_BITS 1024 /* the most a BOINC client takes (its key struct holds 128 bytes) */
#define SIGN_BYTES (SIGN_BITS / 8)
#define SECRET_BYTES 32

struct srv_boinc_key {
	EVP_PKEY *pkey;
	unsigned char secret[SECRET_BYTES];
	char pub[SRV_BOINC_PUBKEY_TEXT];
};

static void key_path(char *out, size_t cap, const char *dir, const char *name)
{
	snprintf(out, cap, "%s/%s", dir, name);
}

/* BOINC's hex layout (lib/crypt.cpp print_hex_data): 32 bytes a line, then ".". */
static size_t hex_lines(const unsigned char *data, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	char *p = out;
	for (size_t i = 0; i < n; i++) {
		*p++ = hex[data[i] >> 4];
		*p++ = hex[data[i] & 15];
		if (i % 32 == 31)
			*p++ = '\n';
	}
	if (n % 32)
		*p++ = '\n';
	memcpy(p, ".\n", 3);
	return (size_t)(p + 2 - out);
}

static ts_err write_pem(EVP_PKEY *pkey, const char *path)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem;
	ts_err result = TS_ERR_INTERNAL;
	if (bio && PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) == 1) {
		long n = BIO_get_mem_data(bio, &pem);
		result = ts_write_file(path, pem, (size_t)n, 0600);
	}
	BIO_free_all(bio);
	return result;
}

ts_err srv_boinc_key_ensure(const char *data_dir)
{
	char path[4096];
	ts_err result = TS_OK;
	key_path(path, sizeof(path), data_dir, SRV_BOINC_KEY_FILE);
	if (access(path, F_OK) != 0) {
		EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)SIGN_BITS);
		result = pkey ? write_pem(pkey, path) : TS_ERR_INTERNAL;
		EVP_PKEY_free(pkey);
	}
	key_path(path, sizeof(path), data_dir, SRV_BOINC_SECRET_FILE);
	if (!result && access(path, F_OK) != 0) {
		unsigned char secret[SECRET_BYTES];
		result = ts_random(secret, sizeof(secret));
		if (!result)
			result = ts_write_file(path, secret, sizeof(secret), 0600);
		OPENSSL_cleanse(secret, sizeof(secret));
	}
	return result;
}

/* The public half as BOINC prints it: bits, then modulus and exponent, each left-padded to 128
 * bytes. */
static ts_err public_text(EVP_PKEY *pkey, char out[SRV_BOINC_PUBKEY_TEXT])
{
	BIGNUM *n = NULL, *e = NULL;
	unsigned char raw[2 * SIGN_BYTES];
	ts_err result = TS_ERR_INTERNAL;
	if (EVP_PKEY_get_bits(pkey) != SIGN_BITS ||
	    !EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) ||
	    !EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e))
		goto out;
	if (BN_bn2binpad(n, raw, SIGN_BYTES) != SIGN_BYTES || BN_bn2binpad(e, raw + SIGN_BYTES, SIGN_BYTES) != SIGN_BYTES)
		goto out;
	int len = snprintf(out, SRV_BOINC_PUBKEY_TEXT, "%d\n", SIGN_BITS);
	hex_lines(raw, sizeof(raw), out + len);
	result = TS_OK;
out:
	BN_free(n);
	BN_free(e);
	return result;
}

ts_err srv_boinc_key_load(const char *data_dir, srv_boinc_key **out)
{
	char path[4096], *pem = NULL, *secret = NULL;
	size_t len = 0, slen = 0;
	srv_boinc_key *k = calloc(1, sizeof(*k));
	ts_err result = k ? TS_OK : TS_ERR_NOMEM;
	*out = NULL;
	key_path(path, sizeof(path), data_dir, SRV_BOINC_KEY_FILE);
	if (!result)
		result = ts_read_file(path, 64 * 1024, &pem, &len);
	key_path(path, sizeof(path), data_dir, SRV_BOINC_SECRET_FILE);
	if (!result)
		result = ts_read_file(path, 1024, &secret, &slen);
	if (!result && slen != SECRET_BYTES)
		result = TS_ERR_INTERNAL;
	if (!result) {
		BIO *bio = BIO_new_mem_buf(pem, (int)len);
		k->pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
		BIO_free(bio);
		memcpy(k->secret, secret, SECRET_BYTES);
		result = k->pkey ? public_text(k->pkey, k->pub) : TS_ERR_INTERNAL;
	}
	if (pem)
		OPENSSL_cleanse(pem, len);
	if (secret)
		OPENSSL_cleanse(secret, slen);
	free(pem);
	free(secret);
	if (result) {
		srv_boinc_key_free(k);
		return result;
	}
	*out = k;
	return TS_OK;
}

void srv_boinc_key_free(srv_boinc_key *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pkey);
	OPENSSL_cleanse(k, sizeof(*k));
	free(k);
}

const char *srv_boinc_key_public(const srv_boinc_key *k)
{
	return k->pub;
}

void srv_boinc_md5_hex(const void *data, size_t n, char out[33])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	/* MD5 only because BOINC's file checksum is MD5; integrity rests on TLS and the signature. */
	if (EVP_Digest(data, n, md, &len, EVP_md5(), NULL) != 1 || len != 16)
		memset(md, 0, 16);
	ts_hex(md, 16, out);
}

ts_err srv_boinc_key_sign(const srv_boinc_key *k, const void *data, size_t n, char out[SRV_BOINC_SIG_TEXT])
{
	char md5[33];
	unsigned char sig[SIGN_BYTES];
	size_t siglen = sizeof(sig);
	srv_boinc_md5_hex(data, n, md5);
	/* No digest set: PKCS#1 v1.5 type-1 padding over the raw 32 bytes of hex, as BOINC's
	 * RSA_private_encrypt does. */
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(k->pkey, NULL);
	ts_err result = TS_ERR_INTERNAL;
	if (pc && EVP_PKEY_sign_init(pc) == 1 && EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1 &&
	    EVP_PKEY_sign(pc, sig, &siglen, (const unsigned char *)md5, 32) == 1 && siglen == SIGN_BYTES) {
		hex_lines(sig, siglen, out);
		result = TS_OK;
	}
	EVP_PKEY_CTX_free(pc);
	return result;
}

void srv_boinc_mac(const srv_boinc_key *k, const char *name, char out[SRV_BOINC_MAC_HEX])
{
	unsigned char mac[32];
	size_t len = 0;
	if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, k->secret, SECRET_BYTES, (const unsigned char *)name,
		       strlen(name), mac, sizeof(mac), &len) || len != 32)
		ts_random(mac, sizeof(mac)); /* a secret nobody can know: every check fails */
	ts_hex(mac, 16, out);
}

int srv_boinc_mac_ok(const srv_boinc_key *k, const char *name, const char *mac)
{
	char want[SRV_BOINC_MAC_HEX];
	if (strlen(mac) != SRV_BOINC_MAC_HEX - 1)
		return 0;
	srv_boinc_mac(k, name, want);
	return ts_ct_equal(want, mac, SRV_BOINC_MAC_HEX - 1);
}
