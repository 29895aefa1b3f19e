/* Backups, restores and upgrades against the real server: a store of the first release opens in
 * this one with everything in it and is served; copies taken under load are consistent; a copy
 * restored elsewhere is served; restore refuses a running server and files that are no store. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "kern.h"
#include "srv_auth.h"
#include "srv_db.h"
#include "th_harness.h"
#include "ts_token.h"
#include "ts_util.h"

static th_server srv, other;

static void teardown(void)
{
	th_server_stop(&srv);
	th_server_stop(&other);
}

/* Runs tessera-server with the NULL-terminated arguments; its output into out. */
static int server_cmd(char *out, size_t cap, ...)
{
	char *argv[16] = {(char *)th_bin("tessera-server")};
	int n = 1;
	va_list ap;
	va_start(ap, cap);
	while (n < 15 && (argv[n] = va_arg(ap, char *)) != NULL)
		n++;
	va_end(ap);
	argv[n] = NULL;
	return th_run(argv, NULL, 60, out, cap);
}

static int exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* One integer from a database file (opened read-only). */
static int64_t file_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK, "open %s", path);
	sqlite3_busy_timeout(db, 5000);
	cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s: %s", sql, sqlite3_errmsg(db));
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void file_text(const char *path, const char *sql, char *out, size_t cap)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK, "open %s", path);
	cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s: %s", sql, sqlite3_errmsg(db));
	snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static int log_has(const th_server *s, const char *text)
{
	char path[400], *log = NULL;
	snprintf(path, sizeof(path), "%s/server.log", s->dir);
	if (ts_read_file(path, 1 << 22, &log, NULL) != TS_OK)
		return 0;
	int found = strstr(log, text) != NULL;
	free(log);
	return found;
}

static void login_admin(th_server *s)
{
	json_t *reply = NULL;
	char body[256];
	snprintf(body, sizeof(body), "{\"username\":\"admin\",\"password\":\"%s\"}", TH_ADMIN_PASSWORD);
	cr_assert_eq(th_http(s, "POST", "/api/v1/login", NULL, body, strlen(body), 0, &reply), 200,
		     "the admin cannot log in");
	snprintf(s->admin_token, sizeof(s->admin_token), "%s", json_string_value(json_object_get(reply, "token")));
	json_decref(reply);
}

static json_t *job_get(const th_server *s, int64_t id)
{
	char path[64];
	json_t *job = NULL;
	snprintf(path, sizeof(path), "/api/v1/jobs/%lld", (long long)id);
	/* The clients of the load test share 127.0.0.1 with the test, and tiny units make them
	 * ask at the per-address rate limit: a 429 here is the limiter working, so ask again. */
	long status = 0;
	for (int tries = 0; tries < 50; tries++) {
		json_decref(job);
		job = NULL;
		if ((status = th_http(s, "GET", path, s->admin_token, NULL, 0, 0, &job)) != 429)
			break;
		th_sleep(0.1);
	}
	cr_assert_eq(status, 200, "GET %s: HTTP %ld", path, status);
	return job;
}

static const char *jstr(json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));
	return v ? v : "";
}

static int64_t jint(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/* The job's units done as GET /api/v1/jobs/ID shows them. */
static int64_t units_done(json_t *job)
{
	return jint(json_object_get(job, "units"), "done");
}

static void remove_store(const char *data)
{
	static const char *const files[] = {"tessera.db", "tessera.db-wal", "tessera.db-shm"};
	char path[400];
	for (size_t i = 0; i < TS_ARRAY_LEN(files); i++) {
		snprintf(path, sizeof(path), "%s/%s", data, files[i]);
		unlink(path);
	}
}

static void exec_sql(sqlite3 *db, const char *sql)
{
	char *err = NULL;
	cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, &err), SQLITE_OK, "%.200s: %s", sql, err ? err : "");
}

/* The first release's rows for a montecarlo_pi job of 4 units of 1000 samples. */
#define R1_UNIT 1000

