#include "srv_http.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <zlib.h>

#include "srv_json.h"
#include "ts_util.h"

static const srv_route routes[] = {
	{EVHTTP_REQ_GET, "/healthz", api_healthz, ROLE_ANY, BODY_NONE},
	{EVHTTP_REQ_GET, "/metrics", api_metrics, ROLE_ADMIN, BODY_NONE},
	{EVHTTP_REQ_POST, "/api/v1/login", api_login, ROLE_ANY, BODY_JSON},
	{EVHTTP_REQ_POST, "/api/v1/logout", api_logout, ROLE_PEOPLE, BODY_NONE},
	{EVHTTP_REQ_GET, "/api/v1/me", api_me, ROLE_PEOPLE, BODY_NONE},
	{EVHTTP_REQ_GET, "/api/v1/stats", api_stats, ROLE_PEOPLE, BODY_NONE},
	{EVHTTP_REQ_POST, "/api/v1/jobs", api_job_submit, ROLE_PEOPLE, BODY_JSON},
	{EVHTTP_REQ_GET, "/api/v1/jobs", api_job_list, ROLE_PEOPLE, BODY_NONE},
	{EVHTTP_REQ_GET, "/api/v1/jobs/{id}", api_job_get, ROLE_PEOPLE, BODY_NONE},
	{EVHTTP_REQ_DELETE, "/api/v1/jobs/{id}", api_job_cancel, ROLE_PEOPLE, BODY_NONE},
	{EVHTTP_REQ_GET, "/api/v1/jobs/{id}/units", api_job_units, ROLE_PEOPLE, BODY_NONE},
	{EVHTTP_REQ_GET, "/api/v1/users", api_user_list, ROLE_ADMIN, BODY_NONE},
	{EVHTTP_REQ_POST, "/api/v1/users", api_user_add, ROLE_ADMIN, BODY_JSON},
	{EVHTTP_REQ_POST, "/api/v1/users/{id}/disable", api_user_disable, ROLE_ADMIN, BODY_NONE},
	{EVHTTP_REQ_POST, "/api/v1/users/{id}/enable", api_user_enable, ROLE_ADMIN, BODY_NONE},
	{EVHTTP_REQ_POST, "/api/v1/users/{id}/password", api_user_password, ROLE_PEOPLE, BODY_JSON},
	{EVHTTP_REQ_DELETE, "/api/v1/users/{id}", api_user_delete, ROLE_ADMIN, BODY_NONE},
	{EVHTTP_REQ_GET, "/api/v1/tokens", api_token_list, ROLE_PEOPLE, BODY_NONE},
	{EVHTTP_REQ_POST, "/api/v1/tokens", api_token_create, ROLE_PEOPLE, BODY_JSON},
	{EVHTTP_REQ_DELETE, "/api/v1/tokens/{id}", api_token_revoke, ROLE_PEOPLE, BODY_NONE},
	{EVHTTP_REQ_POST, "/api/v1/enroll-tokens", api_enroll_token, ROLE_ADMIN, BODY_JSON},
	{EVHTTP_REQ_GET, "/api/v1/enroll-tokens", api_enroll_list, ROLE_ADMIN, BODY_NONE},
	{EVHTTP_REQ_DELETE, "/api/v1/enroll-tokens/{id}", api_enroll_revoke, ROLE_ADMIN, BODY_NONE},
	{EVHTTP_REQ_POST, "/api/v1/enroll-tokens/{id}/disable-nodes", api_enroll_disable_nodes, ROLE_ADMIN, BODY_NONE},
	{EVHTTP_REQ_POST, "/api/v1/nodes/enroll", api_node_enroll, ROLE_ANY, BODY_JSON},
	{EVHTTP_REQ_GET, "/api/v1/nodes", api_node_list, ROLE_ADMIN, BODY_NONE},
	{EVHTTP_REQ_POST, "/api/v1/nodes/{id}/disable", api_node_disable, ROLE_ADMIN, BODY_NONE},
	{EVHTTP_REQ_POST, "/api/v1/nodes/{id}/enable", api_node_enable, ROLE_ADMIN, BODY_NONE},
	{EVHTTP_REQ_POST, "/api/v1/nodes/heartbeat", api_node_heartbeat, ROLE_NODE, BODY_OPTIONAL},
	{EVHTTP_REQ_POST, "/api/v1/work/fetch", api_work_fetch, ROLE_NODE, BODY_JSON},
	{EVHTTP_REQ_POST, "/api/v1/work/report", api_work_report, ROLE_NODE, BODY_JSON},
	{EVHTTP_REQ_GET, "/api/v1/kernels", api_kernels, ROLE_PEOPLE | ROLE_NODE, BODY_NONE},
	{EVHTTP_REQ_PUT, "/api/v1/files", api_file_put, ROLE_PEOPLE, BODY_RAW},
	{EVHTTP_REQ_GET, "/api/v1/files/{hash}", api_file_get, ROLE_PEOPLE | ROLE_NODE, BODY_NONE},
	{EVHTTP_REQ_GET, "/api/v1/jobs/{id}/output", api_job_output, ROLE_PEOPLE, BODY_NONE},
	{EVHTTP_REQ_GET, "/api/v1/jobs/{id}/outputs", api_job_outputs, ROLE_PEOPLE, BODY_NONE},
	{EVHTTP_REQ_POST, "/api/v1/users/{id}/grant", api_user_grant, ROLE_ADMIN, BODY_JSON},
	{EVHTTP_REQ_POST, "/api/v1/users/{id}/revoke", api_user_revoke, ROLE_ADMIN, BODY_JSON},
	/* BOINC clients (srv_boinc.h): their own credentials, checked by the handlers. */
	{EVHTTP_REQ_GET, "/boinc/", api_boinc_master, ROLE_ANY, BODY_NONE},
	{EVHTTP_REQ_POST, "/boinc/scheduler", api_boinc_scheduler, ROLE_ANY, BODY_RAW},
	{EVHTTP_REQ_GET, "/boinc/download/{name}", api_boinc_download, ROLE_ANY, BODY_NONE},
	{EVHTTP_REQ_POST, "/boinc/upload", api_boinc_upload, ROLE_ANY, BODY_RAW},
};

