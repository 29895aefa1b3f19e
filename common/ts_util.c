#include "ts_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

int64_t ts_now(void)
{
	return (int64_t)time(NULL);
}

double ts_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

ts_err ts_random(void *buf, size_t n)
{
	return RAND_bytes(buf, (int)n) == 1 ? TS_OK : TS_ERR_INTERNAL;
}

void ts_sha256(const void *data, size_t n, unsigned char out[32])
{
	unsigned int len = 32;
	EVP_Digest(data, n, out, &len, EVP_sha256(), NULL);
}

size_t ts_b64url_encode(const unsigned char *in, size_t n, char *out)
{
	/* EVP_EncodeBlock writes standard base64 with padding; map it to base64url. */
	int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	while (len > 0 && out[len - 1] == '=')
		len--;
	out[len] = '\0';
	for (int i = 0; i < len; i++) {
		if (out[i] == '+')
			out[i] = '-';
		else if (out[i] == '/')
			out[i] = '_';
	}
	return (size_t)len;
}

char *ts_b64_encode(const unsigned char *in, size_t n)
{
	if (n > (size_t)INT_MAX / 4 * 3 - 3)
		return NULL;
	char *out = malloc(4 * ((n + 2) / 3) + 1);
	if (out)
		EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	return out;
}

ts_err ts_b64_decode(const char *in, size_t inlen, size_t cap, unsigned char **out, size_t *outlen)
{
	*out = NULL;
	*outlen = 0;
	if (inlen % 4 != 0 || inlen / 4 * 3 > cap + 2 || inlen > (size_t)INT_MAX)
		return TS_ERR_BAD_REQUEST;
	for (size_t i = 0; i < inlen; i++) {
		char c = in[i];
		int pad_ok = c == '=' && i >= inlen - 2 && (i == inlen - 1 || in[inlen - 1] == '=');
		if (!pad_ok && !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
				 c == '+' || c == '/'))
			return TS_ERR_BAD_REQUEST;
	}
	unsigned char *buf = malloc(inlen / 4 * 3 + 1);
	if (!buf)
		return TS_ERR_NOMEM;
	int n = inlen ? EVP_DecodeBlock(buf, (const unsigned char *)in, (int)inlen) : 0;
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	size_t pad = inlen && in[inlen - 1] == '=' ? (in[inlen - 2] == '=' ? 2 : 1) : 0;
	if (n < 0 || (size_t)n < pad || (size_t)n - pad > cap) {
		free(buf);
		return TS_ERR_BAD_REQUEST;
	}
	*out = buf;
	*outlen = (size_t)n - pad;
	return TS_OK;
}