static uint64_t r1_hits(uint64_t seed, int seq)
{
	return kern_pi_hits_scalar(seed, (uint64_t)seq * R1_UNIT, R1_UNIT);
}

/* A store as the first release left it: schema/001_init.sql alone (user_version 1, WAL), with
 * the admin (TH_ADMIN_PASSWORD), one node with its token (into node_token), job 1 done (4 units
 * valid, its result), job 2 running (2 units valid, the third leased to the node, the fourth not
 * yet made) and job 3 cancelled while queued. The rows are what that release wrote: verdict 1 for
 * a valid result, no volunteers (schema 2 adds them). */
static void make_release1_store(const char *data, char *node_token)
{
	char path[400], *schema = NULL, hash[SRV_PW_HASH_MAX], tokhash[TS_TOKEN_HASH_HEX], sql[4096];
	sqlite3 *db = NULL;
	long long now = (long long)time(NULL);
	snprintf(path, sizeof(path), "%s/schema/001_init.sql", TESSERA_SOURCE_DIR);
	cr_assert_eq(ts_read_file(path, 1 << 20, &schema, NULL), TS_OK, "read %s", path);
	remove_store(data);
	snprintf(path, sizeof(path), "%s/tessera.db", data);
	cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL), SQLITE_OK);
	exec_sql(db, "PRAGMA journal_mode=WAL");
	exec_sql(db, "BEGIN");
	exec_sql(db, schema);
	exec_sql(db, "PRAGMA user_version=1");
	free(schema);
	cr_assert_eq(srv_auth_hash_password(TH_ADMIN_PASSWORD, hash), TS_OK);
	cr_assert_eq(ts_token_make(TS_TOKEN_NODE, node_token), TS_OK);
	ts_token_hash(node_token, tokhash);
	snprintf(sql, sizeof(sql),
		 "INSERT INTO users (id, name, pw_hash, role, created_at) VALUES (1, 'admin', '%s', 'admin', %lld);"
		 "INSERT INTO nodes (id, name, platform, cores, created_at, last_seen, units_done, n_valid, streak)"
		 " VALUES (1, 'old-node', 'linux-x86_64', 2, %lld, %lld, 6, 6, 6);"
		 "INSERT INTO tokens (id, hash, kind, node_id, created_at) VALUES (1, '%s', 'node', 1, %lld);"
		 "INSERT INTO jobs (id, owner_id, kernel, params, state, space, unit_size, n_units, next_seq,"
		 " feeding, units_done, replication, quorum, deadline_s, acc0, compute_s, created_at, started_at,"
		 " finished_at) VALUES"
		 " (1, 1, 'montecarlo_pi', '{\"samples\":4000,\"seed\":7}', 'done', 4000, 1000, 4, 4, 0, 4, 1, 1,"
		 " 600, 0, 0.4, %lld, %lld, %lld),"
		 " (2, 1, 'montecarlo_pi', '{\"samples\":4000,\"seed\":9}', 'running', 4000, 1000, 4, 3, 1, 2, 1,"
		 " 1, 600, 0, 0.2, %lld, %lld, NULL),"
		 " (3, 1, 'montecarlo_pi', '{\"samples\":2000,\"seed\":1}', 'cancelled', 2000, 1000, 2, 0, 0, 0,"
		 " 1, 1, 600, 0, 0, %lld, NULL, %lld);",
		 hash, now - 86400, now - 86400, now - 30, tokhash, now - 86400, now - 7200, now - 7200,
		 now - 3600, now - 1800, now - 1800, now - 900, now - 800);
	exec_sql(db, sql);
	/* Units and replicas: job 1 seq 0-3 valid, job 2 seq 0-1 valid and seq 2 leased. */
	uint64_t total1 = 0, total2 = 0;
	int id = 0;
	for (int job = 1; job <= 2; job++) {
		uint64_t seed = job == 1 ? 7 : 9;
		for (int seq = 0; seq < (job == 1 ? 4 : 3); seq++) {
			int valid = job == 1 || seq < 2;
			uint64_t hits = r1_hits(seed, seq);
			id++;
			if (valid)
				*(job == 1 ? &total1 : &total2) += hits;
			if (valid)
				snprintf(sql, sizeof(sql),
					 "INSERT INTO units VALUES (%d, %d, %d, %d, %d, 2, 1, 1, 4, 1, 0, %llu, 0, %lld, %d);"
					 "INSERT INTO replicas (id, unit_id, node_id, state, deadline, leases, res0, res1,"
					 " verdict, counted, wall_s, issued_at, reported_at) VALUES"
					 " (%d, %d, 1, 2, %lld, 1, %llu, 0, 1, 1, 0.1, %lld, %lld);",
					 id, job, seq, seq * R1_UNIT, R1_UNIT, (unsigned long long)hits, now - 3000 + id, seq + 1,
					 id, id, now - 2400, (unsigned long long)hits, now - 3000, now - 3000 + id);
			else
				snprintf(sql, sizeof(sql),
					 "INSERT INTO units (id, job_id, seq, start, count, state, quorum, wanted,"
					 " max_results, n_results, missing) VALUES (%d, %d, %d, %d, %d, 1, 1, 1, 4, 0, 0);"
					 "INSERT INTO replicas (id, unit_id, node_id, state, deadline, leases, issued_at)"
					 " VALUES (%d, %d, 1, 1, %lld, 1, %lld);",
					 id, job, seq, seq * R1_UNIT, R1_UNIT, id, id, now + 600, now - 60);
			exec_sql(db, sql);
		}
	}
	double pi = 4.0 * (double)total1 / 4000;
	snprintf(sql, sizeof(sql),
		 "UPDATE jobs SET acc0 = %llu, result = '{\"samples\":4000,\"hits\":%llu,\"pi\":%.6f,"
		 "\"stderr\":0.026,\"error\":%.6f}' WHERE id = 1; UPDATE jobs SET acc0 = %llu WHERE id = 2;",
		 (unsigned long long)total1, (unsigned long long)total1, pi, pi - 3.14159265358979,
		 (unsigned long long)total2);
	exec_sql(db, sql);
	exec_sql(db, "COMMIT");
	cr_assert_eq(sqlite3_close(db), SQLITE_OK);
}

