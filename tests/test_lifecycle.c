/* The unit lifecycle against a real server: leases and expiry, late and duplicate reports,
 * replication and quorum on distinct nodes, liars, failure, adaptive replication, disabled and
 * lost nodes. Nodes here are driven by the test over the real API, so each step is exact. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kern.h"
#include "th_harness.h"

static th_server srv;

static void setup(void)
{
	th_server_start_timeout(&srv, 2);
}

static void teardown(void)
{
	th_server_stop(&srv);
}

struct unit {
	int64_t id, job;
	uint64_t start, count, seed;
};

/* The first unit of a fetch reply (id 0 if none). */
static struct unit first_unit(json_t *reply)
{
	struct unit u = {0};
	json_t *j = json_array_get(json_object_get(reply, "units"), 0);
	if (j) {
		u.id = json_integer_value(json_object_get(j, "id"));
		u.job = json_integer_value(json_object_get(j, "job_id"));
		u.start = (uint64_t)json_integer_value(json_object_get(j, "start"));
		u.count = (uint64_t)json_integer_value(json_object_get(j, "count"));
		u.seed = (uint64_t)json_integer_value(json_object_get(json_object_get(j, "params"), "seed"));
	}
	json_decref(reply);
	return u;
}

static uint64_t true_hits(const struct unit *u)
{
	return kern_pi_hits_scalar(u->seed, u->start, u->count);
}

/* Reports and says whether the unit was accepted. */
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

static const char *job_state(json_t *job)
{
	return json_string_value(json_object_get(job, "state"));
}


Test(lifecycle, expired_lease_is_reissued_and_late_result_used, .init = setup, .fini = teardown, .timeout = 60)
{
	char a[160], b[160];
	th_enroll_node(&srv, "a", a, sizeof(a));
	th_enroll_node(&srv, "b", b, sizeof(b));
	int64_t job = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":100000,\"seed\":5},"
				      "\"units\":1,\"deadline_s\":2}");
	struct unit ua = first_unit(th_fetch(&srv, a, 1));
	cr_assert(ua.id);
	/* While the lease is live, nobody else gets the unit. */
	cr_expect_eq(first_unit(th_fetch(&srv, b, 1)).id, 0);
	th_sleep(2.5);
	struct unit ub = first_unit(th_fetch(&srv, b, 1));
	cr_assert_eq(ub.id, ua.id, "the expired unit was not reissued");
	/* A's late result is still used: the unit needs it. */
	cr_expect(report(a, &ua, true_hits(&ua)), "late result refused while the unit needed it");
	/* B's result is no longer needed and is not counted. */
	cr_expect(!report(b, &ub, true_hits(&ub)), "result counted after the unit was settled");
	json_t *j = job_get(job);
	cr_expect_str_eq(job_state(j), "done");
	cr_expect_eq(json_integer_value(json_object_get(json_object_get(j, "result"), "hits")), true_hits(&ua));
	json_decref(j);
	cr_expect_eq(th_db_int(&srv, "SELECT sum(counted) FROM replicas"), 1);
	cr_expect_eq(th_db_int(&srv, "SELECT units_done FROM jobs"), 1);
}

Test(lifecycle, duplicate_report_counts_once, .init = setup, .fini = teardown, .timeout = 60)
{
	char a[160];
	th_enroll_node(&srv, "a", a, sizeof(a));
	th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":10000,\"seed\":5},\"units\":2}");
	struct unit u = first_unit(th_fetch(&srv, a, 1));
	for (int i = 0; i < 4; i++)
		cr_expect(report(a, &u, true_hits(&u)), "retry %d not acknowledged", i);
	cr_expect_eq(th_db_int(&srv, "SELECT units_done FROM jobs"), 1);
	cr_expect_eq(th_db_int(&srv, "SELECT acc0 FROM jobs"), (int64_t)true_hits(&u));
	cr_expect_eq(th_db_int(&srv, "SELECT units_done FROM nodes"), 1);
}

