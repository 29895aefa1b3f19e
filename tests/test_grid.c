/* The grid end to end: a real server, real tessera-client processes, the real CLI, over TLS on
 * loopback in temp dirs. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "th_harness.h"
#include "ts_util.h"

static th_server srv;

static void setup(void)
{
	th_server_start(&srv);
}

static void teardown(void)
{
	th_server_stop(&srv);
}

static int enroll(const th_server *s, const char *url, const char *token, const char *state,
		  const char *name, char *out, size_t cap)
{
	char *argv[] = {(char *)th_bin("tessera-client"), "enroll", (char *)url, (char *)token,
			"--state", (char *)state, "--name", (char *)name, NULL};
	return th_run(argv, NULL, 60, out, cap);
}

Test(grid, two_clients_compute_the_exact_answer, .init = setup, .fini = teardown, .timeout = 300)
{
	char token[160], state[2][400], log[2][400], out[4096];
	pid_t clients[2];
	th_enroll_token(&srv, 2, token, sizeof(token));
	for (int i = 0; i < 2; i++) {
		char name[16];
		snprintf(state[i], sizeof(state[i]), "%s/node%d", srv.dir, i + 1);
		snprintf(log[i], sizeof(log[i]), "%s/node%d.log", srv.dir, i + 1);
		snprintf(name, sizeof(name), "node-%d", i + 1);
		cr_assert_eq(enroll(&srv, srv.url, token, state[i], name, out, sizeof(out)), 0, "enroll: %s", out);
		char *argv[] = {(char *)th_bin("tessera-client"), "run", "--state", state[i], "--threads", "1", NULL};
		clients[i] = th_spawn(argv, NULL, log[i]);
	}
	/* DESIGN.md's vector: seed 7, 10^9 samples -> 785390488 hits, in 40 units. */
	int64_t id = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000000000,\"seed\":7},\"units\":40}");
	json_t *job = th_wait_job(&srv, id, 240);
	cr_assert(job, "the job did not finish in 240 s");
	cr_expect_str_eq(json_string_value(json_object_get(job, "state")), "done");
	json_t *result = json_object_get(job, "result");
	cr_expect_eq(json_integer_value(json_object_get(result, "hits")), 785390488);
	cr_expect_eq(json_integer_value(json_object_get(result, "samples")), 1000000000);
	json_int_t units = 0;
	size_t i;
	json_t *n;
	json_array_foreach(json_object_get(job, "nodes"), i, n)
		units += json_integer_value(json_object_get(n, "units"));
	cr_expect_eq(units, 40, "units by node add up to %lld", (long long)units);
	json_decref(job);
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM nodes"), 2);
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM units WHERE state = 2"), 40);
	cr_expect_eq(th_db_int(&srv, "SELECT sum(units_done) FROM nodes"), 40);
	/* Clients stop cleanly on SIGTERM. */
	for (int k = 0; k < 2; k++)
		cr_expect_eq(th_proc_stop(clients[k], 10), 0, "client %d did not exit cleanly", k + 1);
}

Test(grid, wrong_enrollment_token_is_refused, .init = setup, .fini = teardown, .timeout = 60)
{
	char token[160], fake[160], state[400], path[500], out[4096];
	th_enroll_token(&srv, 1, token, sizeof(token));
	/* Same pin, other secret: well-formed but unknown. */
	snprintf(fake, sizeof(fake), "%s", token);
	memcpy(fake + 5, "AAAAAAAAAAAAAAAAAAAA", 20);
	snprintf(state, sizeof(state), "%s/fake", srv.dir);
	cr_expect_neq(enroll(&srv, srv.url, fake, state, "intruder", out, sizeof(out)), 0, "fake token enrolled: %s", out);
	cr_expect(strlen(out) > 0, "no error message");
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM nodes"), 0);
	snprintf(path, sizeof(path), "%s/node.json", state);
	cr_expect_neq(access(path, F_OK), 0, "a refused enrollment left credentials");
	/* Garbage is refused before any network call. */
	cr_expect_neq(enroll(&srv, srv.url, "not-a-token", state, "x", out, sizeof(out)), 0);
	/* The real token still works once, and only once. */
	cr_expect_eq(enroll(&srv, srv.url, token, state, "ok", out, sizeof(out)), 0, "%s", out);
	char state2[400];
	snprintf(state2, sizeof(state2), "%s/again", srv.dir);
	cr_expect_neq(enroll(&srv, srv.url, token, state2, "again", out, sizeof(out)), 0, "a used-up token enrolled");
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM nodes"), 1);
}

