/* Node health and the volunteer's controls, end to end: a real server on loopback TLS and real
 * tessera-client processes whose /proc and /sys are fake files under $TESSERA_TEST_SYSROOT.
 * A node that gets hot pauses, keeps its leases past the node timeout through its heartbeats,
 * shows "paused: hot" in /api/v1/nodes and /metrics, and finishes the job exactly once it
 * cools; heartbeats with bad health are refused whole; a node outside its hours takes no work. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "srv_health.h"
#include "th_harness.h"
#include "ts_util.h"

static th_server srv;
static char root[400];

/* A 4 s node timeout: a silent node is lost within about 7 s (see test_client.c). */
static void srv_start(void)
{
	th_server_start_timeout(&srv, 4);
	snprintf(root, sizeof(root), "%s/sysroot", srv.dir);
}

static void srv_stop(void)
{
	th_server_stop(&srv);
}

/* Writes a fake machine file under the test root, atomically (the client may read it now). */
static void put(const char *rel, const char *text)
{
	char path[600], dir[600];
	snprintf(path, sizeof(path), "%s%s", root, rel);
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0';
	cr_assert_eq(ts_mkdirs(dir, 0700), TS_OK, "%s", dir);
	cr_assert_eq(ts_write_file(path, text, strlen(text), 0600), TS_OK, "%s", path);
}

/* A Pi-like machine: 4 CPUs mostly idle, 1 GB, up an hour, no battery. */
static void fake_machine(int with_thermal)
{
	put("/proc/stat", "cpu  1000 0 1000 38000 0 0 0 0 0 0\n");
	put("/proc/loadavg", "0.52 0.40 0.33 1/123 4567\n");
	put("/proc/meminfo", "MemTotal: 1000000 kB\nMemFree: 100000 kB\nMemAvailable: 400000 kB\n");
	put("/proc/uptime", "3600.25 10000.00\n");
	if (with_thermal)
		put("/sys/class/thermal/thermal_zone0/temp", "50000\n");
}

static int log_has(const char *path, const char *needle)
{
	char *text = NULL;
	int found = ts_read_file(path, 1 << 20, &text, NULL) == TS_OK && strstr(text, needle);
	free(text);
	return found;
}

/* Enrolls a client called name and starts `run` with the fake machine and extra arguments
 * (NULL-terminated, at most 6); its output goes to DIR/name.log. */
static pid_t start_node(const char *name, const char *const *extra, int64_t *node_id)
{
	char state[400], log[400], env_root[500];
	snprintf(log, sizeof(log), "%s/%s.log", srv.dir, name);
	*node_id = th_client_enroll(&srv, name, state, sizeof(state));
	char *run[16] = {(char *)th_bin("tessera-client"), "run", "--state", state, "--threads", "1",
			 "--no-bench", "--heartbeat", "1"};
	size_t n = 9;
	for (size_t i = 0; extra[i] && i < 6; i++)
		run[n++] = (char *)extra[i];
	run[n] = NULL;
	snprintf(env_root, sizeof(env_root), "TESSERA_TEST_SYSROOT=%s", root);
	char *env[] = {env_root, NULL};
	return th_spawn(run, env, log);
}

/* The node's object in GET /api/v1/nodes (a new reference), or NULL. */
static json_t *api_node(int64_t id)
{
	json_t *reply = NULL, *found = NULL, *n;
	size_t i;
	if (th_http(&srv, "GET", "/api/v1/nodes", srv.admin_token, NULL, 0, 0, &reply) != 200)
		goto out;
	json_array_foreach(json_object_get(reply, "nodes"), i, n)
		if (json_integer_value(json_object_get(n, "id")) == id)
			found = json_incref(n);
out:
	json_decref(reply);
	return found;
}

/* The node's "paused" now: "" for null. */
static void api_paused(int64_t id, char *out, size_t cap)
{
	json_t *n = api_node(id);
	const char *p = json_string_value(json_object_get(n, "paused"));
	snprintf(out, cap, "%s", p ? p : "");
	json_decref(n);
}