Test(upgrade, first_release_store_opens_intact_and_is_served, .fini = teardown, .timeout = 120)
{
	char node[TS_TOKEN_MAX], store[400], before[400], digest_v1[65], digest_copy[65], mode[32];
	th_server_start(&srv);
	th_server_kill(&srv, SIGTERM);
	make_release1_store(srv.data, node);
	snprintf(store, sizeof(store), "%s/tessera.db", srv.data);
	snprintf(before, sizeof(before), "%s/tessera.db.before-v1", srv.data);
	th_file_digest(store, digest_v1);
	uint64_t h1 = 0, h2 = 0;
	for (int seq = 0; seq < 4; seq++) {
		h1 += r1_hits(7, seq);
		h2 += r1_hits(9, seq);
	}

	th_server_restart(&srv);
	cr_assert(log_has(&srv, "is at schema version 1; copied it to"), "the log does not say the store was copied");
	cr_assert(log_has(&srv, "upgraded from schema version 1 to"), "the log does not say the store was upgraded");
	cr_expect_eq(th_db_int(&srv, "PRAGMA user_version"), srv_db_schema_latest());

	/* The copy before the upgrade: a valid store at version 1 with the same rows. */
	cr_assert(exists(before), "no %s", before);
	char check[64];
	file_text(before, "PRAGMA integrity_check", check, sizeof(check));
	cr_expect_str_eq(check, "ok");
	file_text(before, "PRAGMA journal_mode", mode, sizeof(mode));
	cr_expect_str_eq(mode, "delete", "the copy should be one self-contained file");
	cr_expect_eq(file_int(before, "PRAGMA user_version"), 1);
	th_file_digest(before, digest_copy);
	cr_expect_str_eq(digest_copy, digest_v1, "the copy before the upgrade differs from the store");

	/* Everything is there: the old admin password, job states, results and counts. */
	login_admin(&srv);
	json_t *j1 = job_get(&srv, 1), *j2 = job_get(&srv, 2), *j3 = job_get(&srv, 3);
	cr_expect_str_eq(jstr(j1, "state"), "done");
	cr_expect_eq(jint(json_object_get(j1, "result"), "hits"), (int64_t)h1, "job 1 lost its result");
	cr_expect_eq(jint(json_object_get(j1, "result"), "samples"), 4000);
	cr_expect_eq(units_done(j1), 4);
	cr_expect_str_eq(jstr(j2, "state"), "running");
	cr_expect_eq(units_done(j2), 2);
	cr_expect_str_eq(jstr(j3, "state"), "cancelled");
	json_decref(j1);
	json_decref(j2);
	json_decref(j3);
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM units"), 7);
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM replicas WHERE counted = 1"), 6);
	cr_expect_eq(th_db_int(&srv, "SELECT units_done FROM nodes WHERE id = 1"), 6);
	/* Schema 2's rule for old rows: each node is its own volunteer. */
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM replicas WHERE volunteer = -node_id"), 7);

	/* The old node goes on with job 2: its lease of seq 2 comes back, seq 3 is new. */
	json_t *reply = th_fetch(&srv, node, 8);
	json_t *units = json_object_get(reply, "units"), *u;
	size_t i;
	cr_assert_eq(json_array_size(units), 2, "the old node got %zu units of job 2", json_array_size(units));
	json_array_foreach(units, i, u) {
		cr_assert_eq(jint(u, "job_id"), 2);
		int seq = (int)(jint(u, "start") / R1_UNIT);
		json_decref(th_report(&srv, node, jint(u, "id"), r1_hits(9, seq)));
	}
	json_decref(reply);
	json_t *done = th_wait_job(&srv, 2, 30);
	cr_assert(done, "job 2 did not finish");
	cr_expect_str_eq(jstr(done, "state"), "done");
	cr_expect_eq(jint(json_object_get(done, "result"), "hits"), (int64_t)h2, "job 2's result is wrong");
	json_decref(done);

	/* A second start finds nothing to upgrade and makes no copy. */
	unlink(before);
	th_server_kill(&srv, SIGTERM);
	th_server_restart(&srv);
	cr_expect(!exists(before), "a store at the latest version was copied again");
}

