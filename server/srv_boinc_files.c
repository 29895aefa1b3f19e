/* srv_boinc_files: what a BOINC client fetches and sends besides the scheduler RPC: the master
 * page, downloads (app files and unit inputs, with Range), and the upload handler. Downloads
 * and uploads carry no credentials in BOINC: an input's name and an output's <xml_signature>
 * hold a per-result secret (srv_boinc_mac) that only the host given the result knows. */
#include "srv_boinc.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "srv_store.h"
#include "ts_util.h"

/* The platforms a BOINC client names (BOINC.md) and the app file built for each. */
static const struct {
	const char *platform, *file;
} app_files[] = {
	{"x86_64-pc-linux-gnu", "tessera-boinc-x86_64"},
	{"aarch64-unknown-linux-gnu", "tessera-boinc-aarch64"},
	{"arm-unknown-linux-gnueabihf", "tessera-boinc-armhf"},
};

static int app_dir(char *out, size_t cap)
{
	const char *env = getenv("TESSERA_BOINC_APPS");
	if (env && *env) {
		snprintf(out, cap, "%s", env);
		return 0;
	}
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return -1;
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	static const char *const rel[] = {"boinc-apps", "../lib/tessera/boinc-apps"};
	for (size_t i = 0; i < TS_ARRAY_LEN(rel); i++) {
		int len = snprintf(out, cap, "%s/%s", exe, rel[i]);
		if (len > 0 && (size_t)len < cap && access(out, R_OK) == 0)
			return 0;
	}
	return -1;
}

static ts_err load_app(struct srv_boinc *b, const char *dir, size_t row)
{
	srv_boinc_app *a = &b->apps[b->n_apps];
	char *data = NULL, md5[33];
	size_t n = 0;
	int len = snprintf(a->path, sizeof(a->path), "%s/%s", dir, app_files[row].file);
	if (len < 0 || (size_t)len >= sizeof(a->path) || access(a->path, R_OK) != 0)
		return TS_OK;
	ts_err result = ts_read_file(a->path, SRV_BOINC_APP_MAX, &data, &n);
	if (!result)
		result = srv_boinc_key_sign(b->key, data, n, a->signature);
	if (!result) {
		/* The checksum in the name: a rebuilt app is a new file to every client. */
		srv_boinc_md5_hex(data, n, md5);
		snprintf(a->file, sizeof(a->file), "%s_%d_%s_%.8s", SRV_BOINC_APP, SRV_BOINC_APP_VERSION,
			 app_files[row].platform, md5);
		a->platform = app_files[row].platform;
		a->nbytes = n;
		b->n_apps++;
	}
	free(data);
	return result;
}

ts_err srv_boinc_start(srv_ctx *ctx)
{
	struct srv_boinc *b = calloc(1, sizeof(*b));
	char dir[1100];
	ts_err result = b ? srv_boinc_key_ensure(ctx->data_dir) : TS_ERR_NOMEM;
	if (!result)
		result = srv_boinc_key_load(ctx->data_dir, &b->key);
	if (!result) {
		snprintf(b->in_dir, sizeof(b->in_dir), "%s/boinc/in", ctx->data_dir);
		snprintf(b->up_dir, sizeof(b->up_dir), "%s/boinc/up", ctx->data_dir);
		result = ts_mkdirs(b->in_dir, 0700);
	}
	if (!result)
		result = ts_mkdirs(b->up_dir, 0700);
	if (!result && app_dir(dir, sizeof(dir)) == 0)
		for (size_t i = 0; i < TS_ARRAY_LEN(app_files) && !result; i++)
			result = load_app(b, dir, i);
	if (result) {
		fprintf(stderr, "%s: cannot set up BOINC support: %s\n", __func__, ts_strerror(result));
		if (b)
			srv_boinc_key_free(b->key);
		free(b);
		return result;
	}
	if (!b->n_apps && !ctx->quiet)
		fprintf(stderr, "%s: no BOINC app found (TESSERA_BOINC_APPS): BOINC hosts get no work\n", __func__);
	ctx->boinc = b;
	return TS_OK;
}

void srv_boinc_stop(srv_ctx *ctx)
{
	if (!ctx->boinc)
		return;
	srv_boinc_key_free(ctx->boinc->key);
	free(ctx->boinc);
	ctx->boinc = NULL;
}

