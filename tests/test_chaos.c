/* Chaos: real clients and the server are killed with SIGKILL at random moments and restarted;
 * the job's answer must still be exact, nothing lost and nothing counted twice. Also a lying
 * node among honest real clients under replication 2, quorum 2. Seeded and bounded in time. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kern.h"
#include "th_harness.h"
#include "ts_util.h"

#define CLIENTS 4
#define CHAOS_SEED 20261121u

static th_server srv;

static void setup(void)
{
	th_server_start_timeout(&srv, 3);
}

static void teardown(void)
{
	th_server_stop(&srv);
}

static void sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	nanosleep(&ts, NULL);
}

static pid_t start_client(int i, const char *state)
{
	char log[400];
	snprintf(log, sizeof(log), "%s/client%d.log", srv.dir, i);
	char *argv[] = {(char *)th_bin("tessera-client"), "run", "--state", (char *)state, "--threads", "1", NULL};
	return th_spawn(argv, NULL, log);
}

/* Each client is its own volunteer (its own enrollment token), so replicas of a unit may go to
 * any two of them (nodes of one volunteer never share a unit). */
static void enroll_clients(int n, char state[][400])
{
	char token[160], out[2048];
	for (int i = 0; i < n; i++) {
		char name[24];
		th_enroll_token(&srv, 1, token, sizeof(token));
		snprintf(state[i], 400, "%s/client%d", srv.dir, i);
		snprintf(name, sizeof(name), "client-%d", i);
		char *argv[] = {(char *)th_bin("tessera-client"), "enroll", srv.url, token, "--state", state[i],
				"--name", name, NULL};
		cr_assert_eq(th_run(argv, NULL, 60, out, sizeof(out)), 0, "enroll: %s", out);
	}
}

static double job_progress(int64_t id, char *state, size_t cap)
{
	char path[64];
	json_t *job = NULL;
	snprintf(path, sizeof(path), "/api/v1/jobs/%lld", (long long)id);
	double p = -1;
	state[0] = '\0';
	if (th_http(&srv, "GET", path, srv.admin_token, NULL, 0, 0, &job) == 200) {
		p = json_real_value(json_object_get(job, "progress"));
		snprintf(state, cap, "%s", json_string_value(json_object_get(job, "state")));
	}
	json_decref(job);
	return p;
}

/* The lost node of the chaos run: client 0, killed while it holds leases and kept down until
 * every unit it held and did not report went to another node. */
enum lost_phase { LOST_WAIT_LEASES, LOST_DOWN, LOST_DONE };

struct lost_node {
	enum lost_phase phase;
	int64_t id;
	char in[4096]; /* "(u1,u2,...)": the units it held when it was killed */
	size_t held, reissued;
};

/* Kills client 0 if the store shows it holding leases and notes which; back to waiting (and
 * restarted) if it reported them all in between. */
static void lost_node_kill(struct lost_node *l, pid_t *pid)
{
	char sql[160];
	int64_t held[400];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM replicas WHERE node_id = %lld AND state = 1",
		 (long long)l->id);
	if (!*pid || th_db_int(&srv, sql) == 0)
		return;
	kill(*pid, SIGKILL);
	th_proc_stop(*pid, 5);
	*pid = 0;
	/* A report it sent just before may still be in the server's group commit: read what it
	 * holds once that has landed, or a unit it did report would count as lost. */
	th_sleep(0.5);
	snprintf(sql, sizeof(sql), "SELECT unit_id FROM replicas WHERE node_id = %lld AND state = 1"
		 " ORDER BY unit_id", (long long)l->id);
	size_t n = th_db_ints(&srv, sql, held, TS_ARRAY_LEN(held)), len = 0;
	if (n > TS_ARRAY_LEN(held))
		n = TS_ARRAY_LEN(held);
	for (l->held = 0; l->held < n && len + 24 < sizeof(l->in); l->held++)
		len += (size_t)snprintf(l->in + len, sizeof(l->in) - len, "%s%lld", l->held ? "," : "(",
					(long long)held[l->held]);
	snprintf(l->in + len, sizeof(l->in) - len, ")");
	l->phase = l->held ? LOST_DOWN : LOST_WAIT_LEASES;
}

/* Whether every unit client 0 held went to another node, those it reported (in flight when it
 * was killed) aside. Some must have. */
static int lost_node_reissued(struct lost_node *l)
{
	char sql[4600];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM replicas r WHERE r.node_id = %lld AND r.unit_id IN %s"
		 " AND r.state != 2 AND NOT EXISTS (SELECT 1 FROM replicas o WHERE o.unit_id = r.unit_id"
		 " AND o.node_id != r.node_id)", (long long)l->id, l->in);
	if (th_db_int(&srv, sql) > 0)
		return 0;
	snprintf(sql, sizeof(sql), "SELECT count(DISTINCT unit_id) FROM replicas WHERE node_id != %lld"
		 " AND unit_id IN %s", (long long)l->id, l->in);
	l->reissued = (size_t)th_db_int(&srv, sql);
	return 1;
}