/* Polls until the node's "paused" is want ("" for none), at most timeout_s; 1 when it was. */
static int wait_paused(int64_t id, const char *want, double timeout_s)
{
	char now[32] = "?";
	for (double until = ts_mono() + timeout_s; ts_mono() < until; th_sleep(0.05)) {
		api_paused(id, now, sizeof(now));
		if (strcmp(now, want) == 0)
			return 1;
	}
	return 0;
}

static int64_t count_replicas(int64_t job, int64_t node, int state)
{
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM replicas r JOIN units u ON u.id = r.unit_id"
		 " WHERE u.job_id = %lld AND r.node_id = %lld AND r.state = %d", (long long)job,
		 (long long)node, state);
	return th_db_int(&srv, sql);
}

#define LEASED 1 /* enum wu_replica_state */
#define REPORTED 2

/* Whether node leased a unit of job within 30 s. */
static int wait_leased(int64_t job, int64_t node)
{
	for (double until = ts_mono() + 30; ts_mono() < until; th_sleep(0.02))
		if (count_replicas(job, node, LEASED) > 0)
			return 1;
	return 0;
}

static char *metrics(void)
{
	char *text = NULL;
	size_t len = 0;
	long status = th_http_bytes(&srv, "GET", "/metrics", srv.admin_token, NULL, 0, &text, &len);
	cr_assert_eq(status, 200, "/metrics: HTTP %ld", status);
	return text;
}

