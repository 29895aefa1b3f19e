#include "srv_boinc_xml.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <expat.h>

#define XML_MAX_DEPTH 32
#define XML_TEXT_MAX 4096 /* characters of one element kept; a field over its own cap is an error */

/* How one element's text is stored into a struct. */
enum xkind { X_STR, X_I64, X_INT, X_DBL, X_DBL_MAX, X_PRESENT, X_PLATFORM, X_SIG };

typedef struct xfield {
	const char *path; /* below the root, '/' between names */
	enum xkind kind;
	size_t off, size;
} xfield;

#define F(path, kind, type, member) {path, kind, offsetof(type, member), sizeof(((type *)0)->member)}

static const xfield request_fields[] = {
	F("authenticator", X_STR, srv_boinc_request, authenticator),
	F("hostid", X_I64, srv_boinc_request, hostid),
	F("platform_name", X_PLATFORM, srv_boinc_request, platforms),
	F("alt_platform/name", X_PLATFORM, srv_boinc_request, platforms),
	F("work_req_seconds", X_DBL_MAX, srv_boinc_request, work_req_s),
	F("cpu_req_secs", X_DBL_MAX, srv_boinc_request, work_req_s),
	F("host_info/p_ncpus", X_INT, srv_boinc_request, ncpus),
	F("host_info/p_fpops", X_DBL, srv_boinc_request, fpops),
	F("host_info/domain_name", X_STR, srv_boinc_request, domain_name),
	F("code_sign_key", X_PRESENT, srv_boinc_request, has_code_sign_key),
};

static const xfield result_fields[] = {
	F("result/name", X_STR, srv_boinc_reported, name),
	F("result/exit_status", X_INT, srv_boinc_reported, exit_status),
	F("result/state", X_INT, srv_boinc_reported, state),
	F("result/final_elapsed_time", X_DBL, srv_boinc_reported, elapsed_s),
};

static const xfield upload_fields[] = {
	F("get_file_size", X_STR, srv_boinc_upload, name),
	F("file_upload/file_info/name", X_STR, srv_boinc_upload, name),
	F("file_upload/file_info/xml_signature", X_SIG, srv_boinc_upload, signature),
	F("file_upload/file_info/max_nbytes", X_DBL, srv_boinc_upload, max_nbytes),
	F("file_upload/nbytes", X_DBL, srv_boinc_upload, nbytes),
	F("file_upload/md5_cksum", X_STR, srv_boinc_upload, md5),
	F("file_upload/offset", X_DBL, srv_boinc_upload, offset),
};

typedef struct xparse {
	XML_Parser xp;
	const char *root;
	char path[512];
	size_t plen[XML_MAX_DEPTH + 1];
	int depth;
	char text[XML_TEXT_MAX + 1];
	size_t tlen;
	int toolong;
	ts_err err;
	char *why;
	size_t whylen;
	srv_boinc_request *req; /* one of these two */
	srv_boinc_upload *up;
	srv_boinc_reported *cur; /* the <result> being read; NULL when over the cap */
	int in_result;
} xparse;

static void fail(xparse *x, const char *fmt, const char *what)
{
	if (!x->err) {
		x->err = TS_ERR_BAD_REQUEST;
		snprintf(x->why, x->whylen, fmt, what);
	}
	XML_StopParser(x->xp, XML_FALSE);
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

static int parse_num(const char *s, double *out)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end || !isfinite(v))
		return -1;
	*out = v;
	return 0;
}

/* Stores text into base by f; 0 or fails x. */
static void store(xparse *x, const xfield *f, void *base, char *text)
{
	char *t = trim(text);
	char *dst = (char *)base + f->off;
	double v = 0;
	if (x->toolong && f->kind != X_PRESENT) {
		fail(x, "<%s> is too long", f->path);
		return;
	}
	switch (f->kind) {
	case X_STR:
		if (strlen(t) >= f->size)
			fail(x, "<%s> is too long", f->path);
		else
			memcpy(dst, t, strlen(t) + 1);
		return;
	case X_SIG: {
		/* BOINC keeps the signature with its line breaks; only the hex digits count. */
		size_t n = 0;
		for (const char *p = t; *p; p++) {
			if (isspace((unsigned char)*p))
				continue;
			if (n + 1 >= f->size) {
				fail(x, "<%s> is too long", f->path);
				return;
			}
			dst[n++] = *p;
		}
		dst[n] = '\0';
		return;
	}
	case X_PRESENT:
		*(int *)dst = *t != '\0' || x->toolong;
		return;
	case X_PLATFORM:
		if (strlen(t) >= sizeof(x->req->platforms[0]))
			fail(x, "<%s> is too long", f->path);
		else if (x->req->n_platforms < SRV_BOINC_MAX_PLATFORMS)
			memcpy(x->req->platforms[x->req->n_platforms++], t, strlen(t) + 1);
		return;
	default:
		break;
	}
	if (parse_num(t, &v)) {
		fail(x, "<%s> must be a number", f->path);
		return;
	}
	switch (f->kind) {
	case X_I64:
		if (v < 0 || v > 9e15 || v != floor(v))
			fail(x, "<%s> is out of range", f->path);
		else
			*(int64_t *)dst = (int64_t)v;
		break;
	case X_INT:
		if (v < -1e9 || v > 1e9 || v != floor(v))
			fail(x, "<%s> is out of range", f->path);
		else
			*(int *)dst = (int)v;
		break;
	case X_DBL:
		*(double *)dst = v;
		break;
	case X_DBL_MAX:
		if (v > *(double *)dst)
			*(double *)dst = v;
		break;
	default:
		break;
	}
}

