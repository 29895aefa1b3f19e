#include "ts_token.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "ts_util.h"

#define SECRET_BYTES 32
#define SECRET_B64 43 /* base64url of 32 bytes, no padding */

ts_err ts_token_make(const char *prefix, char *out)
{
	unsigned char raw[SECRET_BYTES];
	char b64[SECRET_B64 + 4];
	ts_err result = ts_random(raw, sizeof(raw));
	if (result)
		return result;
	ts_b64url_encode(raw, sizeof(raw), b64);
	snprintf(out, TS_TOKEN_MAX, "%s.%s", prefix, b64);
	return TS_OK;
}

ts_err ts_token_make_enroll(const unsigned char pin[32], char *out)
{
	char pin64[SECRET_B64 + 4];
	ts_err result = ts_token_make(TS_TOKEN_ENROLL, out);
	if (result)
		return result;
	size_t n = strlen(out);
	out[n++] = '.';
	ts_b64url_encode(pin, 32, pin64);
	memcpy(out + n, pin64, SECRET_B64 + 1);
	return TS_OK;
}

ts_err ts_token_parse_enroll(const char *token, char *secret, char *pin)
{
	size_t plen = strlen(TS_TOKEN_ENROLL);
	if (!token || strlen(token) != plen + 1 + SECRET_B64 + 1 + SECRET_B64)
		return TS_ERR_BAD_REQUEST;
	if (strncmp(token, TS_TOKEN_ENROLL ".", plen + 1) != 0 || token[plen + 1 + SECRET_B64] != '.')
		return TS_ERR_BAD_REQUEST;
	unsigned char raw[SECRET_BYTES + 4];
	char part[SECRET_B64 + 1];
	memcpy(part, token + plen + 1, SECRET_B64);
	part[SECRET_B64] = '\0';
	if (ts_b64url_decode(part, raw, sizeof(raw)) != SECRET_BYTES)
		return TS_ERR_BAD_REQUEST;
	const char *pin64 = token + plen + 1 + SECRET_B64 + 1;
	if (ts_b64url_decode(pin64, raw, sizeof(raw)) != 32)
		return TS_ERR_BAD_REQUEST;
	if (secret) {
		memcpy(secret, token, plen + 1 + SECRET_B64);
		secret[plen + 1 + SECRET_B64] = '\0';
	}
	if (pin)
		ts_pin_format(raw, pin);
	return TS_OK;
}

void ts_token_hash(const char *token, char out[TS_TOKEN_HASH_HEX])
{
	unsigned char d[32];
	ts_sha256(token, strlen(token), d);
	ts_hex(d, 32, out);
}

void ts_pin_format(const unsigned char digest[32], char *out)
{
	memcpy(out, "sha256//", 8);
	EVP_EncodeBlock((unsigned char *)out + 8, digest, 32); /* 44 characters and a NUL */
}

int ts_pin_valid(const char *pin)
{
	if (!pin || strncmp(pin, "sha256//", 8) != 0 || strlen(pin + 8) != 44)
		return 0;
	unsigned char d[40];
	return EVP_DecodeBlock(d, (const unsigned char *)pin + 8, 44) == 33 && pin[8 + 43] == '=';
}