Test(pause, hot_node_pauses_keeps_its_leases_and_finishes_exactly_when_cool, .init = srv_start,
     .fini = srv_stop, .timeout = 120)
{
	int64_t node = 0;
	char log[400], srvlog[400], want[256];
	snprintf(log, sizeof(log), "%s/hot-node.log", srv.dir);
	snprintf(srvlog, sizeof(srvlog), "%s/server.log", srv.dir);
	fake_machine(1);
	/* 2 units of 500000 samples held 5 s each by --max-rate, whatever the machine's speed: the
	 * unit in progress when the node gets hot would be reported within the pause unless the
	 * pause halts it. */
	int64_t job = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000000,"
				      "\"seed\":42},\"units\":2,\"deadline_s\":600}");
	const char *args[] = {"--max-rate", "1e5", "--max-temp", "70", NULL};
	pid_t pid = start_node("hot-node", args, &node);
	cr_assert(wait_leased(job, node), "the node never leased a unit");
	cr_expect(wait_paused(node, "", 5), "a cool node shows as paused");

	put("/sys/class/thermal/thermal_zone0/temp", "85000\n");
	double hot_at = ts_mono();
	cr_assert(wait_paused(node, "hot", 5), "the node did not show paused: hot within 5 s");
	cr_expect(log_has(log, "paused: hot (CPU 85.0 C > 70 C"), "the log does not say why it paused");
	/* Nothing is computed while paused: the unit it was computing (5 s) is not finished 8 s
	 * later. Past the node timeout (4 s, and the 2 s sweep) its units stay its own. */
	cr_expect_eq(count_replicas(job, node, REPORTED), 0, "a unit was done before the pause");
	th_sleep(8.0 - (ts_mono() - hot_at));
	cr_expect_eq(count_replicas(job, node, REPORTED), 0, "a paused node went on computing");
	cr_expect_gt(count_replicas(job, node, LEASED), 0, "the paused node's leases were lost");
	cr_expect_not(log_has(srvlog, "leases of lost nodes"), "the server took a paused node's units");
	json_t *n = api_node(node);
	cr_assert(n);
	cr_expect_str_eq(json_string_value(json_object_get(n, "state")), "online");
	cr_expect_str_eq(json_string_value(json_object_get(n, "paused")), "hot");
	json_t *h = json_object_get(n, "health");
	cr_expect_float_eq(json_number_value(json_object_get(h, "temp_c")), 85.0, 1e-9);
	cr_expect_float_eq(json_number_value(json_object_get(h, "load1")), 0.52, 1e-9);
	cr_expect_eq(json_integer_value(json_object_get(h, "mem_total_bytes")), 1000000LL * 1024);
	cr_expect_eq(json_integer_value(json_object_get(h, "mem_available_bytes")), 400000LL * 1024);
	cr_expect_eq(json_integer_value(json_object_get(h, "uptime_s")), 3600);
	json_decref(n);
	char *m = metrics();
	static const char *const gauges[] = {
		"tessera_node_temp_celsius{node=\"hot-node\",node_id=\"%lld\"} 85\n",
		"tessera_node_load1{node=\"hot-node\",node_id=\"%lld\"} 0.52\n",
		"tessera_node_mem_available_bytes{node=\"hot-node\",node_id=\"%lld\"} 409600000\n",
		"tessera_node_mem_total_bytes{node=\"hot-node\",node_id=\"%lld\"} 1024000000\n",
		"tessera_node_uptime_seconds{node=\"hot-node\",node_id=\"%lld\"} 3600\n",
		"tessera_node_paused{node=\"hot-node\",node_id=\"%lld\",reason=\"hot\"} 1\n",
		"tessera_node_paused{node=\"hot-node\",node_id=\"%lld\",reason=\"busy\"} 0\n",
	};
	for (size_t i = 0; i < TS_ARRAY_LEN(gauges); i++) {
		snprintf(want, sizeof(want), gauges[i], (long long)node);
		cr_expect(strstr(m, want), "/metrics lacks %s", want);
	}
	free(m);

	/* 68 C is below the limit but within its 5 degrees: still paused. 60 C resumes. */
	put("/sys/class/thermal/thermal_zone0/temp", "68000\n");
	th_sleep(2.0);
	cr_expect(wait_paused(node, "hot", 0.5), "resumed within the hysteresis margin");
	put("/sys/class/thermal/thermal_zone0/temp", "60000\n");
	cr_expect(wait_paused(node, "", 5), "the node did not resume when cool");
	json_t *j = th_wait_job(&srv, job, 60);
	cr_assert(j);
	cr_expect_str_eq(json_string_value(json_object_get(j, "state")), "done");
	cr_expect_eq(json_integer_value(json_object_get(json_object_get(j, "result"), "hits")), 785192,
		     "DESIGN.md: seed 42, 10^6 samples");
	json_decref(j);
	cr_expect(log_has(log, "resumed"), "the log does not say it resumed");
	cr_expect_eq(th_proc_stop(pid, 10), 0, "the client did not stop cleanly");
	cr_expect_eq(count_replicas(job, node, REPORTED), 2, "the node did not compute both units");
}

/* A fake /proc/stat that moves like a 4-CPU machine at 100 ticks/s whose other processes use
 * stat_busy_pct of it, rewritten every 100 ms until stat_quit. */
static volatile int stat_busy_pct, stat_quit;

static void *stat_writer(void *arg)
{
	(void)arg;
	double t0 = ts_mono(), busy = 0, last = t0;
	while (!stat_quit) {
		double now = ts_mono();
		busy += (now - last) * 400 * stat_busy_pct / 100.0;
		last = now;
		uint64_t total = 40000 + (uint64_t)((now - t0) * 400), b = 2000 + (uint64_t)busy;
		char text[128];
		snprintf(text, sizeof(text), "cpu  %llu 0 0 %llu 0 0 0 0 0 0\n", (unsigned long long)b,
			 (unsigned long long)(total - b));
		put("/proc/stat", text);
		th_sleep(0.1);
	}
	return NULL;
}

