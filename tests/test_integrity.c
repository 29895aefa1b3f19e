/* Exact whatever happens: the holes a hostile volunteer or an unlucky operator could use, each
 * driven through a real server over the real API (nodes here are the test itself, so every
 * step is exact): a node's own expired lease, lease hoarding, a job that cannot load, storage
 * faults mid-request, one volunteer with many nodes, trust earned unchecked, a liar's single
 * results. */
#include <criterion/criterion.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kern.h"
#include "ts_util.h"
#include "th_harness.h"

static th_server srv;

static void setup(void)
{
	th_server_start(&srv);
}

static void teardown(void)
{
	th_server_stop(&srv);
}


struct unit {
	int64_t id, job;
	uint64_t start, count, seed;
	int64_t deadline;
};

/* The units of a fetch reply (at most max), freeing the reply. */
static int units_of(json_t *reply, struct unit *out, int max)
{
	json_t *units = json_object_get(reply, "units");
	int n = 0;
	for (size_t i = 0; i < json_array_size(units) && n < max; i++) {
		json_t *j = json_array_get(units, i);
		out[n++] = (struct unit){
			.id = json_integer_value(json_object_get(j, "id")),
			.job = json_integer_value(json_object_get(j, "job_id")),
			.start = (uint64_t)json_integer_value(json_object_get(j, "start")),
			.count = (uint64_t)json_integer_value(json_object_get(j, "count")),
			.seed = (uint64_t)json_integer_value(json_object_get(json_object_get(j, "params"), "seed")),
			.deadline = json_integer_value(json_object_get(j, "deadline")),
		};
	}
	json_decref(reply);
	return n;
}

static int fetch(const char *token, int max, struct unit *out)
{
	return units_of(th_fetch(&srv, token, max), out, max);
}

static uint64_t true_hits(const struct unit *u)
{
	return kern_pi_hits_scalar(u->seed, u->start, u->count);
}

static int report(const char *token, const struct unit *u, uint64_t hits)
{
	json_t *reply = th_report(&srv, token, u->id, hits);
	int ok = json_array_size(json_object_get(reply, "accepted")) == 1;
	json_decref(reply);
	return ok;
}

static json_t *job_get(int64_t id)
{
	char path[64];
	json_t *job = NULL;
	snprintf(path, sizeof(path), "/api/v1/jobs/%lld", (long long)id);
	cr_assert_eq(th_http(&srv, "GET", path, srv.admin_token, NULL, 0, 0, &job), 200);
	return job;
}

static void expect_job_state(int64_t id, const char *want)
{
	json_t *j = job_get(id);
	cr_expect_str_eq(json_string_value(json_object_get(j, "state")), want, "job %lld: %s (%s)",
			 (long long)id, json_string_value(json_object_get(j, "state")),
			 json_string_value(json_object_get(j, "error")));
	json_decref(j);
}

static int64_t job_hits(int64_t id)
{
	json_t *j = job_get(id);
	int64_t hits = json_integer_value(json_object_get(json_object_get(j, "result"), "hits"));
	json_decref(j);
	return hits;
}

/* Enrolls n nodes with one enrollment token (one volunteer's machines). */
static void enroll_same_volunteer(int n, char tokens[][160])
{
	char enroll[160];
	th_enroll_token(&srv, n, enroll, sizeof(enroll));
	for (int i = 0; i < n; i++) {
		char body[400];
		json_t *reply = NULL;
		snprintf(body, sizeof(body), "{\"token\":\"%s\",\"name\":\"box-%d\",\"platform\":\"test\",\"cores\":1}",
			 enroll, i);
		cr_assert_eq(th_http(&srv, "POST", "/api/v1/nodes/enroll", NULL, body, strlen(body), 0, &reply), 201);
		snprintf(tokens[i], 160, "%s", json_string_value(json_object_get(reply, "node_token")));
		json_decref(reply);
	}
}