/* Runs `run` on a store that it must refuse; returns its output. */
static void run_refused(th_server *s, char *out, size_t cap)
{
	char *argv[] = {(char *)th_bin("tessera-server"), "run", "--data", s->data, "--listen", "127.0.0.1:0", NULL};
	cr_expect_eq(th_run(argv, NULL, 30, out, cap), 1, "run did not refuse: %s", out);
}

Test(upgrade, newer_store_is_refused_untouched, .fini = teardown, .timeout = 60)
{
	char out[4096], store[320], d0[65], d1[65];
	th_server_start(&srv);
	th_server_kill(&srv, SIGTERM);
	th_db_exec(&srv, "PRAGMA user_version = 99");
	snprintf(store, sizeof(store), "%.300s/tessera.db", srv.data);
	th_file_digest(store, d0);
	run_refused(&srv, out, sizeof(out));
	cr_expect(strstr(out, "schema version 99, written by a newer tessera-server"), "unclear: %s", out);
	th_file_digest(store, d1);
	cr_expect_str_eq(d0, d1);
	cr_expect_eq(th_db_int(&srv, "PRAGMA user_version"), 99);
	char before[400];
	snprintf(before, sizeof(before), "%s.before-v99", store);
	cr_expect(!exists(before), "a refused store was copied");
}