Test(pause, busy_machine_pauses_the_node_until_the_others_are_done, .init = srv_start,
     .fini = srv_stop, .timeout = 120)
{
	int64_t node = 0;
	char log[400];
	pthread_t writer;
	snprintf(log, sizeof(log), "%s/busy-node.log", srv.dir);
	fake_machine(0);
	stat_busy_pct = 5;
	cr_assert_eq(pthread_create(&writer, NULL, stat_writer, NULL), 0);
	int64_t job = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000000,"
				      "\"seed\":42},\"units\":2,\"deadline_s\":600}");
	const char *args[] = {"--max-rate", "1e5", "--pause-when-busy", "50", NULL};
	pid_t pid = start_node("busy-node", args, &node);
	cr_assert(wait_leased(job, node), "the node never leased a unit");
	cr_expect(wait_paused(node, "", 1), "a quiet machine paused the node");
	/* Others take 95% of the machine: far above 50% even after the node's own time. */
	stat_busy_pct = 95;
	cr_expect(wait_paused(node, "busy", 6), "the node did not show paused: busy");
	cr_expect(log_has(log, "paused: busy (other processes "), "the log does not say why it paused");
	cr_expect_eq(count_replicas(job, node, REPORTED), 0, "a unit was done before the pause");
	th_sleep(2.0);
	cr_expect_eq(count_replicas(job, node, REPORTED), 0, "a paused node went on computing");
	stat_busy_pct = 5;
	cr_expect(wait_paused(node, "", 6), "the node did not resume when the machine was quiet");
	json_t *j = th_wait_job(&srv, job, 60);
	stat_quit = 1;
	pthread_join(writer, NULL);
	cr_assert(j);
	cr_expect_eq(json_integer_value(json_object_get(json_object_get(j, "result"), "hits")), 785192);
	json_decref(j);
	cr_expect_eq(th_proc_stop(pid, 10), 0, "the client did not stop cleanly");
}

/* Outside its hours a node takes no work at all, and says so; a --max-temp it cannot apply
 * (no thermal zone) is said once and changes nothing. */
Test(pause, outside_its_hours_a_node_takes_no_work, .init = srv_start, .fini = srv_stop,
     .timeout = 60)
{
	int64_t node = 0;
	char log[400], window[32];
	snprintf(log, sizeof(log), "%s/night-node.log", srv.dir);
	fake_machine(0);
	time_t t = time(NULL);
	struct tm tm;
	localtime_r(&t, &tm);
	int now = tm.tm_hour * 60 + tm.tm_min, from = (now + 120) % 1440, to = (now + 180) % 1440;
	snprintf(window, sizeof(window), "%02d:%02d-%02d:%02d", from / 60, from % 60, to / 60, to % 60);
	int64_t job = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":100000,"
				      "\"seed\":3},\"units\":2}");
	const char *args[] = {"--hours", window, "--max-temp", "70", NULL};
	pid_t pid = start_node("night-node", args, &node);
	cr_assert(wait_paused(node, "hours", 10), "the node did not show paused: hours (%s)", window);
	th_sleep(1.0);
	cr_expect_eq(count_replicas(job, node, LEASED) + count_replicas(job, node, REPORTED), 0,
		     "a node outside its hours took units");
	cr_expect(log_has(log, "paused: hours ("), "the log does not say why it paused");
	cr_expect(log_has(log, "no thermal zone in /sys/class/thermal: --max-temp is off"),
		  "the log does not say --max-temp is off");
	json_t *n = api_node(node);
	cr_expect(json_is_null(json_object_get(json_object_get(n, "health"), "temp_c")),
		  "a machine without a thermal zone reported a temperature");
	json_decref(n);
	cr_expect_eq(th_proc_stop(pid, 10), 0, "the client did not stop cleanly");
}

