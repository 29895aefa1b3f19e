/* Security behaviour that needs concurrency or a failing store: password KDFs off the event
 * loop (and their cap), a store that cannot answer is a 503 and never a 401, and a client that
 * rides out such an outage instead of stopping. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "srv_http.h"
#include "th_harness.h"
#include "ts_util.h"

static th_server srv;

static void teardown(void)
{
	th_server_stop(&srv);
}

static void nap(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* One request of a parallel batch. */
struct call {
	CURL *c;
	struct curl_slist *h;
	long status;
	long retry_after;
	int done_at; /* 1-based position in the order the replies came; 0: not yet */
};

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
	return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct call *k = arg;
	size_t len = size * n;
	if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0)
		k->retry_after = strtol(p + 12, NULL, 10);
	return len;
}

static void call_init(struct call *k, const char *path, const char *body)
{
	char url[256];
	memset(k, 0, sizeof(*k));
	k->retry_after = -1;
	k->c = curl_easy_init();
	snprintf(url, sizeof(url), "%s%s", srv.url, path);
	curl_easy_setopt(k->c, CURLOPT_URL, url);
	curl_easy_setopt(k->c, CURLOPT_PINNEDPUBLICKEY, srv.pin);
	curl_easy_setopt(k->c, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(k->c, CURLOPT_SSL_VERIFYHOST, 0L);
	curl_easy_setopt(k->c, CURLOPT_TIMEOUT, 120L);
	/* Each on its own connection, as many users' browsers would be. */
	curl_easy_setopt(k->c, CURLOPT_FRESH_CONNECT, 1L);
	curl_easy_setopt(k->c, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(k->c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(k->c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(k->c, CURLOPT_HEADERDATA, k);
	curl_easy_setopt(k->c, CURLOPT_PRIVATE, k);
	if (body) {
		k->h = curl_slist_append(NULL, "Content-Type: application/json");
		curl_easy_setopt(k->c, CURLOPT_HTTPHEADER, k->h);
		curl_easy_setopt(k->c, CURLOPT_COPYPOSTFIELDS, body);
	}
}

static void call_free(struct call *k)
{
	curl_easy_cleanup(k->c);
	curl_slist_free_all(k->h);
}

/* Runs the multi handle until one more transfer ends; records it. Returns 0 when none is left. */
static int multi_step(CURLM *m, int *order)
{
	int running = 1;
	for (;;) {
		int left;
		CURLMsg *msg;
		while ((msg = curl_multi_info_read(m, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			struct call *k = NULL;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&k);
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &k->status);
			k->done_at = ++*order;
			curl_multi_remove_handle(m, msg->easy_handle);
			return 1;
		}
		if (!running)
			return 0;
		curl_multi_perform(m, &running);
		curl_multi_poll(m, NULL, 0, 100, NULL);
	}
}

#define LOGINS 20
#define KDF_QUEUE 8

Test(security, healthz_answers_while_logins_hash, .fini = teardown, .timeout = 300)
{
	/* One KDF thread, so the admitted logins take turns and stay in progress for a while. */
	static const char *const args[] = {"--kdf-workers", "1", "--kdf-queue", "8", NULL};
	struct call logins[LOGINS], health;
	char body[256];
	int order = 0;
	th_server_start_args(&srv, args);
	snprintf(body, sizeof(body), "{\"username\":\"admin\",\"password\":\"%s\"}", TH_ADMIN_PASSWORD);
	CURLM *m = curl_multi_init();
	for (int i = 0; i < LOGINS; i++) {
		call_init(&logins[i], "/api/v1/login", body);
		curl_multi_add_handle(m, logins[i].c);
	}
	/* Once a login has succeeded the server is hashing; a /healthz then must not wait for it. */
	int first_ok = 0;
	while (!first_ok && multi_step(m, &order))
		for (int i = 0; i < LOGINS; i++)
			first_ok |= logins[i].done_at && logins[i].status == 200;
	cr_assert(first_ok, "no login succeeded");
	call_init(&health, "/healthz", NULL);
	curl_multi_add_handle(m, health.c);
	while (multi_step(m, &order))
		;
	int ok = 0, limited = 0, last_ok = 0;
	for (int i = 0; i < LOGINS; i++) {
		struct call *k = &logins[i];
		cr_expect(k->status == 200 || k->status == 429, "login %d: HTTP %ld", i, k->status);
		if (k->status == 200) {
			ok++;
			last_ok = k->done_at > last_ok ? k->done_at : last_ok;
		}
		if (k->status == 429) {
			limited++;
			cr_expect_geq(k->retry_after, 1, "a 429 without Retry-After");
		}
	}
	cr_expect_eq(health.status, 200);
	cr_expect_lt(health.done_at, last_ok,
		     "/healthz (reply %d) waited for the logins (last success: reply %d)",
		     health.done_at, last_ok);
	cr_expect_geq(ok, KDF_QUEUE, "%d logins succeeded, want at least the queue's %d", ok, KDF_QUEUE);
	cr_expect_gt(limited, 0, "%d parallel logins and none was refused beyond the cap", LOGINS);
	for (int i = 0; i < LOGINS; i++)
		call_free(&logins[i]);
	call_free(&health);
	curl_multi_cleanup(m);
	/* The server is fine afterwards. */
	cr_expect_eq(th_http(&srv, "GET", "/healthz", NULL, NULL, 0, 0, NULL), 200);
}

/* An in-process server core on a store whose every statement can be made to fail. */
static int fail_store;

static int interrupt_all(void *arg)
{
	return fail_store;
}

static long call_core(srv_ctx *ctx, enum evhttp_cmd_type method, const char *path, const char *token,
		      const char *body)
{
	char auth[200];
	snprintf(auth, sizeof(auth), "Bearer %s", token ? token : "");
	srv_call call = {.method = method, .path = path, .authorization = token ? auth : NULL,
			 .peer = "127.0.0.1", .body = (const unsigned char *)body,
			 .body_len = body ? strlen(body) : 0};
	srv_req r = {.call = &call, .now = ts_now(), .status = 200};
	size_t route;
	srv_http_handle(ctx, &call, &r, &route);
	cr_assert_null(r.kdf_job, "no pool: the KDF runs inline");
	long status = r.status;
	srv_req_clear(&r);
	return status;
}

Test(security, store_failure_is_503_not_401, .timeout = 60)
{
	srv_ctx ctx = {.quiet = 1};
	char hash[SRV_PW_HASH_MAX], session[TS_TOKEN_MAX], api[TS_TOKEN_MAX];
	int64_t now = ts_now(), id;
	cr_assert_eq(srv_db_open(":memory:", 1, &ctx.db), TS_OK);
	cr_assert_eq(srv_auth_hash_password("password-1", hash), TS_OK);
	sqlite3_stmt *st = srv_db_stmt(ctx.db, Q_USER_INSERT);
	sqlite3_bind_text(st, 1, "alice", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, "admin", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, now);
	cr_assert_eq(srv_db_exec(ctx.db, st), TS_OK);
	cr_assert_eq(srv_auth_issue(ctx.db, "session", 1, 0, 0, now + 3600, NULL, now, session), TS_OK);
	cr_assert_eq(srv_auth_issue_named(ctx.db, "api", 1, "ci", now + 3600, now, api, &id), TS_OK);
	sqlite3_progress_handler(srv_db_handle(ctx.db), 1, interrupt_all, NULL);
	cr_assert_eq(call_core(&ctx, EVHTTP_REQ_GET, "/api/v1/me", session, NULL), 200);
	fail_store = 1;
	/* Every read of the store fails now: the token may be fine, so never "revoked". */
	cr_expect_eq(call_core(&ctx, EVHTTP_REQ_GET, "/api/v1/me", session, NULL), 503);
	cr_expect_eq(call_core(&ctx, EVHTTP_REQ_GET, "/api/v1/me", api, NULL), 503);
	cr_expect_eq(call_core(&ctx, EVHTTP_REQ_POST, "/api/v1/login", NULL,
			       "{\"username\":\"alice\",\"password\":\"password-1\"}"), 503);
	fail_store = 0;
	cr_expect_eq(call_core(&ctx, EVHTTP_REQ_GET, "/api/v1/me", session, NULL), 200);
	cr_expect_eq(call_core(&ctx, EVHTTP_REQ_POST, "/api/v1/login", NULL,
			       "{\"username\":\"alice\",\"password\":\"password-1\"}"), 200);
	/* A read that fails inside a handler (here the users list, whose job counts need a table
	 * that has gone) is an error, never an empty list or "no such user". */
	sqlite3 *h = srv_db_handle(ctx.db);
	cr_assert_eq(sqlite3_exec(h, "ALTER TABLE jobs RENAME TO jobs_gone", NULL, NULL, NULL), SQLITE_OK);
	cr_expect_geq(call_core(&ctx, EVHTTP_REQ_GET, "/api/v1/users", session, NULL), 500);
	cr_expect_geq(call_core(&ctx, EVHTTP_REQ_POST, "/api/v1/users/1/enable", session, NULL), 500);
	cr_assert_eq(sqlite3_exec(h, "ALTER TABLE jobs_gone RENAME TO jobs", NULL, NULL, NULL), SQLITE_OK);
	cr_expect_eq(call_core(&ctx, EVHTTP_REQ_GET, "/api/v1/users", session, NULL), 200);
	srv_db_close(ctx.db);
}

/* Counts the lines of a log that contain what. */
static int log_count(const char *path, const char *what)
{
	char *text = NULL;
	int n = 0;
	if (ts_read_file(path, 1 << 20, &text, NULL) != TS_OK)
		return 0;
	for (const char *p = text; (p = strstr(p, what)); p++)
		n++;
	free(text);
	return n;
}

Test(security, client_rides_out_a_store_outage, .fini = teardown, .timeout = 300)
{
	static const char *const args[] = {"--busy-timeout", "100", NULL};
	char token[160], node_token[160], state[400], log[400], dbpath[400], out[4096];
	th_server_start_args(&srv, args);
	th_enroll_token(&srv, 1, token, sizeof(token));
	th_enroll_node(&srv, "probe", node_token, sizeof(node_token));
	snprintf(state, sizeof(state), "%s/node", srv.dir);
	snprintf(log, sizeof(log), "%s/node.log", srv.dir);
	char *enroll[] = {(char *)th_bin("tessera-client"), "enroll", srv.url, token, "--state", state,
			  "--name", "patient", NULL};
	cr_assert_eq(th_run(enroll, NULL, 60, out, sizeof(out)), 0, "enroll: %s", out);
	int64_t id = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":4000000,\"seed\":7},\"units\":4}");
	/* An outage: someone holds the store's write lock, so every write times out. */
	sqlite3 *db = NULL;
	snprintf(dbpath, sizeof(dbpath), "%s/tessera.db", srv.data);
	cr_assert_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	cr_assert_eq(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	long retry = -1;
	long beat = th_http_from(&srv, "127.0.0.1", "POST", "/api/v1/nodes/heartbeat", node_token, &retry);
	cr_expect(beat >= 500, "a heartbeat during the outage: HTTP %ld, want 5xx (never 401)", beat);
	char *run[] = {(char *)th_bin("tessera-client"), "run", "--state", state, "--threads", "1", NULL};
	pid_t client = th_spawn(run, NULL, log);
	double end = ts_mono() + 120;
	while (log_count(log, "retrying") < 2 && ts_mono() < end) {
		cr_assert_eq(waitpid(client, NULL, WNOHANG), 0, "the client stopped during the outage (see %s)", log);
		nap(0.1);
	}
	cr_expect_geq(log_count(log, "retrying"), 2, "the client did not retry during the outage");
	cr_assert_eq(waitpid(client, NULL, WNOHANG), 0, "the client stopped during the outage");
	cr_assert_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	/* The store is back: the same client finishes the job. */
	json_t *job = th_wait_job(&srv, id, 180);
	cr_assert(job, "the job did not finish after the outage");
	cr_expect_str_eq(json_string_value(json_object_get(job, "state")), "done");
	json_decref(job);
	cr_expect_eq(th_proc_stop(client, 10), 0, "the client did not exit cleanly");
}

/* chown -R for the few files of a data dir. */
static void chown_dir(const char *dir, uid_t uid, gid_t gid)
{
	static const char *const files[] = {"", "/server.key", "/server.crt", "/tessera.db",
					    "/tessera.db-wal", "/tessera.db-shm", "/boinc_sign.key", "/boinc_secret.key"};
	char path[600];
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", dir, files[i]);
		if (access(path, F_OK) == 0)
			cr_assert_eq(chown(path, uid, gid), 0, "chown %s", path);
	}
}

Test(security, store_files_belong_to_the_user_run_as, .fini = teardown, .timeout = 120)
{
	struct passwd *pw = getpwnam("nobody");
	char out[4096], portfile[400], log[400], listen[] = "127.0.0.1:0", wal[400];
	if (getuid() != 0 || !pw)
		cr_skip_test("needs root and a user 'nobody'");
	uid_t uid = pw->pw_uid;
	gid_t gid = pw->pw_gid;
	memset(&srv, 0, sizeof(srv));
	snprintf(srv.dir, sizeof(srv.dir), "/tmp/tessera-test-XXXXXX");
	cr_assert(mkdtemp(srv.dir));
	cr_assert_eq(chmod(srv.dir, 0711), 0); /* nobody must reach data/ below it */
	snprintf(srv.data, sizeof(srv.data), "%s/data", srv.dir);
	char *init[] = {(char *)th_bin("tessera-server"), "init", "--data", srv.data, NULL};
	char *env[] = {"TESSERA_ADMIN_PASSWORD=" TH_ADMIN_PASSWORD, NULL};
	cr_assert_eq(th_run(init, env, 30, out, sizeof(out)), 0, "init: %s", out);
	char *pin = strstr(out, "pin: ");
	cr_assert(pin);
	sscanf(pin + 5, "%63s", srv.pin);
	chown_dir(srv.data, uid, gid);
	snprintf(portfile, sizeof(portfile), "%s/server.port", srv.data);
	snprintf(log, sizeof(log), "%s/server.log", srv.dir);
	char *run[] = {(char *)th_bin("tessera-server"), "run", "--data", srv.data, "--listen", listen,
		       "--user", "nobody", NULL};
	srv.pid = th_spawn(run, NULL, log);
	char *text = NULL;
	double end = ts_mono() + 30;
	while (ts_read_file(portfile, 64, &text, NULL) != TS_OK) {
		cr_assert_eq(waitpid(srv.pid, NULL, WNOHANG), 0, "the server exited at start (see %s)", log);
		cr_assert(ts_mono() < end, "the server did not start");
		nap(0.05);
	}
	srv.port = atoi(text);
	free(text);
	snprintf(srv.url, sizeof(srv.url), "https://127.0.0.1:%d", srv.port);
	/* A login writes: the WAL is in use. */
	char body[256];
	snprintf(body, sizeof(body), "{\"username\":\"admin\",\"password\":\"%s\"}", TH_ADMIN_PASSWORD);
	cr_expect_eq(th_http(&srv, "POST", "/api/v1/login", NULL, body, strlen(body), 0, NULL), 200);
	static const char *const made[] = {"tessera.db-wal", "tessera.db-shm", "server.port"};
	for (size_t i = 0; i < sizeof(made) / sizeof(made[0]); i++) {
		struct stat st;
		snprintf(wal, sizeof(wal), "%s/%s", srv.data, made[i]);
		cr_assert_eq(stat(wal, &st), 0, "no %s", wal);
		cr_expect_eq(st.st_uid, uid, "%s belongs to uid %d, not to nobody (%d)", made[i], (int)st.st_uid, (int)uid);
		cr_expect_eq(st.st_mode & 077, 0, "%s is readable by others", made[i]);
	}
	/* The store is never opened with root's rights: one that nobody cannot open is refused
	 * (SQLite running as root would follow and chown whatever the data dir's owner left at
	 * tessera.db-wal, a symlink included). */
	cr_expect_eq(th_proc_stop(srv.pid, 10), 0);
	srv.pid = 0;
	char db[400];
	snprintf(db, sizeof(db), "%s/tessera.db", srv.data);
	cr_assert_eq(chown(db, 0, 0), 0);
	unlink(portfile);
	int rc = th_run(run, NULL, 15, out, sizeof(out));
	cr_expect_gt(rc, 0, "the server ran on a store only root can open (status %d): %s", rc, out);
	cr_expect(strstr(out, "tessera.db"), "no word about the store: %s", out);
}