_Static_assert(TS_ARRAY_LEN(routes) <= SRV_ROUTES_MAX, "raise SRV_ROUTES_MAX");

const double srv_latency_bounds[SRV_LATENCY_BUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
};

const srv_route *srv_http_routes(size_t *n)
{
	*n = TS_ARRAY_LEN(routes);
	return routes;
}

/* Matches path against a pattern with "{hash}": 64 lowercase hex digits into hash. */
static int route_match_hash(const char *pattern, const char *hole, const char *path, char hash[65])
{
	size_t pre = (size_t)(hole - pattern);
	if (strncmp(pattern, path, pre) != 0 || strlen(path + pre) < 64)
		return 0;
	char h[65];
	memcpy(h, path + pre, 64);
	h[64] = '\0';
	if (!ts_is_sha256_hex(h) || strcmp(path + pre + 64, hole + 6) != 0)
		return 0;
	memcpy(hash, h, sizeof(h));
	return 1;
}

/* Matches path against a pattern ending in "{name}": one segment of letters, digits, '.', '_'
 * and '-', not starting with '.', into name. */
static int route_match_name(const char *pattern, const char *hole, const char *path, char name[SRV_NAME_MAX])
{
	size_t pre = (size_t)(hole - pattern);
	if (strncmp(pattern, path, pre) != 0)
		return 0; /* before anything past pre is read: path may be shorter */
	size_t n = strlen(path + pre);
	if (n == 0 || n >= SRV_NAME_MAX || path[pre] == '.')
		return 0;
	if (strspn(path + pre, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != n)
		return 0;
	memcpy(name, path + pre, n + 1);
	return 1;
}

/* Matches path against a pattern; fills *id for "{id}", hash for "{hash}", name for "{name}". */
static int route_match(const char *pattern, const char *path, int64_t *id, char hash[65], char name[SRV_NAME_MAX])
{
	const char *hole = strstr(pattern, "{name}");
	if (hole)
		return route_match_name(pattern, hole, path, name);
	hole = strstr(pattern, "{id}");
	if (!hole && (hole = strstr(pattern, "{hash}")))
		return route_match_hash(pattern, hole, path, hash);
	if (!hole)
		return strcmp(pattern, path) == 0;
	size_t pre = (size_t)(hole - pattern);
	if (strncmp(pattern, path, pre) != 0)
		return 0;
	const char *p = path + pre;
	int64_t v = 0;
	int digits = 0;
	while (*p >= '0' && *p <= '9') {
		if (v > (INT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (*p++ - '0');
		digits++;
	}
	if (!digits || v <= 0 || strcmp(p, hole + 4) != 0)
		return 0;
	*id = v;
	return 1;
}

/* Inflates a gzip body into a capped buffer. */
static ts_err body_inflate(const unsigned char *in, size_t n, size_t cap, char **out, size_t *outlen)
{
	z_stream z = {0};
	char *buf = malloc(cap + 1);
	ts_err result = TS_ERR_BAD_REQUEST;
	if (!buf)
		return TS_ERR_NOMEM;
	if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
		free(buf);
		return TS_ERR_NOMEM;
	}
	z.next_in = (unsigned char *)in;
	z.avail_in = (uInt)n;
	z.next_out = (unsigned char *)buf;
	z.avail_out = (uInt)cap + 1; /* one byte over the cap tells "too large" */
	int rc = inflate(&z, Z_FINISH);
	if (rc == Z_STREAM_END && z.total_out <= cap) {
		*outlen = z.total_out;
		*out = buf;
		buf = NULL;
		result = TS_OK;
	} else if (z.total_out > cap || (rc == Z_BUF_ERROR && z.avail_out == 0)) {
		result = TS_ERR_TOO_LARGE;
	}
	inflateEnd(&z);
	free(buf);
	return result;
}

static ts_err req_body(const srv_call *call, srv_req *r)
{
	const char *enc = call->content_encoding;
	char *plain = NULL;
	size_t plainlen = 0, n = call->body_len;
	ts_err result;
	if (n == 0) {
		snprintf(r->why, sizeof(r->why), "a JSON body is required");
		return TS_ERR_BAD_REQUEST;
	}
	if (n > SRV_MAX_BODY) { /* evhttp already refuses these; srv_http_handle's other callers not */
		snprintf(r->why, sizeof(r->why), "body over %d bytes", SRV_MAX_BODY);
		return TS_ERR_TOO_LARGE;
	}
	if (enc && strcasecmp(enc, "gzip") == 0) {
		result = body_inflate(call->body, n, SRV_MAX_BODY, &plain, &plainlen);
		if (result) {
			snprintf(r->why, sizeof(r->why), result == TS_ERR_TOO_LARGE ?
				 "inflated body over %d bytes" : "body is not valid gzip", SRV_MAX_BODY);
			return result;
		}
		result = srv_json_parse_body(plain, plainlen, &r->body, r->why, sizeof(r->why));
		free(plain);
		return result;
	}
	if (enc && strcasecmp(enc, "identity") != 0) {
		snprintf(r->why, sizeof(r->why), "unsupported Content-Encoding");
		return TS_ERR_BAD_REQUEST;
	}
	return srv_json_parse_body((const char *)call->body, n, &r->body, r->why, sizeof(r->why));
}

/* A raw upload's bytes: as sent, or inflated (capped at SRV_MAX_UPLOAD). */
static ts_err req_raw(const srv_call *call, srv_req *r)
{
	const char *enc = call->content_encoding;
	if (call->body_len > SRV_MAX_UPLOAD) {
		snprintf(r->why, sizeof(r->why), "a file is at most %d MiB", SRV_MAX_UPLOAD >> 20);
		return TS_ERR_TOO_LARGE;
	}
	if (enc && strcasecmp(enc, "gzip") == 0) {
		char *plain = NULL;
		ts_err result = body_inflate(call->body, call->body_len, SRV_MAX_UPLOAD, &plain, &r->in_len);
		if (result) {
			snprintf(r->why, sizeof(r->why), result == TS_ERR_TOO_LARGE ? "a file is at most %d MiB"
				 : "body is not valid gzip", SRV_MAX_UPLOAD >> 20);
			return result;
		}
		r->in = r->in_owned = (unsigned char *)plain;
		return TS_OK;
	}
	if (enc && strcasecmp(enc, "identity") != 0) {
		snprintf(r->why, sizeof(r->why), "unsupported Content-Encoding");
		return TS_ERR_BAD_REQUEST;
	}
	r->in = call->body;
	r->in_len = call->body_len;
	return TS_OK;
}

static int accepts_gzip(struct evhttp_request *ev)
{
	const char *ae = evhttp_find_header(evhttp_request_get_input_headers(ev), "Accept-Encoding");
	return ae && strstr(ae, "gzip") != NULL;
}

/* Adds the body to buf, gzipped when it pays. Returns 1 if it gzipped. */
static int reply_body(struct evbuffer *buf, const char *text, size_t n, int gzip)
{
	if (gzip && n >= SRV_GZIP_MIN) {
		z_stream z = {0};
		uLong cap = deflateBound(&z, (uLong)n) + 32;
		unsigned char *out = malloc(cap);
		if (out && deflateInit2(&z, 1, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK) {
			z.next_in = (unsigned char *)text;
			z.avail_in = (uInt)n;
			z.next_out = out;
			z.avail_out = (uInt)cap;
			int rc = deflate(&z, Z_FINISH);
			size_t outlen = z.total_out;
			deflateEnd(&z);
			if (rc == Z_STREAM_END) {
				evbuffer_add(buf, out, outlen);
				free(out);
				return 1;
			}
		}
		free(out);
	}
	evbuffer_add(buf, text, n);
	return 0;
}

/* An error whose JSON could not be made (out of memory) still goes out as a JSON error. */
static const char reply_fallback[] = "{\"error\":{\"code\":\"internal\",\"message\":\"internal error\"}}";

/* The one place a reply is sent: the JSON reply, or the text or raw bytes of r. */
static void send_reply(struct evhttp_request *ev, int status, srv_req *r)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(ev);
	struct evbuffer *buf = evbuffer_new();
	char *json = r->reply ? json_dumps(r->reply, JSON_COMPACT) : NULL;
	const char *body = json ? json : r->text ? r->text : r->bytes ? (const char *)r->bytes : (const char *)r->raw;
	size_t len = json ? strlen(json) : r->text ? strlen(r->text) : r->bytes ? r->bytes_len : r->raw_len;
	if (r->bytes && !r->bytes_len)
		body = ""; /* an empty output is a reply, not an error */
	if (!body && status >= 400) {
		body = reply_fallback;
		len = sizeof(reply_fallback) - 1;
	}
	evhttp_add_header(h, "Content-Type", body == reply_fallback || json || !r->content_type
						     ? "application/json" : r->content_type);
	evhttp_add_header(h, "Cache-Control", r->raw ? "no-cache" : "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	/* TLS is the only way in: browsers that saw the dashboard once never try plain HTTP. */
	evhttp_add_header(h, "Strict-Transport-Security", "max-age=31536000");
	if (r->raw) {
		/* The dashboard: only its own files, never framed. */
		evhttp_add_header(h, "Content-Security-Policy",
				  "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
		evhttp_add_header(h, "X-Frame-Options", "DENY");
		evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	}
	if (r->content_range[0])
		evhttp_add_header(h, "Content-Range", r->content_range);
	if (r->content_type && strcmp(r->content_type, "application/octet-stream") == 0)
		evhttp_add_header(h, "Accept-Ranges", "bytes");
	if (status == 429) {
		char secs[24];
		snprintf(secs, sizeof(secs), "%d", r->retry_after > 1 ? (int)(r->retry_after + 0.999) : 1);
		evhttp_add_header(h, "Retry-After", secs);
	}
	if (body && buf && reply_body(buf, body, len, accepts_gzip(ev)))
		evhttp_add_header(h, "Content-Encoding", "gzip");
	evhttp_send_reply(ev, status, NULL, buf);
	if (buf)
		evbuffer_free(buf);
	free(json);
}

/* The JSON error for e. Messages may quote the request, and jansson refuses a message that is
 * not valid UTF-8 (an error without its body is worse than any message): every message goes
 * out through ts_escape_ctrl, valid UTF-8 with no control character, and if even that cannot be
 * packed, the generic text of e. */
static json_t *error_json(ts_err e, const char *why)
{
	char clean[4 * sizeof(((srv_req *)0)->why)];
	json_t *j = json_pack("{s:{s:s,s:s}}", "error", "code", ts_err_code(e), "message",
			      ts_escape_ctrl(why && *why ? why : ts_strerror(e), clean, sizeof(clean)));
	if (!j)
		j = json_pack("{s:{s:s,s:s}}", "error", "code", ts_err_code(e), "message", ts_strerror(e));
	return j;
}

static void count_request(srv_ctx *ctx, size_t route, int status, double seconds)
{
	srv_route_stats *st = &ctx->route_stats[route];
	int cls = status / 100;
	st->by_class[cls >= 1 && cls <= 5 ? cls : 5]++;
	st->seconds += seconds;
	size_t b = 0;
	while (b < SRV_LATENCY_BUCKETS && seconds > srv_latency_bounds[b])
		b++;
	ctx->latency[b]++;
}

/* Rate limits: per address on every route (stricter for login and enroll, which cost a KDF or
 * hand out credentials), then per token once the caller is known. */
static ts_err rate_limit(srv_ctx *ctx, srv_limiter *l, const void *key, size_t len, srv_req *r)
{
	double wait = srv_limiter_take(l, key, len, ts_mono());
	if (wait <= 0)
		return TS_OK;
	r->retry_after = wait;
	snprintf(r->why, sizeof(r->why), "too many requests; retry in %.1f s", wait);
	return TS_ERR_RATE_LIMITED;
}

/* Keyed by the peer's network, not its exact address: an IPv6 client owns a whole /64. */
static ts_err limit_address(srv_ctx *ctx, const srv_call *call, const srv_route *route, srv_req *r)
{
	char key[SRV_ADDR_KEY_MAX];
	if (!call->peer)
		return TS_OK;
	size_t n = srv_limit_addr_key(call->peer, key);
	ts_err result = rate_limit(ctx, ctx->lim_addr, key, n, r);
	/* Login, enrollment and password changes cost a KDF or check a secret: a stricter limit. */
	if (!result && route && (route->handler == api_login || route->handler == api_node_enroll ||
				 route->handler == api_user_password))
		result = rate_limit(ctx, ctx->lim_login, key, n, r);
	return result;
}

ts_err srv_http_kdf(srv_ctx *ctx, srv_req *r, srv_pw_job *job, srv_kdf_cont cont)
{
	ts_err result;
	if (!job)
		return TS_ERR_NOMEM;
	if (!ctx->kdf) {
		srv_pw_job_run(job);
		result = cont(ctx, r, job);
		srv_pw_job_free(job);
		return result;
	}
	if (!srv_kdf_has_room(ctx->kdf)) {
		/* Queued KDFs cost memory and make every waiting client slower: shed load instead. */
		srv_pw_job_free(job);
		r->retry_after = 1;
		snprintf(r->why, sizeof(r->why), "too many password checks in progress; retry in a second");
		return TS_ERR_RATE_LIMITED;
	}
	r->kdf_job = job;
	r->kdf_cont = cont;
	return TS_OK;
}

/* A request's end, whatever the handler returned: an error becomes the JSON error reply. */
static void handle_finish(srv_ctx *ctx, const srv_route *route, const char *path, srv_req *r,
			  ts_err result)
{
	if (!result)
		return;
	r->wait_until = 0; /* an error is answered now */
	json_decref(r->reply);
	free(r->text);
	free(r->bytes);
	r->text = NULL;
	r->bytes = NULL;
	r->raw = NULL;
	r->status = ts_err_http_status(result);
	if (r->status >= 500) {
		char shown_path[4 * 256], shown_why[4 * sizeof(r->why)];
		fprintf(stderr, "%s: %s %s: %s (%s)\n", __func__, route ? route->path : "?",
			ts_escape_ctrl(path ? path : "?", shown_path, sizeof(shown_path)),
			ts_strerror(result), ts_escape_ctrl(r->why, shown_why, sizeof(shown_why)));
	}
	r->reply = error_json(result, r->why);
}

void srv_http_handle(srv_ctx *ctx, const srv_call *call, srv_req *r, size_t *route_index)
{
	const srv_route *route = NULL;
	const char *path = call->path;
	int path_known = 0;
	ts_err result;
	ctx->requests++;
	for (size_t i = 0; path && i < TS_ARRAY_LEN(routes); i++) {
		int64_t id = 0;
		if (!route_match(routes[i].path, path, &id, r->hash, r->name))
			continue;
		path_known = 1;
		if (routes[i].method == call->method) {
			route = &routes[i];
			r->id = id;
			break;
		}
	}
	if (!route && !path_known && path && call->method == EVHTTP_REQ_GET && srv_assets_serve(path, r) == TS_OK) {
		result = TS_OK;
		goto out;
	}
	result = r->rerun ? TS_OK : limit_address(ctx, call, route, r);
	if (result)
		goto out;
	if (!route) {
		result = path_known ? TS_ERR_METHOD : TS_ERR_NOT_FOUND;
		snprintf(r->why, sizeof(r->why), path_known ? "method not allowed here" : "no such route");
		goto out;
	}
	/* The role is checked before the body is even parsed. */
	if (route->roles != ROLE_ANY) {
		result = srv_auth_bearer(ctx->db, call->authorization, r->now, &r->who);
		if (result) {
			/* A store that cannot answer is not a revocation: that one is a 503, not a 401. */
			snprintf(r->why, sizeof(r->why), "%s", result == TS_ERR_FORBIDDEN ?
				 "this account is disabled" : result == TS_ERR_UNAUTHORIZED ?
				 "a valid bearer token is required" : "the store is not available; retry");
			goto out;
		}
		result = r->rerun ? TS_OK : rate_limit(ctx, ctx->lim_token, &r->who.token_id, sizeof(r->who.token_id), r);
		if (result)
			goto out;
		if (!(r->who.role & route->roles)) {
			result = TS_ERR_FORBIDDEN;
			snprintf(r->why, sizeof(r->why), "this token may not use %s", route->path);
			goto out;
		}
	}
	if (route->body == BODY_JSON || (route->body == BODY_OPTIONAL && call->body_len)) {
		result = req_body(call, r);
		if (result)
			goto out;
	}
	if (route->body == BODY_RAW) {
		result = req_raw(call, r);
		if (result)
			goto out;
	}
	/* The dispatcher owns the transaction: every handler that may write runs in one, committed
	 * (or, in group mode, released into the group) before the reply, or rolled back whole. */
	int writes = route->method != EVHTTP_REQ_GET;
	result = writes ? srv_db_begin(ctx->db) : TS_OK;
	if (!result)
		result = route->handler(ctx, r);
	if (writes && !result)
		result = srv_db_commit(ctx->db);
	if (result)
		srv_db_rollback(ctx->db);
	if (result == TS_ERR_UNAVAILABLE && !r->why[0])
		snprintf(r->why, sizeof(r->why), "the store is busy; retry");
out:
	handle_finish(ctx, route, path, r, result);
	*route_index = route ? (size_t)(route - routes) : SRV_ROUTES_MAX;
}

void srv_req_clear(srv_req *r)
{
	json_decref(r->reply);
	free(r->text);
	free(r->bytes);
	free(r->in_owned);
	json_decref(r->body);
	r->reply = r->body = NULL;
	r->text = NULL;
	r->bytes = r->in_owned = NULL;
}

/* A reply that depends on uncommitted work, held until the group commit. */
struct srv_held {
	struct evhttp_request *ev;
	srv_req r;
	size_t route;
	double t0;
};

/* Sends r now: a 503 says when to come back, as a 429 does. */
static void reply_now(struct evhttp_request *ev, srv_req *r)
{
	if (r->status == 503)
		evhttp_add_header(evhttp_request_get_output_headers(ev), "Retry-After", "1");
	send_reply(ev, r->status, r);
}

static void send_held(srv_ctx *ctx, struct srv_held *h, ts_err commit)
{
	if (commit) {
		/* The work was not committed: the client must not take it as done. */
		srv_req_clear(&h->r);
		h->r.status = ts_err_http_status(TS_ERR_UNAVAILABLE);
		h->r.reply = error_json(TS_ERR_UNAVAILABLE, "the store could not commit; retry");
	}
	reply_now(h->ev, &h->r);
	count_request(ctx, h->route, h->r.status, ts_mono() - h->t0);
	srv_req_clear(&h->r);
}

/* Commits the group transaction, then sends every reply it held. */
static void flush_group(srv_ctx *ctx)
{
	ts_err result = srv_db_flush(ctx->db);
	if (result)
		fprintf(stderr, "%s: group commit failed: %s\n", __func__, ts_strerror(result));
	ctx->commits++;
	ctx->grouped += ctx->n_held;
	for (size_t i = 0; i < ctx->n_held; i++)
		send_held(ctx, &ctx->held[i], result);
	ctx->n_held = 0;
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	flush_group(arg);
}

/* Sends r's reply, or holds it until the group commit when it depends on uncommitted work;
 * takes r's contents either way. */
static void reply_or_hold(srv_ctx *ctx, struct evhttp_request *ev, srv_req *r, size_t route, double t0)
{
	if (srv_db_pending(ctx->db)) {
		/* Held until the group commits: after the other requests ready now, at the latest. A
		 * connection that closes meanwhile is fine: evhttp keeps a request the user holds. */
		ctx->held[ctx->n_held++] = (struct srv_held){ev, *r, route, t0};
		if (ctx->n_held == SRV_GROUP_MAX)
			flush_group(ctx);
		else if (ctx->n_held == 1)
			event_active(ctx->flush_ev, EV_TIMEOUT, 0);
		return;
	}
	reply_now(ev, r);
	count_request(ctx, route, r->status, ts_mono() - t0);
	srv_req_clear(r);
}

/* A request waiting for its KDF on the pool; the evhttp request stays ours until the reply. */
struct srv_deferred {
	srv_ctx *ctx;
	struct evhttp_request *ev;
	srv_req r;
	size_t route;
	double t0;
};

/* On the loop, the KDF done: the handler's continuation, then the reply as for any request. */
static void on_kdf_done(void *arg)
{
	struct srv_deferred *d = arg;
	srv_ctx *ctx = d->ctx;
	const srv_route *route = d->route < TS_ARRAY_LEN(routes) ? &routes[d->route] : NULL;
	srv_pw_job *job = d->r.kdf_job;
	d->r.kdf_job = NULL;
	d->r.now = ts_now();
	/* The continuation writes (a session, a password): in its own transaction, as any handler. */
	ts_err result = srv_db_begin(ctx->db);
	if (!result)
		result = d->r.kdf_cont(ctx, &d->r, job);
	if (!result)
		result = srv_db_commit(ctx->db);
	srv_pw_job_free(job);
	if (result)
		srv_db_rollback(ctx->db);
	handle_finish(ctx, route, route ? route->path : NULL, &d->r, result);
	reply_or_hold(ctx, d->ev, &d->r, d->route, d->t0);
	free(d);
}

static void kdf_work(void *arg)
{
	srv_pw_job_run(((struct srv_deferred *)arg)->r.kdf_job);
}

/* Hands a request whose handler asked for a KDF (r->kdf_job) to the pool; takes r. */
static void defer(srv_ctx *ctx, struct evhttp_request *ev, srv_req *r, size_t route, double t0)
{
	struct srv_deferred *d = malloc(sizeof(*d));
	if (d) {
		*d = (struct srv_deferred){ctx, ev, *r, route, t0};
		/* srv_http_kdf saw room just now, and nothing ran on the loop since. */
		if (srv_kdf_submit(ctx->kdf, kdf_work, on_kdf_done, d) == 0)
			return;
		*r = d->r;
		free(d);
	}
	srv_pw_job_free(r->kdf_job);
	r->kdf_job = NULL;
	srv_req_clear(r);
	handle_finish(ctx, route < TS_ARRAY_LEN(routes) ? &routes[route] : NULL, NULL, r, TS_ERR_NOMEM);
	reply_or_hold(ctx, ev, r, route, t0);
}

/* A fetch waiting for work (long-poll). Its evhttp request stays ours until the reply; the
 * call's strings live in that request (the peer is copied: it belongs to the connection). */
struct srv_waiter {
	struct evhttp_request *ev;
	srv_call call;
	char peer[64];
	size_t route;
	double t0, until;
};

/* Parks a fetch that found no work; takes r. When there is no room it is answered now. */
static void park(srv_ctx *ctx, struct evhttp_request *ev, srv_req *r, const srv_call *call, size_t route,
		 double t0)
{
	if (ctx->n_waiters < ctx->max_waiters) {
		struct srv_waiter *w = &ctx->waiters[ctx->n_waiters++];
		*w = (struct srv_waiter){ev, *call, "", route, t0, r->wait_until};
		snprintf(w->peer, sizeof(w->peer), "%s", call->peer ? call->peer : "");
		w->call.peer = w->peer;
		srv_req_clear(r);
		return;
	}
	/* Full: run it again at once, told not to wait, so it gets its (empty) answer. */
	srv_req_clear(r);
	srv_req again = {.call = call, .now = ts_now(), .status = 200, .rerun = 1};
	size_t rt;
	srv_http_handle(ctx, call, &again, &rt);
	again.wait_until = 0;
	reply_or_hold(ctx, ev, &again, route, t0);
}

/* Whether a waiting fetch's node went away: its connection is gone, closed (EOF), or has sent
 * something (a TLS close_notify: a client that waits sends nothing). Such a request is freed,
 * so that no work is handed to a node that will never see it. */
static int waiter_gone(struct srv_waiter *w)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(w->ev);
	if (!evcon) {
		evhttp_request_free(w->ev); /* evhttp saw the close and left the request to us */
		return 1;
	}
	evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
	char c;
	ssize_t n = fd >= 0 ? recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) : 0;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	evhttp_connection_free(evcon); /* frees the request with it */
	return 1;
}

/* Runs waiter w's fetch again. Returns 1 if it was answered (work, an error, or its time is
 * up: final) or its node went away, 0 if it still waits. */
static int waiter_run(srv_ctx *ctx, struct srv_waiter *w, int final)
{
	if (waiter_gone(w))
		return 1;
	srv_req r = {.call = &w->call, .now = ts_now(), .status = 200, .rerun = 1,
		     .wait_until = final ? 0 : w->until};
	size_t route;
	srv_http_handle(ctx, &w->call, &r, &route);
	if (r.wait_until > 0 && !r.reply && !final) {
		srv_req_clear(&r);
		return 0;
	}
	r.call = NULL;
	r.wait_until = 0;
	reply_or_hold(ctx, w->ev, &r, w->route, w->t0);
	return 1;
}

/* Runs the waiting fetches again, oldest first, or answers those whose time is up (all with
 * everything). After a few that still find nothing, the rest are left waiting: work is shared,
 * so more of the same would find nothing too (a later hint or their deadline comes for them). */
static void waiters_run(srv_ctx *ctx, int all_final)
{
	double now = ts_mono();
	int empty = 0;
	size_t kept = 0;
	for (size_t i = 0; i < ctx->n_waiters; i++) {
		struct srv_waiter w = ctx->waiters[i];
		int final = all_final || w.until <= now;
		if ((final || empty < 3) ? waiter_run(ctx, &w, final) : waiter_gone(&w))
			continue;
		empty += !final;
		ctx->waiters[kept++] = w;
	}
	ctx->n_waiters = kept;
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	srv_ctx *ctx = arg;
	ctx->work_hint = 0;
	waiters_run(ctx, 0);
}

void srv_http_work_hint(srv_ctx *ctx)
{
	ctx->work_hint = 1;
}

static void dispatch(struct evhttp_request *ev, void *arg)
{
	srv_ctx *ctx = arg;
	struct evkeyvalq *in = evhttp_request_get_input_headers(ev);
	struct evbuffer *body = evhttp_request_get_input_buffer(ev);
	struct evhttp_connection *conn = evhttp_request_get_connection(ev);
	char *peer = NULL;
	ev_uint16_t port = 0;
	size_t route;
	double t0 = ts_mono();
	evhttp_connection_get_peer(conn, &peer, &port);
	srv_call call = {
		.method = evhttp_request_get_command(ev),
		.path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(ev)),
		.authorization = evhttp_find_header(in, "Authorization"),
		.content_encoding = evhttp_find_header(in, "Content-Encoding"),
		.host = evhttp_find_header(in, "Host"),
		.range = evhttp_find_header(in, "Range"),
		.query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(ev)),
		.peer = peer,
		.body_len = evbuffer_get_length(body),
	};
	call.body = call.body_len ? evbuffer_pullup(body, -1) : NULL;
	srv_req r = {.call = &call, .now = ts_now(), .status = 200};
	srv_http_handle(ctx, &call, &r, &route);
	srv_conns_done(ctx->conns, bufferevent_getfd(evhttp_connection_get_bufferevent(conn)), ts_mono());
	r.call = NULL;
	if (ctx->work_hint && ctx->n_waiters && ctx->wake_ev)
		event_active(ctx->wake_ev, EV_TIMEOUT, 0);
	if (r.kdf_job || (r.wait_until > 0 && !r.reply)) {
		/* No reply yet: a group this request opened must not stay open (holding the write lock)
		 * while no reply is waiting to flush it. */
		if (srv_db_pending(ctx->db) && ctx->n_held == 0)
			flush_group(ctx);
		if (r.kdf_job)
			defer(ctx, ev, &r, route, t0);
		else
			park(ctx, ev, &r, &call, route, t0);
		return;
	}
	reply_or_hold(ctx, ev, &r, route, t0);
}

