/* The client's parts: backoff, range splits, CPU share, state files and the rates cache as
 * pure functions; then the heartbeat against a real server, with and without it. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cl_bench.h"
#include "cl_node.h"
#include "cl_state.h"
#include "kern.h"
#include "th_harness.h"
#include "ts_util.h"

Test(backoff, doubles_from_half_a_second_to_thirty_with_jitter)
{
	cl_node_backoff lo = {0}, hi = {0};
	double base = 0.5;
	for (int i = 0; i < 20; i++) {
		double a = cl_node_backoff_next(&lo, 0.0), b = cl_node_backoff_next(&hi, 0.999999);
		cr_expect_float_eq(a, base * 0.75, 1e-9, "try %d: %g", i, a);
		cr_expect(b < base * 1.25 && b > base * 1.2499, "try %d: %g", i, b);
		base = base * 2 > 30 ? 30 : base * 2;
	}
	cr_expect_float_eq(base, 30, 1e-12);
	cl_node_backoff_reset(&lo);
	double again = cl_node_backoff_next(&lo, 0.5); /* the macro evaluates its argument twice */
	cr_expect_float_eq(again, 0.5, 1e-12, "reset starts over");
}

/* Slices of [start, start+count) for n parts cover it exactly once, in order, sizes within 1. */
static void check_split(uint64_t start, uint64_t count, int n)
{
	uint64_t at = start, min = UINT64_MAX, max = 0;
	for (int i = 0; i < n; i++) {
		uint64_t s, c;
		cl_node_split(start, count, n, i, &s, &c);
		cr_assert_eq(s, at, "start=%llu count=%llu n=%d: slice %d starts at %llu, not %llu",
			     (unsigned long long)start, (unsigned long long)count, n, i,
			     (unsigned long long)s, (unsigned long long)at);
		cr_assert_eq(c, count / (uint64_t)n + ((uint64_t)i < count % (uint64_t)n),
			     "slice %d of %d has %llu", i, n, (unsigned long long)c);
		at += c;
		min = c < min ? c : min;
		max = c > max ? c : max;
	}
	cr_assert_eq(at - start, count, "n=%d covers %llu of %llu", n, (unsigned long long)(at - start),
		     (unsigned long long)count);
	cr_assert_leq(max - min, 1);
}

Test(split, covers_every_index_exactly_once)
{
	const uint64_t starts[] = {0, 1, 1000003, UINT64_MAX - 1000000};
	const uint64_t counts[] = {0, 1, 2, 5, 7, 100, 999983, 1000000};
	const int parts[] = {1, 2, 3, 4, 7, 16, 64, 1000};
	for (size_t a = 0; a < TS_ARRAY_LEN(starts); a++)
		for (size_t b = 0; b < TS_ARRAY_LEN(counts); b++)
			for (size_t c = 0; c < TS_ARRAY_LEN(parts); c++)
				check_split(starts[a], counts[b], parts[c]);
}

/* What cl_mpi does, in one process: each "rank" computes its slice on 2 threads, and the
 * partials fold with the kernel's combine in rank order. It must equal the whole range. */
Test(split, sliced_and_combined_equals_one_run_for_every_kernel)
{
	static const char *const params[] = {"{\"samples\": 1000000, \"seed\": 42}",
					      "{\"from\": 1, \"to\": 1000000}",
					      "{\"from\": 0, \"to\": 1000000}"};
	int kernels = 0, table = 0;
	for (const kern *const *row = kern_table(); *row; row++) {
		const kern *k = *row;
		if (!k->compute)
			continue; /* a program: run by the sandbox (test_sandbox, test_programs) */
		table++;
		kern_args args;
		char why[256];
		size_t p;
		for (p = 0; p < TS_ARRAY_LEN(params); p++) {
			json_t *j = json_loads(params[p], 0, NULL);
			ts_err e = k->parse(j, &args, why, sizeof(why));
			json_decref(j);
			if (e == TS_OK)
				break;
		}
		if (p == TS_ARRAY_LEN(params))
			continue;
		kernels++;
		kern_partial whole;
		uint64_t count = args.space < 1000000 ? args.space : 1000000;
		cr_assert_eq(kern_run(k, &args, 0, count, 1, &whole, NULL), TS_OK);
		for (int n = 1; n <= 7; n += 2) {
			kern_partial acc = k->zero();
			for (int r = 0; r < n; r++) {
				uint64_t s, c;
				kern_partial part = k->zero();
				cl_node_split(0, count, n, r, &s, &c);
				if (c)
					cr_assert_eq(kern_run(k, &args, s, c, 2, &part, NULL), TS_OK);
				k->combine(&acc, &part);
			}
			cr_expect(acc.v[0] == whole.v[0] && acc.v[1] == whole.v[1],
				  "%s over %d ranks: {%llu,%llu} != {%llu,%llu}", k->name, n,
				  (unsigned long long)acc.v[0], (unsigned long long)acc.v[1],
				  (unsigned long long)whole.v[0], (unsigned long long)whole.v[1]);
		}
		if (strcmp(k->name, "montecarlo_pi") == 0)
			cr_expect_eq(whole.v[0], 785192, "DESIGN.md: seed 42, 10^6 samples");
	}
	cr_expect_eq(kernels, table, "%d of %d kernels tested: give the others params above",
		     kernels, table);
}