Test(chaos, kills_of_clients_and_server_keep_the_answer_exact, .init = setup, .fini = teardown, .timeout = 400)
{
	const uint64_t samples = 8000000000ULL, seed = 11;
	const int units = 400;
	char state[CLIENTS][400], body[256], jstate[32] = "";
	pid_t pids[CLIENTS];
	double restart_at[CLIENTS] = {0};
	kern_partial expect;
	kern_args args = {.seed = seed, .space = samples};
	cr_assert_eq(kern_run(kern_find("montecarlo_pi"), &args, 0, samples, 0, &expect, NULL), TS_OK);

	enroll_clients(CLIENTS, state);
	struct lost_node lost = {.phase = LOST_WAIT_LEASES,
				 .id = th_db_int(&srv, "SELECT id FROM nodes WHERE name = 'client-0'")};
	for (int i = 0; i < CLIENTS; i++)
		pids[i] = start_client(i, state[i]);
	snprintf(body, sizeof(body), "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":%llu,\"seed\":%llu},"
		 "\"units\":%d,\"deadline_s\":20}", (unsigned long long)samples, (unsigned long long)seed, units);
	int64_t job = th_submit(&srv, body);

	unsigned rng = CHAOS_SEED;
	int client_kills = 0, server_kills = 0, outages = 0;
	const double server_kill_at[2] = {0.3, 0.6};
	double end = ts_mono() + 300;
	while (ts_mono() < end) {
		double p = job_progress(job, jstate, sizeof(jstate));
		if (strcmp(jstate, "done") == 0 || strcmp(jstate, "failed") == 0)
			break;
		if (server_kills < 2 && p >= server_kill_at[server_kills]) {
			th_server_kill(&srv, SIGKILL);
			server_kills++;
			sleep_s(0.2 + (rand_r(&rng) % 600) / 1000.0);
			th_server_restart(&srv);
			continue;
		}
		/* Client 0 is lost for sure once: killed while it holds leases, and kept down until
		 * they went to other nodes (past the node timeout and a sweep). The job cannot end
		 * before that: those units are not done until another node does them. */
		if (lost.phase == LOST_WAIT_LEASES) {
			lost_node_kill(&lost, &pids[0]);
			outages += lost.phase == LOST_DOWN;
		} else if (lost.phase == LOST_DOWN && lost_node_reissued(&lost)) {
			lost.phase = LOST_DONE;
			restart_at[0] = ts_mono();
		}
		for (int i = 0; i < CLIENTS; i++) {
			if (!pids[i] && ts_mono() >= restart_at[i] && (i || lost.phase != LOST_DOWN))
				pids[i] = start_client(i, state[i]);
		}
		/* Kill a random client mid-unit; it comes back with the same state dir, mostly at
		 * once, sometimes only after the node timeout so its leases may go to other nodes. */
		sleep_s(0.1 + (rand_r(&rng) % 500) / 1000.0);
		int victim = rand_r(&rng) % CLIENTS;
		if (!pids[victim] || (victim == 0 && lost.phase == LOST_WAIT_LEASES))
			continue; /* client 0 is left to get leases for its own outage */
		kill(pids[victim], SIGKILL);
		th_proc_stop(pids[victim], 5);
		pids[victim] = 0;
		client_kills++;
		/* Every fourth victim stays down past the node timeout (3 s) and a sweep (2 s). */
		int long_outage = client_kills % 4 == 1;
		outages += long_outage;
		restart_at[victim] = ts_mono() + (long_outage ? 7.0 : (rand_r(&rng) % 300) / 1000.0);
	}
	for (int i = 0; i < CLIENTS; i++)
		if (pids[i])
			th_proc_stop(pids[i], 10);
	/* The lost node's units are the job's last: another node may lease and finish them within
	 * one pass of the loop, which then ends on "done" before it looks. Look once more. */
	if (lost.phase == LOST_DOWN && lost_node_reissued(&lost))
		lost.phase = LOST_DONE;

	json_t *j = th_wait_job(&srv, job, 5);
	cr_assert(j, "the job did not finish in time (%s)", jstate);
	cr_expect_str_eq(json_string_value(json_object_get(j, "state")), "done");
	uint64_t hits = (uint64_t)json_integer_value(json_object_get(json_object_get(j, "result"), "hits"));
	cr_expect_eq(hits, expect.v[0], "hits %llu, want %llu", (unsigned long long)hits,
		     (unsigned long long)expect.v[0]);
	json_decref(j);
	/* Nothing lost, nothing counted twice. */
	cr_expect_eq(th_db_int(&srv, "SELECT units_done FROM jobs"), units);
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM units WHERE state = 2"), units);
	cr_expect_eq(th_db_int(&srv, "SELECT sum(counted) FROM replicas"), units);
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM (SELECT unit_id FROM replicas WHERE counted = 1"
				     " GROUP BY unit_id HAVING count(*) > 1)"), 0);
	int64_t replicas = th_db_int(&srv, "SELECT count(*) FROM replicas");
	int64_t resent = th_db_int(&srv, "SELECT sum(leases - 1) FROM replicas");
	cr_expect_geq(server_kills, 2, "the server was killed only %d times", server_kills);
	cr_expect_gt(client_kills, 0);
	cr_expect_gt(outages, 0, "no client stayed down past the node timeout");
	cr_expect_eq(lost.phase, LOST_DONE, "client 0 was never lost holding leases (%zu held)", lost.held);
	cr_expect_gt(lost.reissued, 0, "none of the %zu units of the lost node went to another node",
		     lost.held);
	cr_expect_gt(replicas, units, "no unit of a lost node went to another node");
	fprintf(stderr, "chaos: %d client kills (%d past the node timeout), %d server kills survived; the lost node's "
		"%zu units of %zu went to others; %lld replicas for %d units "
		"(%lld reissued to another node, %lld handed back to a restarted node); hits %llu == "
		"expected %llu\n", client_kills, outages, server_kills, lost.reissued, lost.held,
		(long long)replicas, units,
		(long long)(replicas - units), (long long)resent, (unsigned long long)hits,
		(unsigned long long)expect.v[0]);
}