Test(lifecycle, lost_reply_resends_the_lease, .init = setup, .fini = teardown, .timeout = 60)
{
	char a[160];
	th_enroll_node(&srv, "a", a, sizeof(a));
	th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":10000},\"units\":3}");
	struct unit u1 = first_unit(th_fetch(&srv, a, 1));
	/* The node lost the reply (or restarted) and asks again: it gets the same unit back. */
	struct unit u2 = first_unit(th_fetch(&srv, a, 1));
	cr_expect_eq(u2.id, u1.id);
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM replicas"), 1);
}

Test(lifecycle, replicas_go_to_distinct_nodes_and_quorum_decides, .init = setup, .fini = teardown, .timeout = 60)
{
	char a[160], b[160];
	th_enroll_node(&srv, "a", a, sizeof(a));
	th_enroll_node(&srv, "b", b, sizeof(b));
	int64_t job = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":5000,\"seed\":9},"
				      "\"units\":1,\"replication\":2,\"quorum\":2}");
	struct unit ua = first_unit(th_fetch(&srv, a, 1));
	cr_assert(ua.id);
	cr_expect(report(a, &ua, true_hits(&ua)));
	/* A has its replica: it is never given the unit's second one. */
	cr_expect_eq(first_unit(th_fetch(&srv, a, 1)).id, 0);
	json_t *j = job_get(job);
	cr_expect_str_eq(job_state(j), "running", "one result settled a quorum-2 unit");
	json_decref(j);
	struct unit ub = first_unit(th_fetch(&srv, b, 1));
	cr_assert_eq(ub.id, ua.id);
	cr_expect(report(b, &ub, true_hits(&ub)));
	j = job_get(job);
	cr_expect_str_eq(job_state(j), "done");
	cr_expect_eq(json_integer_value(json_object_get(json_object_get(j, "result"), "hits")), true_hits(&ua));
	json_decref(j);
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM replicas WHERE verdict = 1"), 2);
}

Test(lifecycle, disagreement_sends_more_replicas, .init = setup, .fini = teardown, .timeout = 60)
{
	char n[3][160];
	for (int i = 0; i < 3; i++) {
		char name[8];
		snprintf(name, sizeof(name), "n%d", i);
		th_enroll_node(&srv, name, n[i], sizeof(n[i]));
	}
	int64_t job = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":5000,\"seed\":9},"
				      "\"units\":1,\"replication\":2,\"quorum\":2}");
	struct unit u0 = first_unit(th_fetch(&srv, n[0], 1));
	struct unit u1 = first_unit(th_fetch(&srv, n[1], 1));
	cr_assert(u0.id && u1.id == u0.id);
	cr_expect(report(n[0], &u0, true_hits(&u0) + 1)); /* a liar */
	cr_expect(report(n[1], &u1, true_hits(&u1)));
	/* No quorum: a third replica goes to the third node, which breaks the tie. */
	struct unit u2 = first_unit(th_fetch(&srv, n[2], 1));
	cr_assert_eq(u2.id, u0.id, "no extra replica after a disagreement");
	cr_expect(report(n[2], &u2, true_hits(&u2)));
	json_t *j = job_get(job);
	cr_expect_str_eq(job_state(j), "done");
	cr_expect_eq(json_integer_value(json_object_get(json_object_get(j, "result"), "hits")), true_hits(&u0));
	json_decref(j);
	cr_expect_eq(th_db_int(&srv, "SELECT n_invalid FROM nodes WHERE name = 'n0'"), 1);
	cr_expect_eq(th_db_int(&srv, "SELECT n_valid FROM nodes WHERE name = 'n1'"), 1);
	cr_expect_eq(th_db_int(&srv, "SELECT streak FROM nodes WHERE name = 'n0'"), 0);
}