int ts_is_sha256_hex(const char *s)
{
	size_t i = 0;
	while (s && i < 64 && ((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
		i++;
	return s && i == 64 && s[64] == '\0';
}

long ts_b64url_decode(const char *in, unsigned char *out, size_t outcap)
{
	size_t n = strlen(in);
	if (n > 4096 || n % 4 == 1)
		return -1;
	char buf[4100];
	size_t i;
	for (i = 0; i < n; i++) {
		char c = in[i];
		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
			return -1;
		buf[i] = c;
	}
	size_t pad = (4 - n % 4) % 4;
	for (size_t k = 0; k < pad; k++)
		buf[i++] = '=';
	buf[i] = '\0';
	unsigned char tmp[3100];
	int len = EVP_DecodeBlock(tmp, (unsigned char *)buf, (int)i);
	if (len < 0)
		return -1;
	len -= (int)pad; /* EVP_DecodeBlock counts padding as zero bytes */
	if (len < 0 || (size_t)len > outcap)
		return -1;
	memcpy(out, tmp, (size_t)len);
	return len;
}

void ts_hex(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

int ts_ct_equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}

ts_err ts_mkdirs(const char *path, unsigned mode)
{
	char buf[4096];
	if (strlen(path) >= sizeof(buf))
		return TS_ERR_BAD_REQUEST;
	strcpy(buf, path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) != 0 && errno != EEXIST)
			return TS_ERR_IO;
		*p = '/';
	}
	if (mkdir(buf, mode) != 0 && errno != EEXIST)
		return TS_ERR_IO;
	return TS_OK;
}

ts_err ts_read_file(const char *path, size_t cap, char **out, size_t *len)
{
	ts_err result = TS_ERR_IO;
	char *buf = NULL;
	FILE *f = fopen(path, "rb");
	if (!f)
		goto out;
	buf = malloc(cap + 1);
	if (!buf) {
		result = TS_ERR_NOMEM;
		goto out;
	}
	size_t n = fread(buf, 1, cap + 1, f);
	if (ferror(f))
		goto out;
	if (n > cap) {
		result = TS_ERR_TOO_LARGE;
		goto out;
	}
	buf[n] = '\0';
	*out = buf;
	buf = NULL;
	if (len)
		*len = n;
	result = TS_OK;
out:
	free(buf);
	if (f)
		fclose(f);
	return result;
}

/* Temp file next to path, written, fchmod'ed and fsync'ed, renamed over path, then the directory
 * fsync'ed so that the rename itself survives a crash. On failure before the rename path is
 * untouched and the temp file removed; a failed directory fsync (after the rename, so path holds
 * the new contents) is TS_ERR_IO too, except EINVAL: a file system that cannot sync
 * directories. Every descriptor is closed on every path. */
ts_err ts_write_file(const char *path, const void *data, size_t len, unsigned mode)
{
	char tmp[4200], dir[4200];
	const char *slash = strrchr(path, '/');
	ts_err result = TS_ERR_IO;
	int fd = -1, dfd = -1, made = 0;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp))
		return TS_ERR_BAD_REQUEST;
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else
		snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		goto out;
	made = 1;
	const char *p = data;
	size_t left = len;
	while (left > 0) {
		ssize_t w = write(fd, p, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			goto out;
		p += w;
		left -= (size_t)w;
	}
	/* fchmod: the umask may have narrowed or the file may have existed with another mode. */
	if (fchmod(fd, mode) != 0 || fsync(fd) != 0)
		goto out;
	int closed = close(fd);
	fd = -1;
	if (closed != 0 || rename(tmp, path) != 0)
		goto out;
	made = 0;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || (fsync(dfd) != 0 && errno != EINVAL))
		goto out;
	result = TS_OK;
out:
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	if (made)
		unlink(tmp);
	return result;
}

int ts_parse_u64(const char *s, uint64_t *out)
{
	if (!s || !*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	if (*end == 'e' || *end == 'E') {
		char *end2;
		unsigned long e = strtoul(end + 1, &end2, 10);
		if (end2 == end + 1 || *end2 || e > 19)
			return -1;
		for (unsigned long i = 0; i < e; i++) {
			if (v > UINT64_MAX / 10)
				return -1;
			v *= 10;
		}
		end = end2;
	}
	if (*end)
		return -1;
	*out = v;
	return 0;
}

/* The length of the valid UTF-8 character at s (1 to 4 bytes) with its code point in *cp, or 0
 * when s does not start one: a stray continuation byte, an overlong form, a surrogate, a code
 * point over U+10FFFF, or a character cut short (by the NUL, which is no continuation byte). */
static size_t utf8_char(const unsigned char *s, uint32_t *cp)
{
	unsigned c = s[0];
	size_t n;
	uint32_t v, min;
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2, v = c & 0x1f, min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3, v = c & 0x0f, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4, v = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (s[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return n;
}

/* C0, DEL and C1: what a terminal may act on instead of showing. */
static int is_ctrl(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

char *ts_escape_ctrl(const char *s, char *out, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0;
	while (*p) {
		uint32_t cp = 0;
		size_t n = utf8_char(p, &cp);
		if (n && !is_ctrl(cp)) {
			if (o + n >= cap)
				break;
			memcpy(out + o, p, n);
			o += n;
			p += n;
			continue;
		}
		/* Each byte of a control character, or the one byte that is not UTF-8, as \xNN. */
		n = n ? n : 1;
		if (o + 4 * n >= cap)
			break;
		for (size_t i = 0; i < n; i++, p++) {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
	return out;
}

int ts_utf8_printable(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		uint32_t cp = 0;
		size_t n = utf8_char(p, &cp);
		if (!n || is_ctrl(cp))
			return 0;
		p += n;
	}
	return 1;
}