/* A lone node restarts after its lease's deadline: it gets the unit back and the job ends. */
Test(integrity, own_expired_lease_comes_back, .init = setup, .fini = teardown, .timeout = 60)
{
	char a[160];
	th_enroll_node(&srv, "pi", a, sizeof(a));
	int64_t job = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":8000,\"seed\":3},"
				      "\"units\":4,\"deadline_s\":2}");
	struct unit held;
	cr_assert_eq(fetch(a, 1, &held), 1);
	th_sleep(2.5); /* the node is down past the deadline */
	struct unit u[8];
	int n = fetch(a, 8, u);
	int back = 0;
	for (int i = 0; i < n; i++)
		back |= u[i].id == held.id;
	cr_expect(back, "the node's own expired unit was not handed back to it");
	for (int i = 0; i < n; i++)
		cr_expect(report(a, &u[i], true_hits(&u[i])));
	expect_job_state(job, "done");
}

/* A node that keeps fetching and never reports cannot keep a unit: a resend keeps the deadline,
 * another node gets it after, and the hoarder gets it back at most WU_MAX_LEASES times. */
Test(integrity, lease_hoarding_ends, .init = setup, .fini = teardown, .timeout = 60)
{
	char a[160], b[160];
	th_enroll_node(&srv, "hoarder", a, sizeof(a));
	th_enroll_node(&srv, "honest", b, sizeof(b));
	int64_t job = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000,\"seed\":3},"
				      "\"units\":1,\"deadline_s\":4}");
	struct unit first, again, got;
	cr_assert_eq(fetch(a, 1, &first), 1);
	for (int i = 0; i < 3; i++) {
		th_sleep(0.5);
		cr_assert_eq(fetch(a, 1, &again), 1);
		cr_expect_eq(again.id, first.id);
		cr_expect_eq(again.deadline, first.deadline, "a resend extended the lease");
	}
	th_sleep(3.2); /* past the original deadline, although the hoarder fetched meanwhile */
	cr_assert_eq(fetch(b, 1, &got), 1, "the hoarded unit did not go to another node");
	cr_expect_eq(got.id, first.id);
	cr_expect(report(b, &got, true_hits(&got)));
	expect_job_state(job, "done");
}

Test(integrity, relet_is_capped, .init = setup, .fini = teardown, .timeout = 60)
{
	char a[160];
	th_enroll_node(&srv, "hoarder", a, sizeof(a));
	th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000,\"seed\":3},"
			"\"units\":1,\"deadline_s\":2}");
	struct unit u;
	cr_assert_eq(fetch(a, 1, &u), 1);
	for (int lease = 2; lease <= 3; lease++) {
		th_sleep(2.2);
		cr_assert_eq(fetch(a, 1, &u), 1, "lease %d not re-let", lease);
	}
	th_sleep(2.2);
	cr_expect_eq(fetch(a, 1, &u), 0, "a node re-let the same unit past the cap");
	cr_expect_eq(th_db_int(&srv, "SELECT max(leases) FROM replicas"), 3);
}

/* A job whose kernel this server does not have fails alone; other jobs go on. */
Test(integrity, unloadable_job_fails_alone, .init = setup, .fini = teardown, .timeout = 60)
{
	char a[160];
	th_enroll_node(&srv, "a", a, sizeof(a));
	int64_t bad = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000},\"units\":2}");
	int64_t good = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000,\"seed\":4},\"units\":2}");
	char sql[128];
	snprintf(sql, sizeof(sql), "UPDATE jobs SET kernel = 'retired_kernel' WHERE id = %lld", (long long)bad);
	th_db_exec(&srv, sql);
	struct unit u[4];
	int n = fetch(a, 4, u);
	cr_assert_eq(n, 2, "fetch gave %d units", n);
	for (int i = 0; i < n; i++) {
		cr_expect_eq(u[i].job, good);
		cr_expect(report(a, &u[i], true_hits(&u[i])));
	}
	expect_job_state(good, "done");
	json_t *j = job_get(bad);
	cr_expect_str_eq(json_string_value(json_object_get(j, "state")), "failed");
	const char *error = json_string_value(json_object_get(j, "error"));
	cr_expect(error && strstr(error, "retired_kernel"), "no reason: %s", error ? error : "(none)");
	json_decref(j);
	/* Its params unreadable: the same. */
	int64_t bad2 = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000},\"units\":2}");
	snprintf(sql, sizeof(sql), "UPDATE jobs SET params = '{not json' WHERE id = %lld", (long long)bad2);
	th_db_exec(&srv, sql);
	cr_expect_eq(fetch(a, 4, u), 0);
	expect_job_state(bad2, "failed");
}

