/* libFuzzer target: any route, any caller, any body (plain or gzip) through the server's real
 * request core (routing, auth, body caps, inflate, JSON validation, handlers) on an in-memory
 * store. Invariants: no crash, no 5xx, every error is a JSON error with a printable message
 * (valid UTF-8, no control characters), and a refused request changes nothing in the store.
 * Input: [route][caller|gzip][id] body... ({hash} routes get a fixed file hash; the output
 * routes take the body's first line as their query string as well, and {name} routes as their
 * name.) BOINC's routes run with keys in a temp dir, a stand-in app file, and a fixed
 * enrollment token that the corpus uses as the account key (FUZZ_BOINC_KEY). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ftw.h>
#include <unistd.h>

#include "srv_auth.h"
#include "srv_boinc.h"
#include "srv_db.h"
#include "srv_http.h"
#include "ts_token.h"
#include "ts_util.h"

enum { CALLER_NONE, CALLER_ADMIN, CALLER_USER, CALLER_NODE, CALLER_RAW, CALLERS };

/* "tse1.<43 secret>.<43 pin>": the secret "B...BA", the pin all 'A'. */
#define FUZZ_BOINC_KEY "tse1.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

static srv_ctx ctx;
static char tokens[CALLERS][TS_TOKEN_MAX];

static void must(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz set-up failed: %s\n", what);
		abort();
	}
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* The BOINC temp dir goes with the fuzzer. */
static void remove_data_dir(void)
{
	if (ctx.data_dir[0])
		nftw(ctx.data_dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
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
	/* BOINC: keys and files in a temp dir, an app file of a few bytes, a known account key. */
	char dir[] = "/tmp/tessera-fuzz-XXXXXX", apps[64], app[96];
	must(mkdtemp(dir) != NULL, "temp dir");
	snprintf(ctx.data_dir, sizeof(ctx.data_dir), "%s", dir);
	atexit(remove_data_dir);
	snprintf(apps, sizeof(apps), "%s/apps", dir);
	snprintf(app, sizeof(app), "%s/tessera-boinc-x86_64", apps);
	must(ts_mkdirs(apps, 0700) == TS_OK && ts_write_file(app, "#!/bin/true\n", 12, 0700) == TS_OK, "app");
	setenv("TESSERA_BOINC_APPS", apps, 1);
	must(srv_boinc_start(&ctx) == TS_OK, "boinc");
	char secret[TS_TOKEN_MAX], khash[TS_TOKEN_HASH_HEX];
	must(ts_token_parse_enroll(FUZZ_BOINC_KEY, secret, NULL) == TS_OK, "boinc key");
	ts_token_hash(secret, khash);
	st = srv_db_stmt(ctx.db, Q_TOKEN_INSERT);
	sqlite3_bind_text(st, 1, khash, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, "enroll", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, 1);
	sqlite3_bind_null(st, 4);
	sqlite3_bind_int64(st, 5, 1000000);
	sqlite3_bind_int64(st, 6, now + 86400 * 365);
	sqlite3_bind_int64(st, 7, now);
	sqlite3_bind_null(st, 8);
	must(srv_db_exec(ctx.db, st) == TS_OK, "enroll token");
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
	const char *hole = strstr(rt->path, "{id}"), *hash = strstr(rt->path, "{hash}"), *name = strstr(rt->path, "{name}");
	char query[64] = "";
	if (hole)
		snprintf(path, sizeof(path), "%.*s%u%s", (int)(hole - rt->path), rt->path, data[2], hole + 4);
	else if (hash) /* sha256("echo hi\n"), which the corpus uploads */
		snprintf(path, sizeof(path), "%.*s%s%s", (int)(hash - rt->path), rt->path,
			 "ab08508fdf5ca4da5c4995987bc41c56c048aaa5eeb046417ae4049b7d40286e", hash + 6);
	else
		snprintf(path, sizeof(path), "%s", rt->path);
	if (strstr(rt->path, "/output") || name) {
		size_t k = 0;
		while (k + 3 < size && k < sizeof(query) - 1 && data[3 + k] != '\n' && data[3 + k])
			k++;
		memcpy(query, data + 3, k);
		query[k] = '\0';
	}
	if (name)
		snprintf(path, sizeof(path), "%.*s%s", (int)(name - rt->path), rt->path, query);
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