Test(upgrade, failed_upgrade_leaves_the_store_unchanged, .fini = teardown, .timeout = 60)
{
	char out[4096], store[400], d0[65], d1[65];
	th_server_start(&srv);
	th_server_kill(&srv, SIGTERM);
	/* A version 2 store whose step to 3 cannot apply: the program tables already exist. */
	th_db_exec(&srv, "PRAGMA user_version = 2");
	snprintf(store, sizeof(store), "%s/tessera.db", srv.data);
	th_file_digest(store, d0);
	run_refused(&srv, out, sizeof(out));
	char says[200];
	snprintf(says, sizeof(says), "from schema version 2 to %d failed in the step to version 3: table files"
		 " already exists; the store is unchanged (still version 2)", srv_db_schema_latest());
	cr_expect(strstr(out, says), "unclear: %s", out);
	th_file_digest(store, d1);
	cr_expect_str_eq(d0, d1, "the failed upgrade changed the store");
	cr_expect_eq(th_db_int(&srv, "PRAGMA user_version"), 2);
}

/* The invariants every consistent store keeps for job `job`: each is written by one
 * transaction, so a torn copy breaks one of them. Returns its units_done. */
static int64_t check_copy(const char *path, int64_t job)
{
	char sql[400], text[64];
	file_text(path, "PRAGMA integrity_check", text, sizeof(text));
	cr_assert_str_eq(text, "ok", "%s fails integrity_check", path);
	cr_expect_eq(file_int(path, "PRAGMA user_version"), srv_db_schema_latest());
	snprintf(sql, sizeof(sql), "SELECT units_done FROM jobs WHERE id = %lld", (long long)job);
	int64_t done = file_int(path, sql);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM units WHERE job_id = %lld AND state = 2", (long long)job);
	cr_expect_eq(file_int(path, sql), done, "%s: units done and valid units differ", path);
	snprintf(sql, sizeof(sql), "SELECT (SELECT acc0 FROM jobs WHERE id = %lld) = (SELECT coalesce(sum(res0), 0)"
		 " FROM units WHERE job_id = %lld AND state = 2)", (long long)job, (long long)job);
	cr_expect_eq(file_int(path, sql), 1, "%s: the job's accumulator is not the sum of its units", path);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM replicas r JOIN units u ON u.id = r.unit_id"
		 " WHERE u.job_id = %lld AND r.counted = 1", (long long)job);
	cr_expect_eq(file_int(path, sql), done, "%s: counted replicas and units done differ", path);
	snprintf(sql, sizeof(sql), "SELECT (SELECT next_seq FROM jobs WHERE id = %lld) = (SELECT count(*)"
		 " FROM units WHERE job_id = %lld)", (long long)job, (long long)job);
	cr_expect_eq(file_int(path, sql), 1, "%s: next_seq and the units made differ", path);
	cr_expect_eq(file_int(path, "SELECT (SELECT sum(units_done) FROM nodes) = (SELECT count(*) FROM replicas"
			      " WHERE counted = 1)"), 1, "%s: nodes' counts and counted replicas differ", path);
	return done;
}

static pid_t start_client(const th_server *s, int i)
{
	char token[160], state[400], log[400], name[32], out[2048];
	th_enroll_token(s, 1, token, sizeof(token));
	snprintf(state, sizeof(state), "%s/client%d", s->dir, i);
	snprintf(log, sizeof(log), "%s/client%d.log", s->dir, i);
	snprintf(name, sizeof(name), "client-%d", i);
	char *enroll[] = {(char *)th_bin("tessera-client"), "enroll", (char *)s->url, token, "--state", state,
			  "--name", name, "--no-bench", NULL};
	cr_assert_eq(th_run(enroll, NULL, 60, out, sizeof(out)), 0, "enroll: %s", out);
	char *run[] = {(char *)th_bin("tessera-client"), "run", "--state", state, "--threads", "1", "--no-bench", NULL};
	return th_spawn(run, NULL, log);
}

#define N_COPIES 5