/* Two nodes of one volunteer never hold replicas of the same unit, so their results never make a
 * quorum together; a job that lacks volunteers says so. */
Test(integrity, one_volunteer_one_vote, .init = setup, .fini = teardown, .timeout = 60)
{
	char n[2][160];
	enroll_same_volunteer(2, n);
	int64_t job = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":3000,\"seed\":2},"
				      "\"units\":3,\"replication\":2,\"quorum\":2}");
	for (int round = 0; round < 3; round++) {
		for (int k = 0; k < 2; k++) {
			struct unit u[4];
			int got = fetch(n[k], 4, u);
			for (int i = 0; i < got; i++)
				report(n[k], &u[i], 0); /* both lie: pi = 0 */
		}
	}
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM (SELECT unit_id FROM replicas GROUP BY unit_id"
				     " HAVING count(*) > 1)"), 0, "one volunteer held two replicas of a unit");
	json_t *j = job_get(job);
	cr_expect_str_eq(json_string_value(json_object_get(j, "state")), "running");
	const char *note = json_string_value(json_object_get(j, "note"));
	cr_expect(note && strstr(note, "volunteers"), "no note on why the job waits: %s", note ? note : "(none)");
	json_decref(j);
	/* A second volunteer arrives: the quorum forms from two volunteers. */
	char honest[160];
	th_enroll_node(&srv, "honest", honest, sizeof(honest));
	struct unit u[4];
	int got = fetch(honest, 4, u);
	cr_expect_eq(got, 3);
	for (int i = 0; i < got; i++)
		report(honest, &u[i], true_hits(&u[i]));
	/* 0 against the truth: no quorum yet, and the liars' volunteer cannot break the tie. */
	expect_job_state(job, "running");
	char third[160];
	th_enroll_node(&srv, "third", third, sizeof(third));
	got = fetch(third, 4, u);
	cr_expect_eq(got, 3);
	uint64_t want = 0;
	for (int i = 0; i < got; i++) {
		want += true_hits(&u[i]);
		report(third, &u[i], true_hits(&u[i]));
	}
	expect_job_state(job, "done");
	cr_expect_eq(job_hits(job), (int64_t)want);
}

/* An admin sees each node's enrollment token and disables a volunteer's nodes at once. */
Test(integrity, disable_a_volunteer, .init = setup, .fini = teardown, .timeout = 60)
{
	char n[3][160], other[160];
	enroll_same_volunteer(3, n);
	th_enroll_node(&srv, "other", other, sizeof(other));
	int64_t token = th_db_int(&srv, "SELECT volunteer FROM nodes WHERE name = 'box-0'");
	cr_assert_gt(token, 0);
	json_t *list = NULL;
	cr_assert_eq(th_http(&srv, "GET", "/api/v1/nodes", srv.admin_token, NULL, 0, 0, &list), 200);
	json_t *first = json_array_get(json_object_get(list, "nodes"), 0);
	cr_expect_eq(json_integer_value(json_object_get(first, "enroll_token_id")), token);
	json_decref(list);
	char path[80];
	json_t *reply = NULL;
	snprintf(path, sizeof(path), "/api/v1/enroll-tokens/%lld/disable-nodes", (long long)token);
	cr_assert_eq(th_http(&srv, "POST", path, srv.admin_token, NULL, 0, 0, &reply), 200);
	cr_expect_eq(json_integer_value(json_object_get(reply, "disabled")), 3);
	json_decref(reply);
	for (int i = 0; i < 3; i++)
		cr_expect_eq(th_http(&srv, "POST", "/api/v1/work/fetch", n[i], "{}", 2, 0, NULL), 403);
	cr_expect_eq(th_http(&srv, "POST", "/api/v1/work/fetch", other, "{}", 2, 0, NULL), 200);
	/* Not an admin's, or no such token: refused. */
	cr_expect_eq(th_http(&srv, "POST", "/api/v1/enroll-tokens/999/disable-nodes", srv.admin_token, NULL, 0, 0,
			     NULL), 404);
	cr_expect_eq(th_http(&srv, "POST", path, other, NULL, 0, 0, NULL), 403);
}