Test(cpu_share, percent_of_online_cpus_at_least_one)
{
	cr_expect_eq(cl_node_share_threads(8, 100), 8);
	cr_expect_eq(cl_node_share_threads(8, 50), 4);
	cr_expect_eq(cl_node_share_threads(4, 75), 3);
	cr_expect_eq(cl_node_share_threads(3, 50), 1);
	cr_expect_eq(cl_node_share_threads(2, 50), 1);
	cr_expect_eq(cl_node_share_threads(2, 1), 1);
	cr_expect_eq(cl_node_share_threads(1, 100), 1);
	cr_expect_eq(cl_node_share_threads(64, 10), 6);
}

static char tmp[64];

static void tmp_make(void)
{
	snprintf(tmp, sizeof(tmp), "/tmp/tessera-client-XXXXXX");
	cr_assert(mkdtemp(tmp));
}

static void tmp_remove(void)
{
	const char *files[] = {"node.json", "pending.json", "rates.json"};
	char path[128];
	for (size_t i = 0; i < TS_ARRAY_LEN(files); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmp, files[i]);
		unlink(path);
	}
	rmdir(tmp);
}

Test(state, node_pending_and_rates_round_trip, .init = tmp_make, .fini = tmp_remove)
{
	char why[512], path[128];
	cl_state_node node = {.node_id = 42}, back;
	struct stat st;
	snprintf(node.url, sizeof(node.url), "https://127.0.0.1:8443");
	snprintf(node.pin, sizeof(node.pin), "sha256//%s", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
	snprintf(node.node_token, sizeof(node.node_token), "tsn.secret");
	snprintf(node.name, sizeof(node.name), "pi-1");
	cr_assert_eq(cl_state_node_load(tmp, &back, why, sizeof(why)), TS_ERR_NOT_FOUND);
	cr_assert_eq(cl_state_node_save(tmp, &node, why, sizeof(why)), TS_OK, "%s", why);
	cr_assert_eq(cl_state_node_load(tmp, &back, why, sizeof(why)), TS_OK, "%s", why);
	cr_expect_eq(memcmp(&node, &back, sizeof(node)), 0, "node.json changed in the round trip");
	snprintf(path, sizeof(path), "%s/node.json", tmp);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0600, "node.json holds a token: mode %o", st.st_mode & 0777);

	json_t *items = NULL, *pending = json_pack("[{s:{s:i,s:{s:i},s:f},s:i,s:i,s:i}]", "report",
						   "unit_id", 17, "result", "hits", 785, "wall_s",
						   0.25, "job_id", 3, "start", 0, "count", 1000);
	cr_assert_eq(cl_state_pending_load(tmp, &items, why, sizeof(why)), TS_OK);
	cr_expect_eq(json_array_size(items), 0, "no file: no pending results");
	json_decref(items);
	cr_assert_eq(cl_state_pending_save(tmp, pending, why, sizeof(why)), TS_OK, "%s", why);
	cr_assert_eq(cl_state_pending_load(tmp, &items, why, sizeof(why)), TS_OK, "%s", why);
	cr_expect(json_equal(items, pending), "pending.json changed in the round trip");
	json_decref(items);
	cr_assert_eq(cl_state_pending_clear(tmp, why, sizeof(why)), TS_OK);
	cr_assert_eq(cl_state_pending_load(tmp, &items, why, sizeof(why)), TS_OK);
	cr_expect_eq(json_array_size(items), 0);
	json_decref(items);
	json_decref(pending);

	/* rates.json: kept for the same threads and ranks, for an hour. */
	json_t *rates = json_pack("{s:f}", "montecarlo_pi", 1.5e9), *record = NULL;
	json_t *saved = cl_bench_cache_record(rates, 4, 1, 1000000);
	cr_assert(saved);
	cr_assert_eq(cl_state_rates_save(tmp, saved, why, sizeof(why)), TS_OK, "%s", why);
	cr_assert_eq(cl_state_rates_load(tmp, &record, why, sizeof(why)), TS_OK, "%s", why);
	cr_expect(json_equal(record, saved));
	const json_t *fresh = cl_bench_cache_fresh(record, 4, 1, 1000000 + 60);
	cr_expect(fresh && json_equal(fresh, rates), "saved rates not reused a minute later");
	cr_expect_null(cl_bench_cache_fresh(record, 2, 1, 1000000 + 60), "other --threads reused");
	cr_expect_null(cl_bench_cache_fresh(record, 4, 3, 1000000 + 60), "other MPI size reused");
	cr_expect_null(cl_bench_cache_fresh(record, 4, 1, 1000000 + CL_BENCH_CACHE_S), "stale reused");
	cr_expect_null(cl_bench_cache_fresh(record, 4, 1, 1000000 - 10), "future record reused");
	json_object_set_new(record, "kernels", json_string("montecarlo_pi,other"));
	cr_expect_null(cl_bench_cache_fresh(record, 4, 1, 1000000 + 60), "another kernel table");
	json_decref(record);
	json_decref(saved);
	json_decref(rates);
}