const srv_boinc_app *srv_boinc_app_for(const struct srv_boinc *b, const char (*platforms)[64], int n)
{
	for (int i = 0; i < n; i++)
		for (int k = 0; k < b->n_apps; k++)
			if (strcmp(platforms[i], b->apps[k].platform) == 0)
				return &b->apps[k];
	return NULL;
}

void srv_boinc_wu_name(int64_t unit, int64_t replica, char out[SRV_BOINC_NAME_MAX])
{
	snprintf(out, SRV_BOINC_NAME_MAX, "ts_%lld_%lld", (long long)unit, (long long)replica);
}

/* "ts_<unit>_<replica>" followed exactly by tail. */
static int parse_name(const char *name, const char *tail, int64_t *unit, int64_t *replica)
{
	long long u, r;
	int used = 0;
	char again[SRV_BOINC_NAME_MAX + 16];
	if (sscanf(name, "ts_%lld_%lld%n", &u, &r, &used) != 2 || u < 1 || r < 1)
		return 0;
	snprintf(again, sizeof(again), "ts_%lld_%lld%s", u, r, tail);
	if (strcmp(again, name) != 0)
		return 0; /* "+1", "01", trailing bytes: only the form we write */
	*unit = u;
	*replica = r;
	return 1;
}

int srv_boinc_parse_result(const char *name, int64_t *unit, int64_t *replica)
{
	return parse_name(name, "_0", unit, replica);
}

int srv_boinc_parse_output(const char *name, int64_t *unit, int64_t *replica)
{
	return parse_name(name, "_0_out", unit, replica);
}