Test(grid, client_pinned_to_another_key_is_refused, .init = setup, .fini = teardown, .timeout = 90)
{
	th_server other;
	char token_a[160], token_b[160], swapped[160], state[400], out[4096], before[65], after[65];
	th_server_start(&other);
	th_enroll_token(&srv, 1, token_a, sizeof(token_a));
	th_enroll_token(&other, 1, token_b, sizeof(token_b));
	th_db_digest(&other, before);
	snprintf(state, sizeof(state), "%s/impostor", srv.dir);
	/* A's token (A's pin) used against B: B's key does not match, nothing is sent. */
	int rc = enroll(&srv, other.url, token_a, state, "n", out, sizeof(out));
	cr_expect_neq(rc, 0, "enrolled with a server whose key does not match the pin");
	/* B's own secret carrying A's pin: refused before the token reaches B. */
	snprintf(swapped, sizeof(swapped), "%.*s%s", 49, token_b, token_a + 49);
	rc = enroll(&srv, other.url, swapped, state, "n", out, sizeof(out));
	cr_expect_neq(rc, 0, "enrolled although the pin was not the server's");
	th_db_digest(&other, after);
	cr_expect_str_eq(after, before, "the impostor's store changed");
	cr_expect_eq(th_db_int(&other, "SELECT uses_left FROM tokens WHERE kind = 'enroll'"), 1,
		     "the token was spent against the wrong server");
	th_server_stop(&other);
}

/* Runs the CLI with the test's config dir; returns the exit status. */
static int cli(const char *cfg, char *out, size_t cap, const char *a0, const char *a1, const char *a2,
	       const char *a3, const char *a4, const char *a5, const char *a6, const char *a7)
{
	char env_cfg[512], env_pw[128];
	snprintf(env_cfg, sizeof(env_cfg), "TESSERA_CONFIG=%s", cfg);
	snprintf(env_pw, sizeof(env_pw), "TESSERA_PASSWORD=%s", TH_ADMIN_PASSWORD);
	char *env[] = {env_cfg, env_pw, NULL};
	char *argv[] = {(char *)th_bin("tessera"), (char *)a0, (char *)a1, (char *)a2, (char *)a3,
			(char *)a4, (char *)a5, (char *)a6, (char *)a7, NULL};
	return th_run(argv, env, 120, out, cap);
}

