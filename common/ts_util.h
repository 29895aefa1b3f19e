/* ts_util: small helpers shared by server and client: time, randomness, encodings, files. */
#ifndef TS_UTIL_H
#define TS_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "ts_err.h"

#define TS_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Wall clock in seconds (Unix time) and a monotonic clock in seconds. */
int64_t ts_now(void);
double ts_mono(void);

/* Cryptographically strong random bytes (OpenSSL RAND_bytes). */
ts_err ts_random(void *buf, size_t n);

/* SHA-256 of a buffer, into 32 bytes. */
void ts_sha256(const void *data, size_t n, unsigned char out[32]);

/* base64url without padding. out must hold 4*ceil(n/3)+1 bytes; returns its length. */
size_t ts_b64url_encode(const unsigned char *in, size_t n, char *out);
/* Decodes base64url (no padding); returns the decoded length or -1 on bad input. */
long ts_b64url_decode(const char *in, unsigned char *out, size_t outcap);
/* Standard base64 with padding (the wire form of program outputs). ts_b64_encode returns a
 * malloc'd NUL-terminated string (NULL: out of memory); ts_b64_decode a malloc'd buffer in *out
 * of *outlen bytes, TS_ERR_BAD_REQUEST for text that is not base64 or decodes past cap. */
char *ts_b64_encode(const unsigned char *in, size_t n);
ts_err ts_b64_decode(const char *in, size_t inlen, size_t cap, unsigned char **out, size_t *outlen);
/* 1 when s is 64 lowercase hex digits (a SHA-256 as the store names files). */
int ts_is_sha256_hex(const char *s);
/* Lowercase hex; out must hold 2n+1 bytes. */
void ts_hex(const unsigned char *in, size_t n, char *out);

/* Constant-time equality of two buffers of the same length. */
int ts_ct_equal(const void *a, const void *b, size_t n);

/* mkdir -p with the given mode for the directories it creates. */
ts_err ts_mkdirs(const char *path, unsigned mode);
/* Reads a whole file (at most cap bytes) into a NUL-terminated malloc'd buffer. */
ts_err ts_read_file(const char *path, size_t cap, char **out, size_t *len);
/* Writes a file atomically (temp file + fsync + rename) with the given mode. */
ts_err ts_write_file(const char *path, const void *data, size_t len, unsigned mode);

/* Parses a decimal unsigned integer that must be the whole string, with optional e-notation
 * for exact powers ("2e10"). Returns 0 on success. */
int ts_parse_u64(const char *s, uint64_t *out);

/* Copies s into out (cap >= 1 bytes, always NUL-terminated) with every control character (C0,
 * DEL, and C1: U+0080-U+009F) and every byte that is not valid UTF-8 written as \xNN, each byte
 * so, so that a log or a terminal shows user input as text and nothing else. The result is valid
 * UTF-8; when out is too small the copy ends early, on a character boundary, never inside a
 * character or an escape. Returns out. */
char *ts_escape_ctrl(const char *s, char *out, size_t cap);
/* 1 when s is valid UTF-8 with no control character (C0, DEL, C1), else 0. */
int ts_utf8_printable(const char *s);

#endif