ts_err srv_boinc_base_url(const srv_req *r, char *out, size_t cap)
{
	const char *host = r->call ? r->call->host : NULL;
	size_t n = host ? strlen(host) : 0;
	if (!n || n > 255 || strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") != n)
		return TS_ERR_BAD_REQUEST;
	snprintf(out, cap, "https://%s", host);
	return TS_OK;
}

ts_err srv_boinc_input_put(const struct srv_boinc *b, const char *name, const char *text, size_t n)
{
	char path[1400];
	snprintf(path, sizeof(path), "%s/%s", b->in_dir, name);
	return ts_write_file(path, text, n, 0600);
}

static void input_name(const struct srv_boinc *b, int64_t unit, int64_t replica, char out[SRV_BOINC_NAME_MAX + 40])
{
	char wu[SRV_BOINC_NAME_MAX], label[SRV_BOINC_NAME_MAX + 8], mac[SRV_BOINC_MAC_HEX];
	srv_boinc_wu_name(unit, replica, wu);
	snprintf(label, sizeof(label), "in:%s", wu);
	srv_boinc_mac(b->key, label, mac);
	snprintf(out, SRV_BOINC_NAME_MAX + 40, "%s_%s.in", wu, mac);
}

static void output_path(const struct srv_boinc *b, int64_t unit, int64_t replica, char *out, size_t cap)
{
	snprintf(out, cap, "%s/ts_%lld_%lld_0_out", b->up_dir, (long long)unit, (long long)replica);
}

ts_err srv_boinc_output_read(const struct srv_boinc *b, int64_t unit, int64_t replica, char **out)
{
	char path[1400];
	size_t n;
	*out = NULL;
	output_path(b, unit, replica, path, sizeof(path));
	ts_err result = ts_read_file(path, SRV_BOINC_OUT_MAX, out, &n);
	if (result) {
		*out = NULL;
		result = access(path, F_OK) == 0 ? result : TS_OK; /* none uploaded: the caller says so */
	}
	return result;
}

ts_err srv_boinc_input_read(const struct srv_boinc *b, int64_t unit, int64_t replica, char **out)
{
	char path[1400], in[SRV_BOINC_NAME_MAX + 40];
	size_t n;
	input_name(b, unit, replica, in);
	snprintf(path, sizeof(path), "%s/%s", b->in_dir, in);
	ts_err result = ts_read_file(path, 64 * 1024, out, &n);
	if (result)
		*out = NULL;
	return result;
}

void srv_boinc_files_drop(const struct srv_boinc *b, int64_t unit, int64_t replica)
{
	char path[1400], in[SRV_BOINC_NAME_MAX + 40];
	output_path(b, unit, replica, path, sizeof(path));
	unlink(path);
	input_name(b, unit, replica, in);
	snprintf(path, sizeof(path), "%s/%s", b->in_dir, in);
	unlink(path);
}

ts_err api_boinc_master(srv_ctx *ctx, srv_req *r)
{
	char base[300], page[2048];
	ts_err result = srv_boinc_base_url(r, base, sizeof(base));
	if (result) {
		snprintf(r->why, sizeof(r->why), "a Host header is required");
		return result;
	}
	/* The client scans this page for either form (client/scheduler_op.cpp parse_master_file). */
	snprintf(page, sizeof(page),
		 "<!DOCTYPE html>\n<html><head><title>Tessera</title>\n"
		 "<link rel=\"boinc_scheduler\" href=\"%s/boinc/scheduler\">\n</head><body>\n"
		 "<!-- <scheduler>%s/boinc/scheduler</scheduler> -->\n"
		 "<p>A Tessera grid. BOINC volunteers attach with this URL and their enrollment token as the "
		 "account key:<br><code>boinccmd --project_attach %s/boinc/ ENROLLMENT_TOKEN</code></p>\n"
		 "</body></html>\n", base, base, base);
	r->text = strdup(page);
	r->content_type = "text/html; charset=utf-8";
	return r->text ? TS_OK : TS_ERR_NOMEM;
}

/* Range: "bytes=N-" or "bytes=N-M" (what curl sends to resume); 0 without one, -1 malformed. */
static int parse_range(const char *h, size_t total, size_t *from, size_t *to)
{
	unsigned long long a, b = 0;
	int used = 0;
	*from = 0;
	*to = total;
	if (!h)
		return 0;
	if (sscanf(h, "bytes=%llu-%n", &a, &used) != 1 || !used)
		return -1;
	if (h[used] && (sscanf(h + used, "%llu", &b) != 1 || b < a || strspn(h + used, "0123456789") != strlen(h + used)))
		return -1;
	if (a >= total)
		return -1;
	*from = (size_t)a;
	*to = h[used] && b + 1 < total ? (size_t)b + 1 : total;
	return 1;
}

/* The file a download name stands for: an app file, or a unit input whose name carries its
 * secret. */
static int download_path(const struct srv_boinc *b, const char *name, char *path, size_t cap)
{
	for (int i = 0; i < b->n_apps; i++)
		if (strcmp(name, b->apps[i].file) == 0) {
			snprintf(path, cap, "%s", b->apps[i].path);
			return 1;
		}
	long long u, rep;
	char want[SRV_BOINC_NAME_MAX + 40];
	if (sscanf(name, "ts_%lld_%lld_", &u, &rep) != 2 || u < 1 || rep < 1)
		return 0;
	input_name(b, u, rep, want);
	if (strlen(want) != strlen(name) || !ts_ct_equal(want, name, strlen(want)))
		return 0;
	snprintf(path, cap, "%s/%s", b->in_dir, name);
	return 1;
}

ts_err api_boinc_download(srv_ctx *ctx, srv_req *r)
{
	char path[1400], *data = NULL;
	size_t n = 0, from, to;
	if (!ctx->boinc || !download_path(ctx->boinc, r->name, path, sizeof(path))) {
		snprintf(r->why, sizeof(r->why), "no such file");
		return TS_ERR_NOT_FOUND;
	}
	ts_err result = ts_read_file(path, SRV_BOINC_APP_MAX, &data, &n);
	if (result) {
		snprintf(r->why, sizeof(r->why), "no such file");
		return errno == ENOENT || result == TS_ERR_IO ? TS_ERR_NOT_FOUND : result;
	}
	int ranged = parse_range(r->call ? r->call->range : NULL, n, &from, &to);
	if (ranged < 0) {
		free(data);
		snprintf(r->why, sizeof(r->why), "unsatisfiable Range for a file of %zu bytes", n);
		return TS_ERR_BAD_REQUEST;
	}
	if (ranged) {
		memmove(data, data + from, to - from);
		r->status = 206;
		snprintf(r->content_range, sizeof(r->content_range), "bytes %zu-%zu/%zu", from, to - 1, n);
	}
	r->bytes = (unsigned char *)data;
	r->bytes_len = to - from;
	r->content_type = "application/octet-stream";
	return TS_OK;
}

/* Whether the replica is one its host still holds: leased, or past its deadline but not yet
 * replaced by a result (the report path still takes a late result). */
static ts_err upload_held(srv_ctx *ctx, const srv_boinc_upload *u, int64_t *unit, int64_t *replica, srv_req *r)
{
	char label[SRV_BOINC_NAME_MAX + 8];
	wu_replica rep;
	if (!srv_boinc_parse_output(u->name, unit, replica)) {
		snprintf(r->why, sizeof(r->why), "not a Tessera result file");
		return TS_ERR_FORBIDDEN;
	}
	snprintf(label, sizeof(label), "out:%s", u->name);
	if (!u->size_probe && !srv_boinc_mac_ok(ctx->boinc->key, label, u->signature)) {
		snprintf(r->why, sizeof(r->why), "wrong upload secret for this result");
		return TS_ERR_FORBIDDEN;
	}
	ts_err result = srv_store_replica(ctx->db, *replica, &rep);
	if (result == TS_ERR_NOT_FOUND || (!result && (rep.unit_id != *unit ||
						       (rep.state != WU_R_LEASED && rep.state != WU_R_EXPIRED)))) {
		snprintf(r->why, sizeof(r->why), "no host holds this result");
		return TS_ERR_FORBIDDEN;
	}
	return result;
}

static ts_err upload_reply(srv_req *r, long long size)
{
	char text[160];
	if (size >= 0)
		snprintf(text, sizeof(text), "<data_server_reply>\n<status>0</status>\n<file_size>%lld</file_size>\n"
			 "</data_server_reply>\n", size);
	else
		snprintf(text, sizeof(text), "<data_server_reply>\n<status>0</status>\n</data_server_reply>\n");
	r->text = strdup(text);
	r->content_type = "text/xml";
	return r->text ? TS_OK : TS_ERR_NOMEM;
}

ts_err api_boinc_upload(srv_ctx *ctx, srv_req *r)
{
	srv_boinc_upload u;
	int64_t unit, replica;
	char path[1400], md5[33];
	struct stat st;
	if (!ctx->boinc) {
		snprintf(r->why, sizeof(r->why), "BOINC is not enabled on this server");
		return TS_ERR_NOT_FOUND;
	}
	ts_err result = srv_boinc_parse_upload((const char *)r->in, r->in_len, &u, r->why, sizeof(r->why));
	if (!result)
		result = upload_held(ctx, &u, &unit, &replica, r);
	if (result)
		return result;
	output_path(ctx->boinc, unit, replica, path, sizeof(path));
	size_t have = stat(path, &st) == 0 ? (size_t)st.st_size : 0;
	if (u.size_probe)
		return upload_reply(r, (long long)have);
	size_t len = r->in_len - u.data_at;
	if (!(u.nbytes >= 0 && u.nbytes <= SRV_BOINC_OUT_MAX && u.nbytes == floor(u.nbytes))) {
		snprintf(r->why, sizeof(r->why), "a result file is at most %d bytes", SRV_BOINC_OUT_MAX);
		return TS_ERR_TOO_LARGE;
	}
	if (!(u.offset >= 0 && u.offset == floor(u.offset) && (size_t)u.offset <= have &&
	      (size_t)u.offset + len == (size_t)u.nbytes)) {
		snprintf(r->why, sizeof(r->why), "offset %.0f and %zu bytes do not make the %.0f announced (%zu stored)",
			 u.offset, len, u.nbytes, have);
		return TS_ERR_BAD_REQUEST;
	}
	/* Offset append: the bytes stored before the offset, then these; checked whole, written at once. */
	char *old = NULL, *whole = malloc((size_t)u.nbytes + 1);
	size_t oldn = 0, off = (size_t)u.offset;
	if (!whole)
		return TS_ERR_NOMEM;
	if (off && (result = ts_read_file(path, SRV_BOINC_OUT_MAX, &old, &oldn)) == TS_OK && oldn >= off)
		memcpy(whole, old, off);
	free(old);
	if (result) {
		free(whole);
		return result;
	}
	memcpy(whole + off, r->in + u.data_at, len);
	srv_boinc_md5_hex(whole, (size_t)u.nbytes, md5);
	if (u.md5[0] && strcmp(md5, u.md5) != 0) {
		free(whole);
		snprintf(r->why, sizeof(r->why), "the file's MD5 is %s, not %s as announced", md5, u.md5);
		return TS_ERR_BAD_REQUEST;
	}
	result = ts_write_file(path, whole, (size_t)u.nbytes, 0600);
	free(whole);
	return result ? result : upload_reply(r, -1);
}