static const xfield *find_field(const xfield *t, size_t n, const char *path)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(t[i].path, path) == 0)
			return &t[i];
	return NULL;
}

#define NFIELDS(t) (sizeof(t) / sizeof((t)[0]))

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
	xparse *x = ud;
	size_t nl = strlen(name);
	if (x->err || (x->up && x->up->data_at))
		return; /* stopped: expat still ends the token it was in */
	if (x->depth == 0 && strcmp(name, x->root) != 0) {
		fail(x, "the document is not a <%s>", x->root);
		return;
	}
	if (x->depth >= XML_MAX_DEPTH) {
		fail(x, "elements nested over %s deep", "32");
		return;
	}
	size_t at = x->plen[x->depth];
	if (x->depth > 0) {
		if (at + nl + 2 >= sizeof(x->path)) {
			fail(x, "an element path over %s bytes", "512");
			return;
		}
		if (at)
			x->path[at++] = '/';
		memcpy(x->path + at, name, nl + 1);
		at += nl;
	}
	x->plen[++x->depth] = at;
	x->tlen = 0;
	x->toolong = 0;
	if (x->req && strcmp(x->path, "result") == 0) {
		x->in_result = 1;
		x->cur = NULL;
		if (x->req->n_results < SRV_BOINC_MAX_RESULTS)
			x->cur = &x->req->results[x->req->n_results++];
		else
			x->req->more_results = 1;
	}
	if (x->up && strcmp(x->path, "file_upload/data") == 0) {
		/* The file's raw bytes follow "<data>\n": stop here, before expat reads them. */
		x->up->data_at = (size_t)(XML_GetCurrentByteIndex(x->xp) + XML_GetCurrentByteCount(x->xp));
		XML_StopParser(x->xp, XML_FALSE);
	}
}

/* A result the client still holds: in progress, or finished beyond this RPC's cap. */
static void add_other(xparse *x, char *text)
{
	char *t = trim(text);
	if (strlen(t) >= SRV_BOINC_NAME_MAX)
		fail(x, "<%s> is too long", x->path);
	else if (x->req->n_other < SRV_BOINC_MAX_OTHER)
		memcpy(x->req->other[x->req->n_other++], t, strlen(t) + 1);
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
	xparse *x = ud;
	if (x->err || x->depth == 0 || (x->up && x->up->data_at))
		return; /* stopped: expat still ends the token it was in */
	x->text[x->tlen] = '\0';
	const xfield *f;
	if (x->req) {
		if (x->in_result && (f = find_field(result_fields, NFIELDS(result_fields), x->path))) {
			if (x->cur)
				store(x, f, x->cur, x->text);
			else if (f->off == offsetof(srv_boinc_reported, name))
				add_other(x, x->text); /* over the cap: reported next time, held meanwhile */
		} else if ((f = find_field(request_fields, NFIELDS(request_fields), x->path))) {
			store(x, f, x->req, x->text);
		} else if (strcmp(x->path, "other_results/other_result/name") == 0) {
			add_other(x, x->text);
		} else if (strcmp(x->path, "result") == 0) {
			x->in_result = 0;
		}
	} else if ((f = find_field(upload_fields, NFIELDS(upload_fields), x->path))) {
		store(x, f, x->up, x->text);
		if (strcmp(f->path, "get_file_size") == 0)
			x->up->size_probe = 1;
	}
	x->depth--;
	x->path[x->plen[x->depth]] = '\0';
	x->tlen = 0;
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
	xparse *x = ud;
	size_t n = (size_t)len;
	if (x->err)
		return;
	if (x->tlen + n > XML_TEXT_MAX) {
		x->toolong = 1;
		n = XML_TEXT_MAX - x->tlen;
	}
	memcpy(x->text + x->tlen, s, n);
	x->tlen += n;
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid,
			       int has_internal)
{
	fail(ud, "a %s is not allowed", "DOCTYPE");
}