Test(lifecycle, no_quorum_within_bound_fails_the_job, .init = setup, .fini = teardown, .timeout = 60)
{
	char n[6][160];
	int64_t job = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":5000},"
				      "\"units\":2,\"replication\":2,\"quorum\":2}");
	int reported = 0;
	for (int i = 0; i < 6; i++) {
		char name[8];
		snprintf(name, sizeof(name), "liar%d", i);
		th_enroll_node(&srv, name, n[i], sizeof(n[i]));
		struct unit u = first_unit(th_fetch(&srv, n[i], 1));
		if (!u.id)
			continue;
		if (u.start == 0) { /* all of them lie differently about unit 0 */
			report(n[i], &u, (uint64_t)i);
			reported++;
		}
	}
	json_t *j = job_get(job);
	cr_expect_str_eq(job_state(j), "failed");
	const char *err = json_string_value(json_object_get(j, "error"));
	cr_expect(err && strstr(err, "no 2 matching results"), "reason: %s", err ? err : "(none)");
	json_decref(j);
	cr_expect_eq(reported, 5, "the unit failed after %d results, want 2 + 3", reported);
	/* A failed job hands out nothing more. */
	cr_expect_eq(first_unit(th_fetch(&srv, n[5], 1)).id, 0);
}

Test(lifecycle, trusted_node_gets_single_replicas, .init = setup, .fini = teardown, .timeout = 120)
{
	char a[160], b[160];
	th_enroll_node(&srv, "a", a, sizeof(a));
	th_enroll_node(&srv, "b", b, sizeof(b));
	int64_t job = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":100000,\"seed\":3},"
				      "\"units\":100,\"replication\":2,\"quorum\":2,\"adaptive\":true}");
	/* Both compute honestly: A picks up new units, B the second replicas. */
	for (int round = 0; round < 200; round++) {
		struct unit u = first_unit(th_fetch(&srv, a, 1));
		struct unit v = first_unit(th_fetch(&srv, b, 1));
		if (!u.id && !v.id)
			break;
		if (u.id)
			report(a, &u, true_hits(&u));
		if (v.id)
			report(b, &v, true_hits(&v));
	}
	json_t *j = job_get(job);
	cr_expect_str_eq(job_state(j), "done");
	json_decref(j);
	int64_t singles = th_db_int(&srv, "SELECT count(*) FROM units WHERE quorum = 1");
	int64_t checked = th_db_int(&srv, "SELECT count(*) FROM units WHERE quorum = 2");
	cr_expect_gt(singles, 30, "trusted nodes got only %lld single replicas", (long long)singles);
	cr_expect_geq(checked, 10, "the first units before trust is earned are replicated");
	cr_expect_eq(singles + checked, 100);
}

Test(lifecycle, disabled_node_is_refused_and_its_leases_released, .init = setup, .fini = teardown, .timeout = 60)
{
	char a[160], b[160], path[64];
	int64_t ida = th_enroll_node(&srv, "a", a, sizeof(a));
	th_enroll_node(&srv, "b", b, sizeof(b));
	th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":10000},\"units\":1}");
	struct unit ua = first_unit(th_fetch(&srv, a, 1));
	cr_assert(ua.id);
	snprintf(path, sizeof(path), "/api/v1/nodes/%lld/disable", (long long)ida);
	json_t *reply = NULL;
	cr_assert_eq(th_http(&srv, "POST", path, srv.admin_token, NULL, 0, 0, &reply), 200);
	cr_expect_str_eq(json_string_value(json_object_get(reply, "state")), "disabled");
	json_decref(reply);
	cr_expect_eq(th_http(&srv, "POST", "/api/v1/work/fetch", a, "{}", 2, 0, NULL), 403);
	char body[128];
	snprintf(body, sizeof(body), "{\"results\":[{\"unit_id\":%lld,\"result\":{\"hits\":1}}]}", (long long)ua.id);
	cr_expect_eq(th_http(&srv, "POST", "/api/v1/work/report", a, body, strlen(body), 0, NULL), 403);
	/* Its unit goes to B at once. */
	cr_expect_eq(first_unit(th_fetch(&srv, b, 1)).id, ua.id);
	/* Only admins disable nodes, and unknown nodes are 404. */
	cr_expect_eq(th_http(&srv, "POST", path, b, NULL, 0, 0, NULL), 403);
	cr_expect_eq(th_http(&srv, "POST", "/api/v1/nodes/999/disable", srv.admin_token, NULL, 0, 0, NULL), 404);
	snprintf(path, sizeof(path), "/api/v1/nodes/%lld/enable", (long long)ida);
	cr_expect_eq(th_http(&srv, "POST", path, srv.admin_token, NULL, 0, 0, NULL), 200);
	cr_expect_eq(th_http(&srv, "POST", "/api/v1/work/fetch", a, "{}", 2, 0, NULL), 200);
}