/* Runs the admin's CLI (logged in by the first call); returns its exit status. */
static int cli(char *out, size_t cap, const char *a0, const char *a1, const char *a2, const char *a3,
	       const char *a4, const char *a5)
{
	char env_cfg[512], env_pw[128];
	snprintf(env_cfg, sizeof(env_cfg), "TESSERA_CONFIG=%s/cli", srv.dir);
	snprintf(env_pw, sizeof(env_pw), "TESSERA_PASSWORD=%s", TH_ADMIN_PASSWORD);
	char *env[] = {env_cfg, env_pw, NULL};
	char *argv[] = {(char *)th_bin("tessera"), (char *)a0, (char *)a1, (char *)a2, (char *)a3,
			(char *)a4, (char *)a5, NULL};
	return th_run(argv, env, 60, out, cap);
}

/* A laptop unplugged pauses (unless --run-on-battery) and resumes when plugged in again; the
 * CLI's node list shows it. */
Test(pause, on_battery_unless_told_to_run_on_it, .init = srv_start, .fini = srv_stop, .timeout = 60)
{
	int64_t laptop = 0, anyway = 0;
	char out[8192];
	fake_machine(0);
	put("/sys/class/power_supply/AC/type", "Mains\n");
	put("/sys/class/power_supply/AC/online", "1\n");
	put("/sys/class/power_supply/BAT0/type", "Battery\n");
	put("/sys/class/power_supply/BAT0/status", "Charging\n");
	const char *plain[] = {NULL}, *override[] = {"--run-on-battery", NULL};
	pid_t a = start_node("laptop", plain, &laptop);
	pid_t b = start_node("anyway", override, &anyway);
	cr_assert(wait_paused(laptop, "", 10) && wait_paused(anyway, "", 10));
	put("/sys/class/power_supply/AC/online", "0\n");
	put("/sys/class/power_supply/BAT0/status", "Discharging\n");
	cr_expect(wait_paused(laptop, "battery", 6), "an unplugged laptop did not pause");
	cr_expect(wait_paused(anyway, "", 0.1), "--run-on-battery paused");
	cr_assert_eq(cli(out, sizeof(out), "login", srv.url, "--user", "admin", "--pin", srv.pin), 0, "%s", out);
	cr_assert_eq(cli(out, sizeof(out), "nodes", NULL, NULL, NULL, NULL, NULL), 0, "%s", out);
	cr_expect(strstr(out, "paused:battery"), "tessera nodes: %s", out);
	put("/sys/class/power_supply/AC/online", "1\n");
	put("/sys/class/power_supply/BAT0/status", "Charging\n");
	cr_expect(wait_paused(laptop, "", 6), "a laptop plugged in again did not resume");
	cr_expect_eq(th_proc_stop(a, 10), 0);
	cr_expect_eq(th_proc_stop(b, 10), 0);
}

static long beat(const char *token, const char *body, json_t **reply)
{
	return th_http(&srv, "POST", "/api/v1/nodes/heartbeat", token, body, body ? strlen(body) : 0, 0,
		       reply);
}

/* A heartbeat with bad health is refused whole (rates in it are not kept either); one without
 * health, from an older client, changes nothing of the health kept. */