Test(backup, copies_under_load_are_consistent_and_restore_elsewhere, .fini = teardown, .timeout = 240)
{
	char out[4096], copy[N_COPIES][320];
	int64_t done[N_COPIES];
	pid_t clients[2];
	th_server_start(&srv);
	/* Enough units of small size that the clients report all through the copies. */
	int64_t job = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":2000000000,"
				      "\"seed\":3},\"units\":4000}");
	for (int i = 0; i < 2; i++)
		clients[i] = start_client(&srv, i);
	double end = ts_mono() + 60;
	while (th_db_int(&srv, "SELECT units_done FROM jobs") < 5 && ts_mono() < end)
		th_sleep(0.1);
	for (int i = 0; i < N_COPIES; i++) {
		snprintf(copy[i], sizeof(copy[i]), "%s/copy%d.db", srv.dir, i);
		cr_assert_eq(server_cmd(out, sizeof(out), "backup", "--data", srv.data, copy[i], NULL), 0,
			     "backup %d: %s", i, out);
		cr_expect(strstr(out, "backed up"), "%s", out);
		char side[420];
		snprintf(side, sizeof(side), "%s-wal", copy[i]);
		cr_expect(!exists(side), "a copy has a WAL beside it");
		snprintf(side, sizeof(side), "%s.tmp", copy[i]);
		cr_expect(!exists(side), "the temp file of a copy stayed");
		done[i] = check_copy(copy[i], job);
		if (i > 0)
			cr_expect_geq(done[i], done[i - 1]);
		th_sleep(0.4);
	}
	json_t *live = job_get(&srv, job);
	cr_expect_str_eq(jstr(live, "state"), "running", "the job ended before the copies: no load during them");
	json_decref(live);
	cr_expect_gt(done[N_COPIES - 1], done[0], "no unit was reported between the copies: no load");

	/* An existing copy is kept unless --force. */
	char d0[65], d1[65];
	th_file_digest(copy[0], d0);
	cr_expect_eq(server_cmd(out, sizeof(out), "backup", "--data", srv.data, copy[0], NULL), 1);
	cr_expect(strstr(out, "exists (--force replaces it)"), "%s", out);
	th_file_digest(copy[0], d1);
	cr_expect_str_eq(d0, d1, "a refused backup changed the existing file");
	cr_expect_eq(server_cmd(out, sizeof(out), "backup", "--data", srv.data, copy[0], "--force", NULL), 0, "%s", out);
	check_copy(copy[0], job);

	/* Restore is refused while the server runs, and nothing changes. */
	cr_expect_eq(server_cmd(out, sizeof(out), "restore", "--data", srv.data, copy[1], NULL), 1);
	cr_expect(strstr(out, "is running on"), "restore while running: %s", out);
	char kept[400], restoring[400];
	snprintf(kept, sizeof(kept), "%s/tessera.db.before-restore", srv.data);
	snprintf(restoring, sizeof(restoring), "%s/tessera.db.restoring", srv.data);
	cr_expect(!exists(kept) && !exists(restoring), "a refused restore left files");
	for (int i = 0; i < 2; i++)
		th_proc_stop(clients[i], 10);

	/* The last copy on another server (its own key, the same admin): served as it was. */
	int64_t last = done[N_COPIES - 1];
	th_server_start(&other);
	th_server_kill(&other, SIGTERM);
	cr_assert_eq(server_cmd(out, sizeof(out), "restore", "--data", other.data, copy[N_COPIES - 1], NULL), 0,
		     "restore: %s", out);
	snprintf(kept, sizeof(kept), "%s/tessera.db.before-restore", other.data);
	cr_expect(exists(kept), "the replaced store was not kept");
	char side[420];
	snprintf(side, sizeof(side), "%s/tessera.db-wal", other.data);
	cr_expect(!exists(side), "a stale WAL stayed beside the restored store");
	th_server_restart(&other);
	login_admin(&other);
	json_t *j = job_get(&other, job);
	cr_expect_str_eq(jstr(j, "state"), "running");
	cr_expect_eq(units_done(j), last, "the restored job has %lld units done, the copy %lld",
		     (long long)units_done(j), (long long)last);
	json_decref(j);
	check_copy(copy[N_COPIES - 1], job);
}