/* The heartbeat, against a real server that calls a node lost after 2 silent seconds. */
static th_server srv;

static void srv_start(void)
{
	th_server_start_timeout(&srv, 2);
}

static void srv_stop(void)
{
	th_server_stop(&srv);
}

static int log_has(const char *path, const char *needle)
{
	char *text = NULL;
	int found = ts_read_file(path, 1 << 20, &text, NULL) == TS_OK && strstr(text, needle);
	free(text);
	return found;
}

/* Runs one client on a one-unit job of the given size, held for samples / max_rate seconds
 * (--max-rate), until the job is done; returns how many leases the unit's replica had, whether
 * the server released a lease of a lost node, and the seconds the server saw the lease held. */
static void run_long_unit(const char *name, const char *heartbeat, double samples,
			  const char *max_rate, int64_t *leases, int *released, int64_t *held_s)
{
	char token[160], state[400], log[400], out[4096], body[256], srvlog[400];
	snprintf(state, sizeof(state), "%s/%s", srv.dir, name);
	snprintf(log, sizeof(log), "%s/%s.log", srv.dir, name);
	snprintf(srvlog, sizeof(srvlog), "%s/server.log", srv.dir);
	th_enroll_token(&srv, 1, token, sizeof(token));
	char *enroll[] = {(char *)th_bin("tessera-client"), "enroll", srv.url, token, "--state", state,
			  "--name", (char *)name, "--no-bench", NULL};
	cr_assert_eq(th_run(enroll, NULL, 60, out, sizeof(out)), 0, "enroll: %s", out);
	snprintf(body, sizeof(body), "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":%.0f,"
		 "\"seed\":5},\"units\":1}", samples);
	int64_t job = th_submit(&srv, body);
	char *run[] = {(char *)th_bin("tessera-client"), "run", "--state", state, "--threads", "1",
		       "--no-bench", "--heartbeat", (char *)heartbeat, "--max-rate", (char *)max_rate,
		       NULL};
	pid_t pid = th_spawn(run, NULL, log);
	json_t *j = th_wait_job(&srv, job, 90);
	cr_assert(j, "the job did not finish");
	cr_expect_str_eq(json_string_value(json_object_get(j, "state")), "done");
	json_decref(j);
	cr_expect_eq(th_proc_stop(pid, 10), 0, "client did not stop cleanly on SIGTERM");
	char sql[200];
	snprintf(sql, sizeof(sql), "SELECT max(leases) FROM replicas r JOIN units u ON u.id = r.unit_id"
		 " WHERE u.job_id = %lld", (long long)job);
	*leases = th_db_int(&srv, sql);
	snprintf(sql, sizeof(sql), "SELECT max(reported_at - issued_at) FROM replicas r JOIN units u"
		 " ON u.id = r.unit_id WHERE u.job_id = %lld", (long long)job);
	*held_s = th_db_int(&srv, sql);
	*released = log_has(srvlog, "leases of lost nodes");
}

/* A 4 s node timeout: a 1 s heartbeat has 3 s to spare however loaded the machine; a silent
 * node is lost within 7 s (the timeout, a second of whole-second clocks, a 2 s sweep). */