Test(chaos, liar_among_honest_clients, .init = setup, .fini = teardown, .timeout = 300)
{
	const uint64_t samples = 400000000ULL, seed = 4;
	char state[2][400], liar[160], body[256], jstate[32];
	pid_t pids[2];
	kern_partial expect;
	kern_args args = {.seed = seed, .space = samples};
	const kern *k = kern_find("montecarlo_pi");
	cr_assert_eq(kern_run(k, &args, 0, samples, 0, &expect, NULL), TS_OK);
	enroll_clients(2, state);
	int64_t liar_id = th_enroll_node(&srv, "liar", liar, sizeof(liar));
	snprintf(body, sizeof(body), "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":%llu,\"seed\":%llu},"
		 "\"units\":80,\"replication\":2,\"quorum\":2}", (unsigned long long)samples, (unsigned long long)seed);
	int64_t job = th_submit(&srv, body);
	for (int i = 0; i < 2; i++)
		pids[i] = start_client(i, state[i]);
	/* The liar computes for real and lies about every third unit it gets. */
	int lies = 0, n = 0;
	double end = ts_mono() + 240;
	while (ts_mono() < end) {
		job_progress(job, jstate, sizeof(jstate));
		if (strcmp(jstate, "running") != 0 && strcmp(jstate, "queued") != 0)
			break;
		json_t *reply = th_fetch(&srv, liar, 1);
		json_t *u = json_array_get(json_object_get(reply, "units"), 0);
		if (!u) {
			json_decref(reply);
			sleep_s(0.05);
			continue;
		}
		int64_t id = json_integer_value(json_object_get(u, "id"));
		uint64_t start = (uint64_t)json_integer_value(json_object_get(u, "start"));
		uint64_t count = (uint64_t)json_integer_value(json_object_get(u, "count"));
		json_decref(reply);
		uint64_t hits = kern_pi_hits_scalar(seed, start, count);
		if (n++ % 3 == 0) {
			hits += 1;
			lies++;
		}
		json_decref(th_report(&srv, liar, id, hits));
	}
	for (int i = 0; i < 2; i++)
		th_proc_stop(pids[i], 10);
	json_t *j = th_wait_job(&srv, job, 5);
	cr_assert(j);
	cr_expect_str_eq(json_string_value(json_object_get(j, "state")), "done");
	cr_expect_eq((uint64_t)json_integer_value(json_object_get(json_object_get(j, "result"), "hits")), expect.v[0]);
	json_decref(j);
	cr_expect_gt(lies, 0, "the liar never got a unit");
	char sql[128];
	snprintf(sql, sizeof(sql), "SELECT n_invalid FROM nodes WHERE id = %lld", (long long)liar_id);
	int64_t invalid = th_db_int(&srv, sql);
	cr_expect_eq(invalid, lies, "liar: %lld invalid results for %d lies", (long long)invalid, lies);
	cr_expect_eq(th_db_int(&srv, "SELECT sum(n_invalid) FROM nodes WHERE name LIKE 'client-%'"), 0);
	/* Its reliability is below every honest node's. */
	json_t *nodes = NULL;
	cr_assert_eq(th_http(&srv, "GET", "/api/v1/nodes", srv.admin_token, NULL, 0, 0, &nodes), 200);
	double liar_rel = 1, honest_min = 1;
	size_t i;
	json_t *node;
	json_array_foreach(json_object_get(nodes, "nodes"), i, node) {
		double rel = json_real_value(json_object_get(node, "reliability"));
		if (json_integer_value(json_object_get(node, "id")) == liar_id)
			liar_rel = rel;
		else if (rel < honest_min)
			honest_min = rel;
	}
	json_decref(nodes);
	cr_expect_lt(liar_rel, honest_min, "liar %.3f vs honest %.3f", liar_rel, honest_min);
	fprintf(stderr, "liar: %d units, %d lies, all caught; reliability %.3f vs honest >= %.3f\n", n, lies,
		liar_rel, honest_min);
}