Test(backup, bad_inputs_are_refused_and_change_nothing, .fini = teardown, .timeout = 120)
{
	char out[4096], path[400], store[320], kept[400], d0[65], d1[65];
	th_server_start(&srv);
	th_server_kill(&srv, SIGTERM);
	snprintf(store, sizeof(store), "%s/tessera.db", srv.data);
	snprintf(kept, sizeof(kept), "%s.before-restore", store);
	th_file_digest(store, d0);

	static const struct {
		const char *name, *content, *says;
	} files[] = {
		{"junk.db", "this is not an SQLite database, not even its header\n", "file is not a database"},
		{"missing.db", NULL, "No such file or directory"},
		{"other.db", "sqlite:CREATE TABLE t (x); INSERT INTO t VALUES (1)", "is not a Tessera store"},
		{"newer.db", "sqlite:newer", "newer than this tessera-server knows"},
	};
	for (size_t i = 0; i < TS_ARRAY_LEN(files); i++) {
		snprintf(path, sizeof(path), "%s/%s", srv.dir, files[i].name);
		if (files[i].content && strncmp(files[i].content, "sqlite:", 7) != 0) {
			cr_assert_eq(ts_write_file(path, files[i].content, strlen(files[i].content), 0600), TS_OK);
		} else if (files[i].content && strcmp(files[i].content + 7, "newer") == 0) {
			cr_assert_eq(server_cmd(out, sizeof(out), "backup", "--data", srv.data, path, NULL), 0, "%s", out);
			sqlite3 *db = NULL;
			cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
			exec_sql(db, "PRAGMA user_version = 99");
			sqlite3_close(db);
		} else if (files[i].content) {
			sqlite3 *db = NULL;
			cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
			exec_sql(db, files[i].content + 7);
			sqlite3_close(db);
		}
		char f0[65] = "", f1[65] = "";
		if (files[i].content && strncmp(files[i].content, "sqlite:", 7) == 0)
			th_file_digest(path, f0);
		cr_expect_eq(server_cmd(out, sizeof(out), "restore", "--data", srv.data, path, NULL), 1,
			     "%s was restored: %s", files[i].name, out);
		cr_expect(strstr(out, files[i].says), "%s: unclear: %s", files[i].name, out);
		cr_expect(strstr(out, "is unchanged"), "%s: %s", files[i].name, out);
		if (*f0) {
			th_file_digest(path, f1);
			cr_expect_str_eq(f0, f1, "restore changed %s", files[i].name);
		}
	}
	th_file_digest(store, d1);
	cr_expect_str_eq(d0, d1, "a refused restore changed the store");
	cr_expect(!exists(kept), "a refused restore moved the store");
	snprintf(path, sizeof(path), "%s.restoring", store);
	cr_expect(!exists(path), "a refused restore left its copy");

	/* Backup: no store, no directory for the copy. */
	snprintf(path, sizeof(path), "%s/nowhere", srv.dir);
	cr_expect_eq(server_cmd(out, sizeof(out), "backup", "--data", path, "x.db", NULL), 1);
	cr_expect(strstr(out, "no store at"), "%s", out);
	snprintf(path, sizeof(path), "%s/no/such/dir/copy.db", srv.dir);
	cr_expect_eq(server_cmd(out, sizeof(out), "backup", "--data", srv.data, path, NULL), 1);
	cr_expect(strstr(out, "does not exist"), "%s", out);
	cr_expect_eq(server_cmd(out, sizeof(out), "backup", "--data", srv.data, NULL), 2, "no FILE: %s", out);
	cr_expect_eq(server_cmd(out, sizeof(out), "restore", "--data", srv.data, "a", "b", NULL), 2);
	cr_expect_eq(server_cmd(out, sizeof(out), "restore", "--data", srv.data, "a", "--force", NULL), 2,
		     "--force is backup's: %s", out);

	/* --help says what each does. */
	cr_expect_eq(server_cmd(out, sizeof(out), "backup", "--help", NULL), 0);
	cr_expect(strstr(out, "usage: tessera-server backup --data DIR FILE [--force]"), "%s", out);
	cr_expect_eq(server_cmd(out, sizeof(out), "restore", "--help", NULL), 0);
	cr_expect(strstr(out, "usage: tessera-server restore --data DIR FILE"), "%s", out);

	/* And the store still serves. */
	th_server_restart(&srv);
	login_admin(&srv);
}