static ts_err parse(xparse *x, const char *doc, size_t n)
{
	x->xp = XML_ParserCreate("UTF-8");
	if (!x->xp)
		return TS_ERR_NOMEM;
	XML_SetUserData(x->xp, x);
	XML_SetElementHandler(x->xp, on_start, on_end);
	XML_SetCharacterDataHandler(x->xp, on_text);
	XML_SetStartDoctypeDeclHandler(x->xp, on_doctype);
	/* BOINC writes everything before the message as is (no prolog): skip nothing else. */
	enum XML_Status st = n > (size_t)0x7fffffff ? XML_STATUS_ERROR : XML_Parse(x->xp, doc, (int)n, 1);
	int stopped = x->up && x->up->data_at;
	if (st != XML_STATUS_OK && !x->err && !(stopped && XML_GetErrorCode(x->xp) == XML_ERROR_ABORTED)) {
		x->err = TS_ERR_BAD_REQUEST;
		snprintf(x->why, x->whylen, "not well-formed XML at line %lu: %s",
			 (unsigned long)XML_GetCurrentLineNumber(x->xp), XML_ErrorString(XML_GetErrorCode(x->xp)));
	}
	XML_ParserFree(x->xp);
	return x->err;
}

ts_err srv_boinc_parse_request(const char *doc, size_t n, srv_boinc_request *out, char *why, size_t whylen)
{
	memset(out, 0, sizeof(*out));
	xparse *x = calloc(1, sizeof(*x));
	if (!x)
		return TS_ERR_NOMEM;
	*x = (xparse){.root = "scheduler_request", .why = why, .whylen = whylen, .req = out};
	ts_err result = parse(x, doc, n);
	free(x);
	return result;
}

ts_err srv_boinc_parse_upload(const char *doc, size_t n, srv_boinc_upload *out, char *why, size_t whylen)
{
	memset(out, 0, sizeof(*out));
	xparse *x = calloc(1, sizeof(*x));
	if (!x)
		return TS_ERR_NOMEM;
	*x = (xparse){.root = "data_server_request", .why = why, .whylen = whylen, .up = out};
	ts_err result = parse(x, doc, n);
	free(x);
	if (result)
		return result;
	if (!out->size_probe && !out->data_at) {
		snprintf(why, whylen, "neither <get_file_size> nor <file_upload> with <data>");
		return TS_ERR_BAD_REQUEST;
	}
	if (out->data_at && out->data_at < n && doc[out->data_at] == '\n')
		out->data_at++; /* the line break after <data> is the header's */
	return TS_OK;
}

void srv_xbuf_init(srv_xbuf *b, size_t max)
{
	*b = (srv_xbuf){.max = max};
}

static int reserve(srv_xbuf *b, size_t more)
{
	if (b->failed)
		return -1;
	if (b->n + more + 1 > b->max) {
		b->failed = 1;
		return -1;
	}
	if (b->n + more + 1 <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->n + more + 1)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p) {
		b->failed = 1;
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

void srv_xbuf_printf(srv_xbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->n += (size_t)n;
}

void srv_xbuf_text(srv_xbuf *b, const char *value)
{
	static const struct {
		char c;
		const char *ent;
	} ents[] = {{'&', "&amp;"}, {'<', "&lt;"}, {'>', "&gt;"}, {'"', "&quot;"}, {'\'', "&apos;"}};
	for (const char *p = value; *p; p++) {
		const char *ent = NULL;
		for (size_t i = 0; i < NFIELDS(ents); i++)
			if (ents[i].c == *p)
				ent = ents[i].ent;
		if (ent)
			srv_xbuf_printf(b, "%s", ent);
		else if (!reserve(b, 1))
			b->p[b->n++] = *p;
	}
}

void srv_xbuf_elem(srv_xbuf *b, const char *tag, const char *value)
{
	srv_xbuf_printf(b, "<%s>", tag);
	srv_xbuf_text(b, value);
	srv_xbuf_printf(b, "</%s>\n", tag);
}

char *srv_xbuf_take(srv_xbuf *b, size_t *len)
{
	if (b->failed || reserve(b, 0)) {
		srv_xbuf_free(b);
		return NULL;
	}
	b->p[b->n] = '\0';
	char *p = b->p;
	if (len)
		*len = b->n;
	*b = (srv_xbuf){.max = b->max};
	return p;
}

void srv_xbuf_free(srv_xbuf *b)
{
	free(b->p);
	*b = (srv_xbuf){.max = b->max};
}