Test(grid, cli_login_submit_wait_cancel, .init = setup, .fini = teardown, .timeout = 300)
{
	char cfg[400], out[8192], token[160], state[400], id[32], id2[32];
	snprintf(cfg, sizeof(cfg), "%s/cli", srv.dir);
	/* A wrong pin is refused, and leaves no login behind. */
	cr_expect_neq(cli(cfg, out, sizeof(out), "login", srv.url, "--user", "admin", "--pin",
			  "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", NULL, NULL), 0);
	cr_expect_neq(cli(cfg, out, sizeof(out), "jobs", NULL, NULL, NULL, NULL, NULL, NULL, NULL), 0,
		      "jobs worked without a login");
	cr_assert_eq(cli(cfg, out, sizeof(out), "login", srv.url, "--user", "admin", "--pin", srv.pin,
			 NULL, NULL), 0, "%s", out);
	cr_assert_eq(cli(cfg, out, sizeof(out), "token", "create", "--uses", "1", NULL, NULL, NULL, NULL), 0, "%s", out);
	sscanf(out, "%159s", token);
	snprintf(state, sizeof(state), "%s/node", srv.dir);
	cr_assert_eq(enroll(&srv, srv.url, token, state, "cli-node", out, sizeof(out)), 0, "%s", out);

	/* Submit with bad input: a clear error, a non-zero exit, no job. */
	cr_expect_neq(cli(cfg, out, sizeof(out), "submit", "pi", "--samples", "-5", NULL, NULL, NULL, NULL), 0);
	cr_expect_neq(cli(cfg, out, sizeof(out), "submit", "pi", "--samples", "lots", NULL, NULL, NULL, NULL), 0);
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM jobs"), 0);

	cr_assert_eq(cli(cfg, out, sizeof(out), "submit", "pi", "--samples", "1e6", "--seed", "42",
			 "--units", "8"), 0, "%s", out);
	cr_assert_eq(sscanf(out, "%31s", id), 1);
	cr_assert_eq(cli(cfg, out, sizeof(out), "submit", "pi", "--samples", "1e9", "--units", "10",
			 NULL, NULL), 0, "%s", out);
	sscanf(out, "%31s", id2);
	cr_assert_eq(cli(cfg, out, sizeof(out), "cancel", id2, NULL, NULL, NULL, NULL, NULL, NULL), 0, "%s", out);

	char *argv[] = {(char *)th_bin("tessera-client"), "run", "--state", state, "--threads", "2", NULL};
	pid_t client = th_spawn(argv, NULL, NULL);
	cr_assert_eq(cli(cfg, out, sizeof(out), "wait", id, "--json", NULL, NULL, NULL, NULL, NULL), 0, "%s", out);
	json_t *job = json_loads(strchr(out, '{') ? strchr(out, '{') : out, JSON_DISABLE_EOF_CHECK, NULL);
	cr_assert(job, "wait --json printed no JSON: %s", out);
	cr_expect_eq(json_integer_value(json_object_get(json_object_get(job, "result"), "hits")), 785192);
	json_decref(job);
	cr_expect_eq(cli(cfg, out, sizeof(out), "status", id2, "--json", NULL, NULL, NULL, NULL, NULL), 0);
	cr_expect(strstr(out, "cancelled") != NULL, "job 2 not cancelled: %s", out);
	cr_expect_eq(cli(cfg, out, sizeof(out), "jobs", NULL, NULL, NULL, NULL, NULL, NULL, NULL), 0);
	cr_expect(strstr(out, "done") && strstr(out, "cancelled"), "jobs listing: %s", out);
	/* Only the first job's units were computed. */
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM units WHERE state = 2"), 8);

	/* The other kernels from the CLI: DESIGN.md's values. */
	char pid[32], cid[32];
	cr_assert_eq(cli(cfg, out, sizeof(out), "submit", "primes", "--from", "0", "--to", "1e7", "--units", "5"), 0,
		     "%s", out);
	sscanf(out, "%31s", pid);
	cr_assert_eq(cli(cfg, out, sizeof(out), "submit", "collatz", "--from", "1", "--to", "1e6", "--units", "4"), 0,
		     "%s", out);
	sscanf(out, "%31s", cid);
	cr_expect_neq(cli(cfg, out, sizeof(out), "submit", "primes", "--samples", "5", "--from", "1", "--to", "9"), 0,
		      "a pi option was taken for primes");
	cr_assert_eq(cli(cfg, out, sizeof(out), "wait", pid, "--json", NULL, NULL, NULL, NULL, NULL), 0, "%s", out);
	job = json_loads(strchr(out, '{') ? strchr(out, '{') : out, JSON_DISABLE_EOF_CHECK, NULL);
	cr_expect_eq(json_integer_value(json_object_get(json_object_get(job, "result"), "count")), 664579);
	json_decref(job);
	cr_assert_eq(cli(cfg, out, sizeof(out), "wait", cid, "--json", NULL, NULL, NULL, NULL, NULL), 0, "%s", out);
	job = json_loads(strchr(out, '{') ? strchr(out, '{') : out, JSON_DISABLE_EOF_CHECK, NULL);
	cr_expect_eq(json_integer_value(json_object_get(json_object_get(job, "result"), "n")), 837799);
	cr_expect_eq(json_integer_value(json_object_get(json_object_get(job, "result"), "steps")), 524);
	json_decref(job);
	cr_expect_eq(th_proc_stop(client, 10), 0);
}