/* Results nobody checked earn no trust: a node that lied through a whole R=1 job is not
 * trusted with single replicas in a later adaptive job. */
Test(integrity, unchecked_results_earn_no_trust, .init = setup, .fini = teardown, .timeout = 60)
{
	char liar[160];
	th_enroll_node(&srv, "liar", liar, sizeof(liar));
	int64_t job = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":12000},\"units\":12}");
	struct unit u[16];
	int n = fetch(liar, 16, u);
	cr_assert_eq(n, 12);
	for (int i = 0; i < n; i++)
		report(liar, &u[i], 0);
	expect_job_state(job, "done"); /* R=1: the user asked for no checks */
	cr_expect_eq(th_db_int(&srv, "SELECT streak FROM nodes"), 0);
	cr_expect_eq(th_db_int(&srv, "SELECT n_valid FROM nodes"), 0);
	th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":10000},\"units\":10,"
			"\"replication\":2,\"quorum\":2,\"adaptive\":true}");
	cr_assert_eq(fetch(liar, 16, u), 10);
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM units WHERE job_id = 2 AND quorum = 1"), 0,
		     "an untrusted node got single replicas");
}

/* A trusted node that lied on its single replicas is caught on a checked unit: its single
 * results of running jobs are checked again, and the job's answer is exact. */