/* Each connection gets its own TLS session; BEV_OPT_CLOSE_ON_FREE closes the socket with it. */
static struct bufferevent *make_tls_bev(struct event_base *base, void *arg)
{
	srv_ctx *ctx = arg;
	SSL *ssl = SSL_new(ctx->ssl);
	struct bufferevent *bev = ssl ? bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
								       BEV_OPT_CLOSE_ON_FREE) : NULL;
	if (!bev) {
		/* evhttp would fall back to plaintext on NULL: never serve the API without TLS. */
		fprintf(stderr, "%s: out of memory for a TLS connection\n", __func__);
		abort();
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	srv_conns_add(ctx->conns, bev, ts_mono());
	return bev;
}

ts_err srv_http_start(srv_ctx *ctx, const char *host, int port)
{
	const srv_config *cfg = &ctx->cfg;
	srv_conn_limits lim = {(size_t)cfg->max_connections, (size_t)cfg->max_conns_per_addr,
			       (double)cfg->request_timeout_s, (double)cfg->idle_timeout_s};
	uint64_t seed = 0;
	ts_random(&seed, sizeof(seed));
	ctx->conns = srv_conns_new(&lim);
	ctx->lim_addr = srv_limiter_new(16384, (double)cfg->rate_limit, 2.0 * (double)cfg->rate_limit, seed);
	ctx->lim_token = srv_limiter_new(16384, (double)cfg->rate_limit, 2.0 * (double)cfg->rate_limit, seed + 1);
	ctx->lim_login = srv_limiter_new(4096, (double)cfg->login_rate / 60.0, (double)cfg->login_rate, seed + 2);
	ctx->kdf = srv_kdf_new(ctx->base, cfg->kdf_workers > 0 ? (int)cfg->kdf_workers : 2,
			       cfg->kdf_queue > 0 ? (int)cfg->kdf_queue : 8);
	ctx->http = evhttp_new(ctx->base);
	ctx->held = calloc(SRV_GROUP_MAX, sizeof(*ctx->held));
	ctx->max_waiters = (size_t)cfg->max_connections;
	ctx->waiters = calloc(ctx->max_waiters, sizeof(*ctx->waiters));
	ctx->wake_ev = event_new(ctx->base, -1, 0, on_wake, ctx);
	/* The flush runs at the lowest priority: after every request that is ready now. */
	ctx->flush_ev = event_new(ctx->base, -1, 0, on_flush, ctx);
	if (!ctx->http || !ctx->conns || !ctx->lim_addr || !ctx->lim_token || !ctx->lim_login ||
	    !ctx->held || !ctx->flush_ev || !ctx->kdf || !ctx->waiters || !ctx->wake_ev)
		return TS_ERR_NOMEM;
	event_priority_set(ctx->flush_ev, SRV_PRIORITIES - 1);
	event_priority_set(ctx->wake_ev, SRV_PRIORITIES - 1);
	if (ctx->db) /* else the caller sets it when it opens the store (after dropping root) */
		srv_db_set_group(ctx->db, (int)cfg->group_commit);
	evhttp_set_bevcb(ctx->http, make_tls_bev, ctx);
	evhttp_set_gencb(ctx->http, dispatch, ctx);
	/* The wire body, gzipped or not, is capped at SRV_MAX_BODY by evhttp itself, before any of
	 * it is read: a Content-Length over it gets evhttp's own 413 and a close at once, and a
	 * chunked body is cut when its chunks announce more. libevent 2.1.12 has no hook between
	 * the headers and the body on the server side (evhttp_request_set_header_cb needs the
	 * request, and there is no evhttp_set_newreqcb before 2.2), so that 413 cannot be our JSON
	 * one and the role check cannot come before the read; see docs/DESIGN-NOTES.md. */
	evhttp_set_max_body_size(ctx->http, SRV_MAX_BODY);
	evhttp_set_max_headers_size(ctx->http, SRV_MAX_HEADERS);
	evhttp_set_timeout(ctx->http, (int)(cfg->idle_timeout_s > 0 ? cfg->idle_timeout_s : SRV_IDLE_TIMEOUT_S));
	evhttp_set_allowed_methods(ctx->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE |
						   EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH | EVHTTP_REQ_HEAD |
						   EVHTTP_REQ_OPTIONS);
	struct evhttp_bound_socket *sock = evhttp_bind_socket_with_handle(ctx->http, host, (ev_uint16_t)port);
	if (!sock) {
		fprintf(stderr, "%s: cannot listen on %s:%d\n", __func__, host, port);
		return TS_ERR_IO;
	}
	evutil_socket_t fd = evhttp_bound_socket_get_fd(sock);
	/* Accepted sockets inherit TCP_NODELAY on Linux; without it each reply waits ~40 ms. */
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		ctx->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							    : ((struct sockaddr_in *)&ss)->sin_port);
	return TS_OK;
}