Test(lifecycle, lost_node_leases_released_early, .init = setup, .fini = teardown, .timeout = 60)
{
	char a[160], b[160];
	th_enroll_node(&srv, "a", a, sizeof(a));
	th_enroll_node(&srv, "b", b, sizeof(b));
	/* A long deadline: only the lost-node sweep can free the unit this soon. */
	th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":10000},\"units\":1,\"deadline_s\":3600}");
	struct unit ua = first_unit(th_fetch(&srv, a, 1));
	cr_assert(ua.id);
	/* Heartbeats keep A alive past the timeout: one every 0.1 s (only a silent gap of 2 s would
	 * lose A), until by the server's own clock A has held the unit longer than a silent node
	 * could keep it: the 2 s timeout, a second of whole-second clocks and the 1 s sweep. */
	char sql[200];
	snprintf(sql, sizeof(sql), "SELECT CAST(strftime('%%s', 'now') AS INTEGER) - issued_at"
		 " FROM replicas WHERE unit_id = %lld", (long long)ua.id);
	while (th_db_int(&srv, sql) <= 4) {
		cr_assert_eq(th_http(&srv, "POST", "/api/v1/nodes/heartbeat", a, NULL, 0, 0, NULL), 200);
		th_sleep(0.1);
	}
	cr_expect_eq(first_unit(th_fetch(&srv, b, 1)).id, 0, "a live node's lease was taken");
	/* Silent past the 2 s timeout: A is lost and its lease released. */
	struct unit ub = {0};
	for (int i = 0; i < 40 && !ub.id; i++) {
		th_sleep(0.25);
		ub = first_unit(th_fetch(&srv, b, 1));
	}
	cr_expect_eq(ub.id, ua.id, "the lost node's lease was not released");
	json_t *nodes = NULL;
	cr_assert_eq(th_http(&srv, "GET", "/api/v1/nodes", srv.admin_token, NULL, 0, 0, &nodes), 200);
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(nodes, "nodes"), 0), "state")), "lost");
	json_decref(nodes);
}


static size_t fetch_seconds(const char *tok, double seconds)
{
	char body[64];
	json_t *reply = NULL;
	snprintf(body, sizeof(body), "{\"seconds\":%g}", seconds);
	cr_assert_eq(th_http(&srv, "POST", "/api/v1/work/fetch", tok, body, strlen(body), 0, &reply), 200);
	size_t n = json_array_size(json_object_get(reply, "units"));
	json_decref(reply);
	return n;
}

Test(lifecycle, fetch_is_sized_by_the_node_rate, .init = setup, .fini = teardown, .timeout = 60)
{
	char fast[160], slow[160];
	th_enroll_rated(&srv, "vm", 1e9, fast, sizeof(fast));
	th_enroll_rated(&srv, "pi", 1e7, slow, sizeof(slow));
	/* Units of 10^6 samples: 1 ms on the VM, 100 ms on the Pi. */
	th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000000000},\"units\":1000}");
	cr_expect_eq(fetch_seconds(fast, 0.01), 10, "the VM's 10 ms of work");
	cr_expect_eq(fetch_seconds(slow, 0.01), 1, "at least one unit, even when one is over the budget");
	/* Half a second: its held unit back first, then four new ones. */
	cr_expect_eq(fetch_seconds(slow, 0.5), 5);
	/* The held unit came back as it was: a resend never extends a lease. */
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM replicas WHERE leases != 1"), 0);
	/* Rates refreshed by a heartbeat change the sizing. */
	const char *hb = "{\"rates\":{\"montecarlo_pi\":2e9}}";
	cr_expect_eq(th_http(&srv, "POST", "/api/v1/nodes/heartbeat", slow, hb, strlen(hb), 0, NULL), 200);
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM nodes WHERE rates LIKE '%2000000000%'"), 1);
	const char *bad = "{\"rates\":{\"montecarlo_pi\":-1}}";
	cr_expect_eq(th_http(&srv, "POST", "/api/v1/nodes/heartbeat", slow, bad, strlen(bad), 0, NULL), 400);
	const char *unknown = "{\"speed\":1}";
	cr_expect_eq(th_http(&srv, "POST", "/api/v1/nodes/heartbeat", slow, unknown, strlen(unknown), 0, NULL), 400);
}