Test(upgrade, no_copy_no_upgrade, .fini = teardown, .timeout = 60)
{
	char out[4096], store[320], blocker[400], d0[65], d1[65];
	th_server_start(&srv);
	th_server_kill(&srv, SIGTERM);
	th_db_exec(&srv, "PRAGMA user_version = 2");
	snprintf(store, sizeof(store), "%.300s/tessera.db", srv.data);
	/* A directory where the copy's temp file must go: the copy cannot be made. */
	snprintf(blocker, sizeof(blocker), "%s.before-v2.tmp", store);
	cr_assert_eq(mkdir(blocker, 0700), 0);
	th_file_digest(store, d0);
	run_refused(&srv, out, sizeof(out));
	cr_expect(strstr(out, "not upgrading") && strstr(out, "the copy before it failed") &&
		  strstr(out, "the store is unchanged"), "unclear: %s", out);
	th_file_digest(store, d1);
	cr_expect_str_eq(d0, d1);
	cr_expect_eq(th_db_int(&srv, "PRAGMA user_version"), 2);
	rmdir(blocker);
}

/* Nodes go on fetching and reporting, each exchange a commit, while a copy of a store of ~100
 * MiB runs beside them: none waits long, and the copy ends. */
Test(backup, a_long_copy_does_not_stall_the_server, .fini = teardown, .timeout = 180)
{
	char copy[320], log[400], node[160], sql[256];
	th_server_start(&srv);
	/* About 96 MiB of program files, so that the copy takes a while. */
	for (int i = 0; i < 6; i++) {
		snprintf(sql, sizeof(sql), "INSERT INTO files VALUES ('%064d', 16777216, randomblob(16777216), 0)", i);
		th_db_exec(&srv, sql);
	}
	th_enroll_node(&srv, "n", node, sizeof(node));
	int64_t job = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":100000000,"
				      "\"seed\":3},\"units\":100000}");
	snprintf(copy, sizeof(copy), "%.300s/big.db", srv.dir);
	snprintf(log, sizeof(log), "%.300s/backup.log", srv.dir);
	char *argv[] = {(char *)th_bin("tessera-server"), "backup", "--data", srv.data, copy, NULL};
	pid_t pid = th_spawn(argv, NULL, log);
	/* Nodes fetch and report all through the copy: each exchange commits. */
	double worst = 0, end = ts_mono() + 120;
	int exchanges = 0, status = -1;
	for (;;) {
		int st;
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid) {
			status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
			break;
		}
		cr_assert(ts_mono() < end, "the backup did not end in 120 s");
		double t0 = ts_mono();
		json_t *reply = th_fetch(&srv, node, 1);
		json_t *u = json_array_get(json_object_get(reply, "units"), 0);
		cr_assert(u, "no unit to fetch");
		json_decref(th_report(&srv, node, jint(u, "id"), 1));
		json_decref(reply);
		double took = ts_mono() - t0;
		worst = took > worst ? took : worst;
		exchanges++;
	}
	char *text = NULL;
	ts_read_file(log, 1 << 16, &text, NULL);
	cr_assert_eq(status, 0, "backup failed: %s", text ? text : "");
	free(text);
	cr_log_info("%d fetch+report exchanges during the copy, the slowest %.3f s", exchanges, worst);
	cr_expect_geq(exchanges, 3, "only %d exchanges during the copy: it did not run beside them", exchanges);
	cr_expect_lt(worst, 2.0, "a fetch and report took %.2f s during the copy", worst);
	int64_t done = check_copy(copy, job);
	cr_expect_leq(done, th_db_int(&srv, "SELECT units_done FROM jobs"));
	cr_expect_eq(file_int(copy, "SELECT count(*) FROM files"), 6);
	cr_expect_eq(file_int(copy, "SELECT sum(length(data)) FROM files"), 6 * 16777216LL);
}