Test(integrity, caught_liar_is_rechecked, .init = setup, .fini = teardown, .timeout = 90)
{
	char liar[160], h1[160], h2[160];
	th_enroll_node(&srv, "liar", liar, sizeof(liar));
	th_enroll_node(&srv, "h1", h1, sizeof(h1));
	th_enroll_node(&srv, "h2", h2, sizeof(h2));
	/* The liar earns trust honestly: ten results confirmed by h1. */
	th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":10000,\"seed\":1},\"units\":10,"
			"\"replication\":2,\"quorum\":2}");
	struct unit u[64];
	int n = fetch(liar, 10, u);
	cr_assert_eq(n, 10);
	for (int i = 0; i < n; i++)
		cr_expect(report(liar, &u[i], true_hits(&u[i])));
	cr_assert_eq(fetch(h1, 10, u), 10);
	for (int i = 0; i < 10; i++)
		cr_expect(report(h1, &u[i], true_hits(&u[i])));
	cr_assert_eq(th_db_int(&srv, "SELECT streak FROM nodes WHERE name = 'liar'"), 10);
	/* A checked unit to catch it with, handed out first (its job is older). */
	int64_t trap = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000,\"seed\":3},"
				       "\"units\":1,\"replication\":2,\"quorum\":2}");
	struct unit t;
	cr_assert_eq(fetch(liar, 1, &t), 1);
	cr_assert_eq(t.job, trap);
	report(liar, &t, 0); /* judged once another volunteer reports */
	/* Trusted, it gets single replicas of an adaptive job and lies on every one (the job keeps a
	 * unit not handed out yet, so it is still running whatever the spot checks). */
	int64_t adaptive = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":41000,\"seed\":2},"
					   "\"units\":41,\"replication\":2,\"quorum\":2,\"adaptive\":true}");
	struct unit a[40];
	cr_assert_eq(fetch(liar, 40, a), 40);
	uint64_t want = kern_pi_hits_scalar(2, 40000, 1000); /* the unit left */
	for (int i = 0; i < 40; i++) {
		cr_assert_eq(a[i].job, adaptive);
		want += true_hits(&a[i]);
		report(liar, &a[i], 0);
	}
	int64_t singles = th_db_int(&srv, "SELECT count(*) FROM units WHERE job_id = 3 AND state = 2");
	cr_assert_gt(singles, 0, "no single replicas to recheck");
	/* It is caught on the checked unit. */
	struct unit hu[64];
	int nh1 = fetch(h1, 64, hu);
	for (int i = 0; i < nh1; i++)
		if (hu[i].job == trap)
			report(h1, &hu[i], true_hits(&hu[i]));
	struct unit h2u[64];
	int nh2 = fetch(h2, 64, h2u);
	for (int i = 0; i < nh2; i++)
		if (h2u[i].job == trap)
			report(h2, &h2u[i], true_hits(&h2u[i]));
	expect_job_state(trap, "done");
	cr_expect_eq(th_db_int(&srv, "SELECT streak FROM nodes WHERE name = 'liar'"), 0);
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM units u JOIN replicas r ON r.unit_id = u.id"
				     " JOIN nodes n ON n.id = r.node_id WHERE u.job_id = 3 AND u.quorum = 1"
				     " AND n.name = 'liar'"), 0, "the liar's single results were not reopened");
	/* The honest nodes finish the adaptive job: its answer is exact. */
	for (int i = 0; i < nh1; i++)
		if (hu[i].job == adaptive)
			report(h1, &hu[i], true_hits(&hu[i]));
	for (int i = 0; i < nh2; i++)
		if (h2u[i].job == adaptive)
			report(h2, &h2u[i], true_hits(&h2u[i]));
	for (int round = 0; round < 6; round++) {
		const char *tok = round % 2 ? h2 : h1;
		n = fetch(tok, 64, u);
		for (int i = 0; i < n; i++)
			report(tok, &u[i], true_hits(&u[i]));
	}
	expect_job_state(adaptive, "done");
	cr_expect_eq(job_hits(adaptive), (int64_t)want, "the liar's zeros are in the answer");
}

/* A storage fault mid-request changes nothing and is an error the client retries (5xx), never
 * a success with half the writes: job submit (write, then the view read fails). */
Test(integrity, submit_is_all_or_nothing, .fini = teardown, .timeout = 60)
{
	setenv("TESSERA_FAULT_SQL", "SELECT j.id, u.name, j.kernel", 1); /* the job view's read */
	th_server_start(&srv);
	json_t *reply = NULL;
	const char *body = "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000},\"units\":2}";
	long status = th_http(&srv, "POST", "/api/v1/jobs", srv.admin_token, body, strlen(body), 0, &reply);
	cr_expect_geq(status, 500, "HTTP %ld", status);
	cr_expect(json_is_object(json_object_get(reply, "error")));
	json_decref(reply);
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM jobs"), 0, "a failed submit left a job");
}

/* The heartbeat's two writes are one: a fault in the second leaves the first undone. */
Test(integrity, heartbeat_is_all_or_nothing, .fini = teardown, .timeout = 60)
{
	setenv("TESSERA_FAULT_SQL", "UPDATE nodes SET last_seen", 1);
	th_server_start(&srv);
	char a[160];
	th_enroll_node(&srv, "a", a, sizeof(a));
	const char *hb = "{\"rates\":{\"montecarlo_pi\":123456789}}";
	long status = th_http(&srv, "POST", "/api/v1/nodes/heartbeat", a, hb, strlen(hb), 0, NULL);
	cr_expect_geq(status, 500, "HTTP %ld", status);
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM nodes WHERE rates LIKE '%123456789%'"), 0,
		     "half a heartbeat was written");
}

/* A failed read while validating is an error, not "no results": the unit and job are left as
 * they were, and the report can be retried. */