Test(lifecycle, a_declined_unit_goes_to_another_node, .init = setup, .fini = teardown, .timeout = 60)
{
	char a[160], b[160], body[200];
	json_t *reply = NULL;
	th_enroll_node(&srv, "old", a, sizeof(a));
	th_enroll_node(&srv, "new", b, sizeof(b));
	th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":10000,\"seed\":2},\"units\":1}");
	struct unit ua = first_unit(th_fetch(&srv, a, 1));
	cr_assert(ua.id);
	snprintf(body, sizeof(body), "{\"results\":[{\"unit_id\":%lld,\"error\":\"unknown kernel\"}]}", (long long)ua.id);
	cr_assert_eq(th_http(&srv, "POST", "/api/v1/work/report", a, body, strlen(body), 0, &reply), 200);
	cr_expect_eq(json_array_size(json_object_get(reply, "accepted")), 1);
	json_decref(reply);
	/* Not back to the node that declined it; at once to the other. */
	cr_expect_eq(first_unit(th_fetch(&srv, a, 1)).id, 0);
	struct unit ub = first_unit(th_fetch(&srv, b, 1));
	cr_expect_eq(ub.id, ua.id);
	cr_expect(report(b, &ub, true_hits(&ub)));
	/* Both or neither of result and error is refused whole. */
	snprintf(body, sizeof(body), "{\"results\":[{\"unit_id\":%lld,\"error\":\"x\",\"result\":{\"hits\":1}}]}", (long long)ua.id);
	cr_expect_eq(th_http(&srv, "POST", "/api/v1/work/report", a, body, strlen(body), 0, NULL), 400);
	snprintf(body, sizeof(body), "{\"results\":[{\"unit_id\":%lld}]}", (long long)ua.id);
	cr_expect_eq(th_http(&srv, "POST", "/api/v1/work/report", a, body, strlen(body), 0, NULL), 400);
}

Test(lifecycle, compact_keeps_results_and_drops_unit_rows, .init = setup, .fini = teardown, .timeout = 60)
{
	char a[160], out[1024];
	th_enroll_node(&srv, "a", a, sizeof(a));
	int64_t done = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000000,\"seed\":42},\"units\":5}");
	th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000000,\"seed\":42},\"units\":5}");
	/* Finish the first job; leave the second one running with a unit leased. */
	for (int i = 0; i < 6; i++) {
		struct unit u = first_unit(th_fetch(&srv, a, 1));
		if (u.id)
			report(a, &u, true_hits(&u));
	}
	cr_assert_eq(th_db_int(&srv, "SELECT count(*) FROM units"), 6);
	char *argv[] = {(char *)th_bin("tessera-server"), "compact", "--data", srv.data, "--days", "0", NULL};
	cr_assert_eq(th_run(argv, NULL, 60, out, sizeof(out)), 0, "%s", out);
	cr_expect(strstr(out, "5 units") != NULL, "%s", out);
	/* The running job's unit stays; the finished job keeps its exact result. */
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM units"), 1);
	json_t *j = job_get(done);
	cr_expect_eq(json_integer_value(json_object_get(json_object_get(j, "result"), "hits")), 785192);
	json_decref(j);
	char *bad[] = {(char *)th_bin("tessera-server"), "compact", "--data", srv.data, "--days", "-1", NULL};
	cr_expect_eq(th_run(bad, NULL, 60, out, sizeof(out)), 2);
}