static void srv_start_beat(void)
{
	th_server_start_timeout(&srv, 4);
}

Test(heartbeat, keeps_a_unit_longer_than_the_node_timeout, .init = srv_start_beat,
     .fini = srv_stop, .timeout = 120)
{
	/* 10^6 samples at --max-rate 10^5: the client holds the unit 10 s whatever its speed, past
	 * the 7 s in which a silent node is lost. */
	int64_t leases = 0, held_s = 0;
	int released = 0;
	run_long_unit("beating", "1", 1e6, "1e5", &leases, &released, &held_s);
	cr_assert_geq(held_s, 9, "the server saw the unit held %lld s: --max-rate did not hold it",
		      (long long)held_s);
	cr_expect_eq(leases, 1, "the unit was handed out %lld times", (long long)leases);
	cr_expect_not(released, "the server took the unit away from a node that heartbeats");
	/* The control: the same unit without a heartbeat in time is taken away. */
	run_long_unit("silent", "3600", 1e6, "1e5", &leases, &released, &held_s);
	cr_assert_geq(held_s, 9, "the server saw the unit held %lld s", (long long)held_s);
	cr_expect(released, "no lease was released without heartbeats (unit held %lld s)",
		  (long long)held_s);
}

/* Runs the CLI with the admin's config dir; returns the exit status. */
static int cli(char *out, size_t cap, const char *a0, const char *a1, const char *a2,
	       const char *a3, const char *a4, const char *a5)
{
	char env_cfg[512], env_pw[128];
	snprintf(env_cfg, sizeof(env_cfg), "TESSERA_CONFIG=%s/cli", srv.dir);
	snprintf(env_pw, sizeof(env_pw), "TESSERA_PASSWORD=%s", TH_ADMIN_PASSWORD);
	char *env[] = {env_cfg, env_pw, NULL};
	char *argv[] = {(char *)th_bin("tessera"), (char *)a0, (char *)a1, (char *)a2, (char *)a3,
			(char *)a4, (char *)a5, NULL};
	return th_run(argv, env, 60, out, cap);
}

Test(cli, nodes_disable_enable_and_adaptive_submit, .init = srv_start, .fini = srv_stop,
     .timeout = 60)
{
	char out[8192], token[160], id[32];
	json_t *nodes = NULL, *job = NULL;
	cr_assert_eq(cli(out, sizeof(out), "login", srv.url, "--user", "admin", "--pin", srv.pin), 0,
		     "%s", out);
	int64_t node = th_enroll_node(&srv, "pi-7", token, sizeof(token));
	char nid[32];
	snprintf(nid, sizeof(nid), "%lld", (long long)node);
	cr_assert_eq(cli(out, sizeof(out), "nodes", NULL, NULL, NULL, NULL, NULL), 0, "%s", out);
	cr_expect(strstr(out, "STATE") && strstr(out, "RELIAB") && strstr(out, "UNITS"), "%s", out);
	cr_expect(strstr(out, "pi-7") && strstr(out, "online"), "%s", out);

	cr_assert_eq(cli(out, sizeof(out), "nodes", "disable", nid, NULL, NULL, NULL), 0, "%s", out);
	cr_assert_eq(th_http(&srv, "GET", "/api/v1/nodes", srv.admin_token, NULL, 0, 0, &nodes), 200);
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(nodes, "nodes"), 0),
							   "state")), "disabled");
	json_decref(nodes);
	cr_expect_eq(cli(out, sizeof(out), "nodes", NULL, NULL, NULL, NULL, NULL), 0);
	cr_expect(strstr(out, "disabled"), "table: %s", out);
	long status = th_http(&srv, "POST", "/api/v1/work/fetch", token, "{}", 2, 0, NULL);
	cr_expect(status == 401 || status == 403, "a disabled node fetched: HTTP %ld", status);
	cr_assert_eq(cli(out, sizeof(out), "nodes", "enable", nid, NULL, NULL, NULL), 0, "%s", out);
	cr_assert_eq(th_http(&srv, "GET", "/api/v1/nodes", srv.admin_token, NULL, 0, 0, &nodes), 200);
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(nodes, "nodes"), 0),
							   "state")), "online");
	json_decref(nodes);
	/* Bad ids and actions are usage errors, with nothing sent. */
	cr_expect_eq(cli(out, sizeof(out), "nodes", "disable", "x", NULL, NULL, NULL), 2);
	cr_expect_eq(cli(out, sizeof(out), "nodes", "reboot", nid, NULL, NULL, NULL), 2);
	cr_expect_eq(cli(out, sizeof(out), "nodes", "disable", NULL, NULL, NULL, NULL), 2);
	cr_expect_neq(cli(out, sizeof(out), "nodes", "disable", "999", NULL, NULL, NULL), 0,
		      "disabling an unknown node succeeded");

	cr_assert_eq(cli(out, sizeof(out), "submit", "pi", "--samples", "1e6", "--adaptive", NULL), 0,
		     "%s", out);
	cr_assert_eq(sscanf(out, "%31s", id), 1);
	char path[64];
	snprintf(path, sizeof(path), "/api/v1/jobs/%s", id);
	cr_assert_eq(th_http(&srv, "GET", path, srv.admin_token, NULL, 0, 0, &job), 200);
	cr_expect(json_is_true(json_object_get(job, "adaptive")), "--adaptive was not sent");
	json_decref(job);
}