Test(health, bad_heartbeat_fields_are_refused_and_change_nothing, .init = srv_start,
     .fini = srv_stop, .timeout = 60)
{
	char token[160];
	json_t *reply = NULL;
	int64_t node = th_enroll_node(&srv, "beater", token, sizeof(token));
	cr_assert_eq(beat(token, "{\"health\":{\"load1\":1.5,\"mem_total_bytes\":1000,"
				 "\"mem_available_bytes\":500,\"temp_c\":40.5,\"uptime_s\":10},"
				 "\"paused\":\"busy\"}", NULL), 200);
	char sql[200], digest[65], after[65];
	snprintf(sql, sizeof(sql), "SELECT load1 * 10 FROM node_health WHERE node_id = %lld", (long long)node);
	cr_expect_eq(th_db_int(&srv, sql), 15);
	th_db_digest(&srv, digest);
	static const char *const bad[] = {
		"{\"health\":{\"load1\":\"high\"}}",
		"{\"health\":{\"load1\":-1}}",
		"{\"health\":{\"load1\":1e300}}",
		"{\"health\":{\"temp_c\":1000}}",
		"{\"health\":{\"temp_c\":-300}}",
		"{\"health\":{\"mem_total_bytes\":100,\"mem_available_bytes\":200}}",
		"{\"health\":{\"mem_total_bytes\":100}}",
		"{\"health\":{\"mem_total_bytes\":1.5,\"mem_available_bytes\":1}}",
		"{\"health\":{\"mem_total_bytes\":-4,\"mem_available_bytes\":0}}",
		"{\"health\":{\"uptime_s\":-5}}",
		"{\"health\":{\"uptime_s\":\"1h\"}}",
		"{\"health\":{\"cpu\":1}}",
		"{\"health\":[]}",
		"{\"health\":null}",
		"{\"paused\":\"sleepy\"}",
		"{\"paused\":5}",
		"{\"paused\":true}",
		"{\"rates\":{\"montecarlo_pi\":5},\"health\":{\"load1\":\"x\"}}",
	};
	for (size_t i = 0; i < TS_ARRAY_LEN(bad); i++) {
		reply = NULL;
		cr_expect_eq(beat(token, bad[i], &reply), 400, "%s was taken", bad[i]);
		json_t *err = json_object_get(reply, "error");
		cr_expect(json_is_string(json_object_get(err, "message")), "%s: no JSON error", bad[i]);
		cr_expect_str_eq(json_string_value(json_object_get(err, "code")), "bad_request");
		json_decref(reply);
	}
	th_db_digest(&srv, after);
	cr_expect_str_eq(after, digest, "a refused heartbeat changed the store");
	/* An older client: no body, or rates only. The health stays as it was. */
	cr_expect_eq(beat(token, NULL, NULL), 200);
	cr_expect_eq(beat(token, "{\"rates\":{\"montecarlo_pi\":1000}}", NULL), 200);
	cr_expect_eq(th_db_int(&srv, sql), 15, "a heartbeat without health changed it");
	json_t *n = api_node(node);
	cr_expect_str_eq(json_string_value(json_object_get(n, "paused")), "busy");
	cr_expect_float_eq(json_number_value(json_object_get(json_object_get(n, "health"), "temp_c")), 40.5, 1e-9);
	json_decref(n);
	/* null: computing again, and no temperature sent: none shown. */
	cr_expect_eq(beat(token, "{\"health\":{\"load1\":0.25},\"paused\":null}", NULL), 200);
	n = api_node(node);
	cr_expect(json_is_null(json_object_get(n, "paused")));
	cr_expect(json_is_null(json_object_get(json_object_get(n, "health"), "temp_c")));
	json_decref(n);
	/* A node that never sent health shows null. */
	char other[160];
	int64_t plain = th_enroll_node(&srv, "plain", other, sizeof(other));
	n = api_node(plain);
	cr_expect(json_is_null(json_object_get(n, "health")));
	cr_expect(json_is_null(json_object_get(n, "paused")));
	json_decref(n);
}

/* The pure check, for the cases the route table does not cover. */
Test(health, check_accepts_partial_health)
{
	char why[256];
	srv_health h;
	json_t *body = json_loads("{\"health\":{\"uptime_s\":5}}", 0, NULL);
	cr_assert_eq(srv_health_check(body, &h, why, sizeof(why)), TS_OK, "%s", why);
	cr_expect(h.present && h.has_uptime && !h.has_load && !h.has_temp && !h.has_mem && !h.paused);
	json_decref(body);
	cr_assert_eq(srv_health_check(NULL, &h, why, sizeof(why)), TS_OK);
	cr_expect_not(h.present, "no body: nothing to store");
	body = json_loads("{\"paused\":\"battery\"}", 0, NULL);
	cr_assert_eq(srv_health_check(body, &h, why, sizeof(why)), TS_OK, "%s", why);
	cr_expect_str_eq(h.paused, "battery");
	json_decref(body);
}