void srv_http_sweep(srv_ctx *ctx)
{
	/* Long-polls whose time is up are answered; and once a second the oldest waiters look again,
	 * for work that appeared without a hint (a lease that expired). */
	if (ctx->n_waiters)
		waiters_run(ctx, 0);
	int shut = srv_conns_sweep(ctx->conns, ts_mono());
	if (shut && !ctx->quiet)
		fprintf(stderr, "closed %d slow or excess connections\n", shut);
}

void srv_http_stop(srv_ctx *ctx)
{
	/* The KDFs in flight finish and answer first; their replies may join the group. */
	srv_kdf_free(ctx->kdf);
	ctx->kdf = NULL;
	waiters_run(ctx, 1); /* every long-poll gets its answer */
	free(ctx->waiters);
	ctx->waiters = NULL;
	if (ctx->wake_ev)
		event_free(ctx->wake_ev);
	ctx->wake_ev = NULL;
	if (ctx->n_held)
		flush_group(ctx);
	if (ctx->flush_ev)
		event_free(ctx->flush_ev);
	ctx->flush_ev = NULL;
	free(ctx->held);
	ctx->held = NULL;
	if (ctx->http)
		evhttp_free(ctx->http);
	ctx->http = NULL;
	srv_conns_free(ctx->conns);
	srv_limiter_free(ctx->lim_addr);
	srv_limiter_free(ctx->lim_token);
	srv_limiter_free(ctx->lim_login);
	ctx->conns = NULL;
	ctx->lim_addr = ctx->lim_token = ctx->lim_login = NULL;
}