/* The enrollment token need not be an argument (where ps shows it): stdin or the environment. */
Test(enroll, token_from_stdin_or_the_environment, .init = srv_start, .fini = srv_stop, .timeout = 120)
{
	char token[160], state[400], tokfile[400], cmd[1600], out[4096], env_tok[200];
	th_enroll_token(&srv, 2, token, sizeof(token));
	/* stdin: --token - reads one line. */
	snprintf(state, sizeof(state), "%s/from-stdin", srv.dir);
	snprintf(tokfile, sizeof(tokfile), "%s/token.txt", srv.dir);
	cr_assert_eq(ts_write_file(tokfile, cmd, (size_t)snprintf(cmd, sizeof(cmd), "%s\n", token), 0600), TS_OK);
	snprintf(cmd, sizeof(cmd), "exec '%s' enroll '%s' --token - --state '%s' --name from-stdin --no-bench < '%s'",
		 th_bin("tessera-client"), srv.url, state, tokfile);
	char *sh[] = {"/bin/sh", "-c", cmd, NULL};
	cr_expect_eq(th_run(sh, NULL, 60, out, sizeof(out)), 0, "enroll --token -: %s", out);
	cr_expect(strstr(out, "enrolled as node"), "%s", out);
	/* The environment, with no token argument at all. */
	snprintf(state, sizeof(state), "%s/from-env", srv.dir);
	snprintf(env_tok, sizeof(env_tok), "TESSERA_ENROLL_TOKEN=%s", token);
	char *env[] = {env_tok, NULL};
	char *argv[] = {(char *)th_bin("tessera-client"), "enroll", srv.url, "--state", state, "--name",
			"from-env", "--no-bench", NULL};
	cr_expect_eq(th_run(argv, env, 60, out, sizeof(out)), 0, "enroll with $TESSERA_ENROLL_TOKEN: %s", out);
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM nodes WHERE name IN ('from-stdin', 'from-env')"), 2);
	/* Neither: a usage error that says where a token may come from. */
	snprintf(state, sizeof(state), "%s/none", srv.dir);
	cr_expect_eq(th_run(argv, NULL, 60, out, sizeof(out)), 2, "%s", out);
	cr_expect(strstr(out, "TESSERA_ENROLL_TOKEN"), "%s", out);
}

/* Dispatch: two tests of one node's fetch -> compute -> report loop, watched in the store.
 * At --max-rate 1e5 a unit is held a second per 10^5 samples whatever the machine. */
#define REPLICA_LEASED 1 /* enum wu_replica_state */
#define REPLICA_REPORTED 2

/* Enrolls a node called name and starts it, computing on one thread with 1 s heartbeats. */
static pid_t dispatch_node(const char *name, int64_t *node_id)
{
	char state[400], log[400];
	snprintf(log, sizeof(log), "%s/%s.log", srv.dir, name);
	*node_id = th_client_enroll(&srv, name, state, sizeof(state));
	char *run[] = {(char *)th_bin("tessera-client"), "run", "--state", state, "--threads", "1",
		       "--no-bench", "--heartbeat", "1", "--max-rate", "1e5", NULL};
	return th_spawn(run, NULL, log);
}

/* The units of job that node has in one replica state, up to cap; returns how many. */
static size_t dispatch_units(int64_t job, int64_t node, int state, int64_t *out, size_t cap)
{
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT r.unit_id FROM replicas r JOIN units u ON u.id = r.unit_id"
		 " WHERE u.job_id = %lld AND r.node_id = %lld AND r.state = %d ORDER BY r.unit_id",
		 (long long)job, (long long)node, state);
	return th_db_ints(&srv, sql, out, cap);
}