Test(integrity, failed_read_fails_the_request_not_the_job, .fini = teardown, .timeout = 60)
{
	setenv("TESSERA_FAULT_SQL", "SELECT res0, res1, count(*)", 1); /* the grouping of results */
	th_server_start(&srv);
	char a[160], b[160];
	th_enroll_node(&srv, "a", a, sizeof(a));
	th_enroll_node(&srv, "b", b, sizeof(b));
	int64_t job = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000,\"seed\":5},"
				      "\"units\":1,\"replication\":2,\"quorum\":2}");
	struct unit ua, ub;
	cr_assert_eq(fetch(a, 1, &ua), 1);
	cr_assert_eq(fetch(b, 1, &ub), 1);
	char digest[65], after[65];
	th_db_digest(&srv, digest);
	char body[200];
	snprintf(body, sizeof(body), "{\"results\":[{\"unit_id\":%lld,\"result\":{\"hits\":%llu}}]}",
		 (long long)ua.id, (unsigned long long)true_hits(&ua));
	long status = th_http(&srv, "POST", "/api/v1/work/report", a, body, strlen(body), 0, NULL);
	cr_expect_geq(status, 500, "HTTP %ld", status);
	th_db_digest(&srv, after);
	cr_expect_str_eq(after, digest, "a failed report changed the store");
	expect_job_state(job, "running");
}

/* The CLI shows each node's token, disables a volunteer's nodes at once, and says why a job
 * waits. */
static int cli(const char *dir, char *out, size_t cap, const char *const *args)
{
	char env_cfg[512], env_pw[128];
	char *argv[16] = {(char *)th_bin("tessera")};
	int n = 1;
	for (; args[n - 1] && n < 15; n++)
		argv[n] = (char *)args[n - 1];
	argv[n] = NULL;
	snprintf(env_cfg, sizeof(env_cfg), "TESSERA_CONFIG=%s", dir);
	snprintf(env_pw, sizeof(env_pw), "TESSERA_PASSWORD=%s", TH_ADMIN_PASSWORD);
	char *env[] = {env_cfg, env_pw, NULL};
	return th_run(argv, env, 30, out, cap);
}

Test(integrity, cli_volunteers, .init = setup, .fini = teardown, .timeout = 60)
{
	char dir[400], out[8192], n[2][160];
	snprintf(dir, sizeof(dir), "%s/cfg-admin", srv.dir);
	cr_assert_eq(cli(dir, out, sizeof(out), (const char *const[]){"login", srv.url, "--user", "admin", "--pin",
									    srv.pin, NULL}), 0, "%s", out);
	enroll_same_volunteer(2, n);
	int64_t token = th_db_int(&srv, "SELECT volunteer FROM nodes WHERE name = 'box-1'");
	char id[24];
	snprintf(id, sizeof(id), "%lld", (long long)token);
	cr_assert_eq(cli(dir, out, sizeof(out), (const char *const[]){"nodes", NULL}), 0, "%s", out);
	cr_expect(strstr(out, "TOKEN"), "%s", out);
	int64_t job = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000},\"units\":1,"
				      "\"replication\":2,\"quorum\":2}");
	json_decref(th_fetch(&srv, n[0], 1)); /* the nodes are online */
	char jid[24];
	snprintf(jid, sizeof(jid), "%lld", (long long)job);
	cr_assert_eq(cli(dir, out, sizeof(out), (const char *const[]){"status", jid, NULL}), 0, "%s", out);
	cr_expect(strstr(out, "note: waiting for volunteers"), "%s", out);
	/* Wrong uses are refused before anything is sent. */
	cr_expect_eq(cli(dir, out, sizeof(out), (const char *const[]){"nodes", "enable", "--token", id, NULL}), 2);
	cr_expect_eq(cli(dir, out, sizeof(out), (const char *const[]){"nodes", "disable", "--token", "x", NULL}), 2);
	cr_assert_eq(cli(dir, out, sizeof(out), (const char *const[]){"nodes", "disable", "--token", id, NULL}), 0,
		     "%s", out);
	cr_expect(strstr(out, "2 of its nodes disabled"), "%s", out);
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM nodes WHERE disabled = 1"), 2);
	cr_expect_eq(th_db_int(&srv, "SELECT revoked FROM tokens WHERE kind = 'enroll' AND id IN"
				     " (SELECT volunteer FROM nodes)"), 1);
}

