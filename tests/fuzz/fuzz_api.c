/* libFuzzer target: any route, any caller, any body (plain or gzip) through the server's real
 * request core (routing, auth, body caps, inflate, JSON validation, handlers) on an in-memory
 * store. Invariants: no crash, no 5xx, every error is a JSON error with a printable message
 * (valid UTF-8, no control characters), and a refused request changes nothing in the store.
 * Input: [route][caller|gzip][id] body... ({hash} routes get a fixed file hash; the output
 * routes take the body's first line as their query string as well.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "srv_auth.h"
#include "srv_db.h"
#include "srv_http.h"
#include "ts_token.h"
#include "ts_util.h"

enum { CALLER_NONE, CALLER_ADMIN, CALLER_USER, CALLER_NODE, CALLER_RAW, CALLERS };

static srv_ctx ctx;
static char tokens[CALLERS][TS_TOKEN_MAX];

static void must(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz set-up failed: %s\n", what);
		abort();
	}
}

static void setup(void)
{
	char hash[SRV_PW_HASH_MAX];
	int64_t now = ts_now();
	must(srv_db_open(":memory:", 1, &ctx.db) == TS_OK, "store");
	ctx.quiet = 1;
	ctx.node_timeout_s = ctx.cfg.node_timeout_s = 120;
	must(srv_auth_hash_password("fuzz-password", hash) == TS_OK, "hash");
	const char *users[][2] = {{"admin", "admin"}, {"alice", "user"}};
	for (int i = 0; i < 2; i++) {
		sqlite3_stmt *st = srv_db_stmt(ctx.db, Q_USER_INSERT);
		sqlite3_bind_text(st, 1, users[i][0], -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, users[i][1], -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, now);
		must(srv_db_exec(ctx.db, st) == TS_OK, "user");
	}
	sqlite3_stmt *st = srv_db_stmt(ctx.db, Q_NODE_INSERT);
	sqlite3_bind_text(st, 1, "node", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, "fuzz", -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, 2);
	sqlite3_bind_int64(st, 4, now);
	must(srv_db_exec(ctx.db, st) == TS_OK, "node");
	must(srv_auth_issue(ctx.db, "session", 1, 0, 0, now + 86400, NULL, now, tokens[CALLER_ADMIN]) == TS_OK, "t");
	must(srv_auth_issue(ctx.db, "session", 2, 0, 0, now + 86400, NULL, now, tokens[CALLER_USER]) == TS_OK, "t");
	must(srv_auth_issue(ctx.db, "node", 0, 1, 0, 0, NULL, now, tokens[CALLER_NODE]) == TS_OK, "t");
	/* alice may run programs: uploads and program jobs reach their handlers. */
	must(SRV_EXEC(ctx.db, Q_USER_SET_PROGRAMS, 2, 1) == TS_OK, "grant");
	/* Rate limits off: the fuzzer is one very fast client. */
	ctx.lim_addr = ctx.lim_token = ctx.lim_login = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		setup();
		ready = 1;
	}
	if (size < 3)
		return 0;
	size_t n;
	const srv_route *routes = srv_http_routes(&n);
	const srv_route *rt = &routes[data[0] % n];
	int caller = (data[1] & 0x7f) % CALLERS, gzip = data[1] & 0x80;
	char path[160], authz[TS_TOKEN_MAX + 16], raw[64];
	const char *hole = strstr(rt->path, "{id}"), *hash = strstr(rt->path, "{hash}");
	char query[64] = "";
	if (hole)
		snprintf(path, sizeof(path), "%.*s%u%s", (int)(hole - rt->path), rt->path, data[2], hole + 4);
	else if (hash) /* sha256("echo hi\n"), which the corpus uploads */
		snprintf(path, sizeof(path), "%.*s%s%s", (int)(hash - rt->path), rt->path,
			 "ab08508fdf5ca4da5c4995987bc41c56c048aaa5eeb046417ae4049b7d40286e", hash + 6);
	else
		snprintf(path, sizeof(path), "%s", rt->path);
	if (strstr(rt->path, "/output")) {
		size_t k = 0;
		while (k + 3 < size && k < sizeof(query) - 1 && data[3 + k] != '\n' && data[3 + k])
			k++;
		memcpy(query, data + 3, k);
		query[k] = '\0';
	}
	data += 3;
	size -= 3;
	const char *auth = NULL;
	if (caller == CALLER_RAW) {
		/* The first bytes of the body double as a made-up token. */
		size_t k = size < sizeof(raw) - 1 ? size : sizeof(raw) - 1;
		memcpy(raw, data, k);
		raw[k] = '\0';
		snprintf(authz, sizeof(authz), "Bearer %s", raw);
		auth = authz;
	} else if (caller != CALLER_NONE) {
		snprintf(authz, sizeof(authz), "Bearer %s", tokens[caller]);
		auth = authz;
	}
	srv_call call = {
		.method = rt->method, .path = path, .authorization = auth,
		.content_encoding = gzip ? "gzip" : NULL, .host = "127.0.0.1:8443", .peer = NULL,
		.query = query[0] ? query : NULL,
		.body = data, .body_len = size,
	};
	srv_req r = {.call = &call, .now = ts_now(), .status = 200};
	size_t route;
	int before = sqlite3_total_changes(srv_db_handle(ctx.db));
	srv_http_handle(&ctx, &call, &r, &route);
	int changed = sqlite3_total_changes(srv_db_handle(ctx.db)) != before;
	if (r.status >= 500) {
		fprintf(stderr, "%s %s: %d %s\n", rt->path, path, r.status, r.why);
		abort();
	}
	if (r.status >= 400) {
		json_t *err = json_object_get(r.reply, "error");
		const char *msg = json_string_value(json_object_get(err, "message"));
		if (!json_is_string(json_object_get(err, "code")) || !msg || !*msg)
			abort();
		if (!ts_utf8_printable(msg)) {
			fprintf(stderr, "%s: %d with control characters in the message\n", path, r.status);
			abort();
		}
		if (changed) {
			fprintf(stderr, "%s answered %d but changed the store\n", path, r.status);
			abort();
		}
	} else if (!r.reply && !r.text && !r.raw && !r.bytes) {
		abort();
	}
	srv_req_clear(&r);
	return 0;
}