static int dispatch_has(const int64_t *ids, size_t n, int64_t id)
{
	for (size_t i = 0; i < n && i < 64; i++)
		if (ids[i] == id)
			return 1;
	return 0;
}

static int64_t dispatch_job_done(int64_t job)
{
	char sql[128];
	snprintf(sql, sizeof(sql), "SELECT state = 'done' FROM jobs WHERE id = %lld", (long long)job);
	return th_db_int(&srv, sql);
}

/* Each unit is reported when it is done, not with the rest of its fetch: the store shows the
 * node's first result while a unit it held before that result is still leased to it. A node
 * that reports a batch at once shows no such moment (one report, one transaction). Units of
 * 2 s (2 * 10^5 samples), so that a slow look at the store still sees the second one leased. */
Test(dispatch, each_unit_is_reported_while_the_next_computes, .init = srv_start_beat,
     .fini = srv_stop, .timeout = 120)
{
	int64_t node = 0, held_before[64], held[64], done[64];
	size_t n_before = 0;
	int prompt = 0, saw_done = 0;
	int64_t job = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1200000,"
				      "\"seed\":7},\"units\":6}");
	pid_t pid = dispatch_node("prompt", &node);
	double until = ts_mono() + 90;
	while (!dispatch_job_done(job) && ts_mono() < until) {
		size_t n_held = dispatch_units(job, node, REPLICA_LEASED, held, 64);
		size_t n_done = dispatch_units(job, node, REPLICA_REPORTED, done, 64);
		if (n_done == 0 && n_held > 0) {
			memcpy(held_before, held, sizeof(held));
			n_before = n_held;
		} else if (n_done > 0 && !saw_done) {
			/* The first look at a reported result: is a unit held before it still leased? */
			saw_done = 1;
			for (size_t i = 0; i < n_held && i < 64; i++)
				if (dispatch_has(held_before, n_before, held[i]))
					prompt = 1;
		}
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	cr_assert(dispatch_job_done(job), "the job did not finish");
	cr_expect_eq(th_proc_stop(pid, 10), 0, "client did not stop cleanly on SIGTERM");
	cr_assert(n_before > 0 && saw_done, "never saw the node hold units, then report one");
	cr_expect(prompt, "the node's first result was reported together with every unit it held "
			  "before it (%zu): a batch, not one unit at a time", n_before);
	cr_expect_eq(dispatch_units(job, node, REPLICA_REPORTED, done, 64), 6);
	json_t *j = th_wait_job(&srv, job, 10);
	cr_assert(j);
	cr_expect_str_eq(json_string_value(json_object_get(j, "state")), "done");
	json_decref(j);
}

/* Prefetch is bounded: a node holds the unit in progress and a couple of seconds of work ahead,
 * never a batch, so two nodes share a 20-unit job. Needs a server that knows "holding" (an older
 * one gets the old batch fetches, which this test refuses). */
#define DISPATCH_HELD_MAX 4 /* in progress + 2 s of 1 s units ahead + 1 for rounding */
Test(dispatch, prefetch_holds_a_few_units_and_two_nodes_share_a_job, .init = srv_start_beat,
     .fini = srv_stop, .timeout = 120)
{
	int64_t nodes[2] = {0, 0}, ids[64];
	size_t most[2] = {0, 0};
	pid_t pids[2];
	int64_t job = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":2000000,"
				      "\"seed\":9},\"units\":20}");
	pids[0] = dispatch_node("ahead-1", &nodes[0]);
	pids[1] = dispatch_node("ahead-2", &nodes[1]);
	double until = ts_mono() + 90;
	while (!dispatch_job_done(job) && ts_mono() < until) {
		for (int i = 0; i < 2; i++) {
			size_t n = dispatch_units(job, nodes[i], REPLICA_LEASED, ids, 64);
			most[i] = n > most[i] ? n : most[i];
		}
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	cr_assert(dispatch_job_done(job), "the job did not finish");
	for (int i = 0; i < 2; i++) {
		cr_expect_eq(th_proc_stop(pids[i], 10), 0, "client %d did not stop cleanly", i + 1);
		size_t reported = dispatch_units(job, nodes[i], REPLICA_REPORTED, ids, 64);
		cr_expect_leq(most[i], DISPATCH_HELD_MAX, "node %d held %zu leases of the job at once",
			      i + 1, most[i]);
		cr_expect_geq(reported, 3, "node %d computed only %zu of 20 units", i + 1, reported);
	}
}