/* A store of version 1 (before volunteers) is upgraded at the server's first start: its nodes
 * keep working, each its own volunteer, and its units finish. */
static void copy_as_v1(const th_server *s)
{
	char path[400], old[420], *sql = NULL, *err = NULL;
	snprintf(path, sizeof(path), "%s/tessera.db", s->data);
	snprintf(old, sizeof(old), "%s.v2", path);
	cr_assert_eq(rename(path, old), 0);
	cr_assert_eq(ts_read_file(TESSERA_SOURCE_DIR "/schema/001_init.sql", 1 << 20, &sql, NULL), TS_OK);
	sqlite3 *db = NULL;
	cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
	char attach[600];
	snprintf(attach, sizeof(attach), "ATTACH '%s' AS v2", old);
	const char *copy =
		"INSERT INTO users SELECT id, name, pw_hash, role, disabled, deleted, created_at FROM v2.users;"
		"INSERT INTO nodes SELECT id, name, platform, cores, disabled, created_at, last_seen, units_done,"
		" n_valid, n_invalid, streak, rates FROM v2.nodes;"
		"INSERT INTO tokens SELECT * FROM v2.tokens;"
		"INSERT INTO jobs SELECT id, owner_id, kernel, params, state, space, unit_size, n_units, next_seq, feeding,"
		" units_done, replication, quorum, adaptive, deadline_s, acc0, acc1, compute_s, result, error, created_at,"
		" started_at, finished_at FROM v2.jobs;"
		"INSERT INTO units SELECT * FROM v2.units;"
		"INSERT INTO replicas SELECT id, unit_id, node_id, state, deadline, leases, res0, res1, verdict,"
		" counted, wall_s, issued_at, reported_at FROM v2.replicas;"
		"PRAGMA user_version = 1;";
	cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, &err), SQLITE_OK, "%s", err);
	cr_assert_eq(sqlite3_exec(db, attach, NULL, NULL, &err), SQLITE_OK, "%s", err);
	cr_assert_eq(sqlite3_exec(db, copy, NULL, NULL, &err), SQLITE_OK, "%s", err);
	sqlite3_close(db);
	free(sql);
	unlink(old);
	char side[440];
	snprintf(side, sizeof(side), "%s-wal", old);
	unlink(side);
	snprintf(side, sizeof(side), "%s-shm", old);
	unlink(side);
}

Test(integrity, version_1_store_is_upgraded, .init = setup, .fini = teardown, .timeout = 60)
{
	char a[160];
	th_enroll_node(&srv, "old-node", a, sizeof(a));
	int64_t job = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":2000,\"seed\":8},\"units\":2}");
	struct unit held;
	cr_assert_eq(fetch(a, 1, &held), 1);
	th_server_kill(&srv, SIGTERM);
	copy_as_v1(&srv);
	th_server_restart(&srv);
	cr_expect_eq(th_db_int(&srv, "PRAGMA user_version"), 4); /* 001 to the latest, schema/004_health.sql */
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM nodes WHERE volunteer IS NULL"), 1);
	struct unit u[4];
	int n = fetch(a, 4, u);
	cr_assert_eq(n, 2, "the old node's units after the upgrade: %d", n);
	cr_expect_eq(u[0].id, held.id, "its held unit did not come back first");
	for (int i = 0; i < n; i++)
		cr_expect(report(a, &u[i], true_hits(&u[i])));
	expect_job_state(job, "done");
	char b[160];
	th_enroll_node(&srv, "new-node", b, sizeof(b));
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM nodes WHERE volunteer IS NOT NULL"), 1);
}
