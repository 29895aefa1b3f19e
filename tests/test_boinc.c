/* Stock BOINC clients on a Tessera server: Debian's boinc-client (boinc and boinccmd) runs as a
 * real process with its data dir in the test's temp dir, attaches over loopback TLS with an
 * enrollment token as its account key, downloads the signed app and its inputs, computes,
 * uploads and reports. Malformed BOINC requests are sent directly and must change nothing. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kern.h"
#include "srv_boinc_key.h"
#include "th_harness.h"
#include "ts_util.h"

#define BOINC_BIN "/usr/bin/boinc"
#define BOINCCMD_BIN "/usr/bin/boinccmd"
#define RPC_PASSWORD "tessera-test-rpc"
#define MAX_CLIENTS 2

typedef struct bclient {
	char dir[400], log[450], host[32];
	pid_t pid;
} bclient;

static th_server srv;
static bclient clients[MAX_CLIENTS];
static int n_clients;
static pid_t tessera_client;

static void setup(void)
{
	cr_assert(access(BOINC_BIN, X_OK) == 0 && access(BOINCCMD_BIN, X_OK) == 0,
		  "Debian's boinc-client is not installed (make deps installs it)");
	th_server_start(&srv);
}

/* Every client is stopped, also when a test fails half-way. */
static void teardown(void)
{
	for (int i = 0; i < n_clients; i++)
		if (clients[i].pid > 0)
			th_proc_stop(clients[i].pid, 10);
	n_clients = 0;
	if (tessera_client > 0)
		th_proc_stop(tessera_client, 10);
	tessera_client = 0;
	th_server_stop(&srv);
}

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
		  getsockname(fd, (struct sockaddr *)&a, &len) == 0);
	close(fd);
	return ntohs(a.sin_port);
}

static void put_file(const char *dir, const char *name, const char *text)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	cr_assert_eq(ts_write_file(path, text, strlen(text), 0600), TS_OK, "cannot write %s", path);
}

static char *slurp(const char *path, size_t *n)
{
	char *text = NULL;
	size_t len = 0;
	if (ts_read_file(path, 64 << 20, &text, &len))
		return NULL;
	if (n)
		*n = len;
	return text;
}

static int log_has(const bclient *c, const char *needle)
{
	char *text = slurp(c->log, NULL);
	int found = text && strstr(text, needle);
	free(text);
	return found;
}

static int wait_log(const bclient *c, const char *needle, double timeout_s)
{
	for (double end = ts_mono() + timeout_s; ts_mono() < end; th_sleep(0.2))
		if (log_has(c, needle))
			return 1;
	return 0;
}

/* boinccmd against the client's GUI RPC port; its output into out. */
static int boinccmd(const bclient *c, char *out, size_t cap, const char *a1, const char *a2, const char *a3,
		    const char *a4)
{
	char *argv[] = {BOINCCMD_BIN, "--host", (char *)c->host, "--passwd", RPC_PASSWORD, (char *)a1, (char *)a2,
			(char *)a3, (char *)a4, NULL};
	return th_run(argv, NULL, 30, out, cap);
}

/* A BOINC client in its own data dir: the server's certificate as its CA bundle, preferences
 * that let it compute on a busy machine, GUI RPC on a free loopback port with a password. */
static bclient *bclient_start(const char *name)
{
	cr_assert(n_clients < MAX_CLIENTS);
	bclient *c = &clients[n_clients++];
	char cert[400], *pem;
	snprintf(c->dir, sizeof(c->dir), "%s/%s", srv.dir, name);
	snprintf(c->log, sizeof(c->log), "%s/%s.log", srv.dir, name);
	cr_assert_eq(ts_mkdirs(c->dir, 0700), TS_OK);
	snprintf(cert, sizeof(cert), "%s/server.crt", srv.data);
	cr_assert((pem = slurp(cert, NULL)), "no server certificate");
	put_file(c->dir, "ca-bundle.crt", pem);
	free(pem);
	put_file(c->dir, "gui_rpc_auth.cfg", RPC_PASSWORD);
	put_file(c->dir, "global_prefs_override.xml",
		 "<global_preferences>\n<run_if_user_active>1</run_if_user_active>\n"
		 "<suspend_cpu_usage>0</suspend_cpu_usage>\n<cpu_usage_limit>100</cpu_usage_limit>\n"
		 "<max_ncpus_pct>100</max_ncpus_pct>\n<run_on_batteries>1</run_on_batteries>\n"
		 "<idle_time_to_run>0</idle_time_to_run>\n<work_buf_min_days>0</work_buf_min_days>\n"
		 "<work_buf_additional_days>0</work_buf_additional_days>\n<disk_min_free_gb>0.1</disk_min_free_gb>\n"
		 "<disk_max_used_pct>95</disk_max_used_pct>\n</global_preferences>\n");
	put_file(c->dir, "cc_config.xml",
		 "<cc_config><log_flags><sched_op_debug/><task_debug/></log_flags>"
		 "<options><no_gpus>1</no_gpus></options></cc_config>\n");
	int port = free_port();
	char portstr[16];
	snprintf(portstr, sizeof(portstr), "%d", port);
	snprintf(c->host, sizeof(c->host), "127.0.0.1:%d", port);
	char *argv[] = {BOINC_BIN, "--dir", c->dir, "--gui_rpc_port", portstr, "--no_gpus", "--skip_cpu_benchmarks",
			"--no_info_fetch", "--no_priority_change", NULL};
	c->pid = th_spawn(argv, NULL, c->log);
	char out[4096];
	for (double end = ts_mono() + 30;; th_sleep(0.3)) {
		if (boinccmd(c, out, sizeof(out), "--get_cc_status", NULL, NULL, NULL) == 0)
			break;
		cr_assert(ts_mono() < end, "the BOINC client's GUI RPC did not come up: %s", out);
	}
	return c;
}

static void master_url(char *out, size_t cap)
{
	snprintf(out, cap, "%s/boinc/", srv.url);
}

static void bclient_attach(const bclient *c, const char *token)
{
	char url[200], out[4096];
	master_url(url, sizeof(url));
	cr_assert_eq(boinccmd(c, out, sizeof(out), "--project_attach", url, token, NULL), 0, "attach: %s", out);
}

static void bclient_update(const bclient *c)
{
	char url[200], out[4096];
	master_url(url, sizeof(url));
	cr_assert_eq(boinccmd(c, out, sizeof(out), "--project", url, "update", NULL), 0, "update: %s", out);
}

static uint64_t pi_hits(uint64_t seed, uint64_t samples)
{
	return kern_pi_hits_key(kern_pi_key(seed), 0, samples);
}

static json_t *job_done(int64_t id, double timeout_s)
{
	json_t *job = th_wait_job(&srv, id, timeout_s);
	cr_assert(job, "job %lld did not finish in %.0f s", (long long)id, timeout_s);
	cr_assert_str_eq(json_string_value(json_object_get(job, "state")), "done", "job %lld: %s", (long long)id,
			 json_string_value(json_object_get(job, "error")));
	return job;
}

/* One client for both (each attach costs the client's own timers, ~20 s): it computes alone,
 * exactly; then its token is revoked and it gets no more work. */
Test(boinc, a_boinc_host_computes_alone_exactly_and_stops_when_revoked, .init = setup, .fini = teardown,
     .timeout = 180)
{
	char token[160];
	th_enroll_token(&srv, 1, token, sizeof(token));
	int64_t id = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":40000000,\"seed\":7},\"units\":4}");
	bclient *c = bclient_start("boinc1");
	bclient_attach(c, token);
	json_t *job = job_done(id, 120);
	json_t *result = json_object_get(job, "result");
	cr_expect_eq((uint64_t)json_integer_value(json_object_get(result, "hits")), pi_hits(7, 40000000));
	json_t *nodes = json_object_get(job, "nodes");
	cr_expect_eq(json_array_size(nodes), 1);
	cr_expect_eq(json_integer_value(json_object_get(json_array_get(nodes, 0), "units")), 4);
	json_decref(job);
	/* One Tessera node of the token's volunteer, made over BOINC; the token's one use taken. */
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM nodes WHERE platform = 'boinc x86_64-pc-linux-gnu'"
				     " AND volunteer = (SELECT id FROM tokens WHERE kind = 'enroll')"), 1);
	cr_expect_eq(th_db_int(&srv, "SELECT uses_left FROM tokens WHERE kind = 'enroll'"), 0);
	/* The client saw its results acknowledged (else it would report them again). */
	cr_expect(wait_log(c, "got ack for task", 30), "no result_ack in the client's log");
	cr_expect(log_has(c, "Signature") == 0, "the client had trouble with a signature");

	int64_t enroll_id = th_db_int(&srv, "SELECT id FROM tokens WHERE kind = 'enroll'");
	char path[80];
	snprintf(path, sizeof(path), "/api/v1/enroll-tokens/%lld", (long long)enroll_id);
	cr_assert_eq(th_http(&srv, "DELETE", path, srv.admin_token, NULL, 0, 0, NULL), 200);
	int64_t second = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":2000000,\"seed\":4},\"units\":1}");
	/* An update asked while an RPC is in flight is dropped when its reply comes: ask again. */
	int told = 0;
	for (int i = 0; i < 5 && !told; i++) {
		bclient_update(c);
		told = wait_log(c, "not valid on this Tessera server", 8);
	}
	cr_expect(told, "the client was not told its key is revoked");
	char sql[200];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM replicas r JOIN units u ON u.id = r.unit_id WHERE u.job_id = %lld",
		 (long long)second);
	cr_expect_eq(th_db_int(&srv, sql), 0, "a revoked host was given work");
}

Test(boinc, boinc_and_tessera_client_agree_at_r2_q2, .init = setup, .fini = teardown, .timeout = 180)
{
	char btoken[160], ttoken[160], state[400], out[4096], logf[450];
	th_enroll_token(&srv, 1, btoken, sizeof(btoken));
	th_enroll_token(&srv, 1, ttoken, sizeof(ttoken)); /* another volunteer: both replicas count */
	int64_t id = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":40000000,\"seed\":11},"
				     "\"units\":4,\"replication\":2,\"quorum\":2}");
	bclient *c = bclient_start("boinc1");
	bclient_attach(c, btoken);
	snprintf(state, sizeof(state), "%s/tc", srv.dir);
	snprintf(logf, sizeof(logf), "%s/tc.log", srv.dir);
	char *enroll[] = {(char *)th_bin("tessera-client"), "enroll", srv.url, ttoken, "--state", state, "--name", "tc", NULL};
	cr_assert_eq(th_run(enroll, NULL, 60, out, sizeof(out)), 0, "enroll: %s", out);
	char *run[] = {(char *)th_bin("tessera-client"), "run", "--state", state, "--threads", "1", NULL};
	tessera_client = th_spawn(run, NULL, logf);
	json_t *job = job_done(id, 150);
	cr_expect_eq((uint64_t)json_integer_value(json_object_get(json_object_get(job, "result"), "hits")),
		     pi_hits(11, 40000000));
	json_decref(job);
	/* Every unit settled on two matching results, one from each kind of node. */
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM replicas WHERE state = 2 AND verdict = 1"), 8);
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM replicas r JOIN nodes n ON n.id = r.node_id"
				     " WHERE r.verdict = 1 AND n.platform LIKE 'boinc %'"), 4);
}

Test(boinc, a_tampered_app_file_is_refused_by_the_client, .init = setup, .fini = teardown, .timeout = 180)
{
	/* The server restarted to serve a copy of the app, changed after the server signed it. */
	char apps[300], src[600], dst[700], token[160];
	snprintf(apps, sizeof(apps), "%s/apps", srv.dir);
	cr_assert_eq(ts_mkdirs(apps, 0700), TS_OK);
	snprintf(src, sizeof(src), "%s/boinc-apps/tessera-boinc-x86_64", TESSERA_BIN_DIR);
	snprintf(dst, sizeof(dst), "%s/tessera-boinc-x86_64", apps);
	size_t n = 0;
	char *app = slurp(src, &n);
	cr_assert(app && n > 4096, "no app at %s", src);
	cr_assert_eq(ts_write_file(dst, app, n, 0700), TS_OK);
	setenv("TESSERA_BOINC_APPS", apps, 1);
	th_server_kill(&srv, SIGTERM);
	th_server_restart(&srv);
	app[n / 2] ^= 0x55; /* same size, other bytes: only the signature can tell */
	cr_assert_eq(ts_write_file(dst, app, n, 0700), TS_OK);
	free(app);
	th_enroll_token(&srv, 1, token, sizeof(token));
	int64_t id = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":2000000,\"seed\":5},\"units\":1}");
	bclient *c = bclient_start("boinc1");
	bclient_attach(c, token);
	cr_expect(wait_log(c, "Signature verification failed", 60), "the client ran or kept a tampered app");
	th_sleep(2);
	char sql[160];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM units WHERE job_id = %lld AND state = 2", (long long)id);
	cr_expect_eq(th_db_int(&srv, sql), 0, "a unit was computed by a tampered app");
}

/* A POST of raw bytes to a BOINC route; the reply's text into *out. */
static long post(const char *path, const char *body, size_t n, char **out)
{
	size_t len = 0;
	return th_http_bytes(&srv, "POST", path, NULL, body, n, out, &len);
}

static size_t range_cb(char *p, size_t size, size_t n, void *ud)
{
	size_t *got = ud;
	*got += size * n;
	return size * n;
}

Test(boinc, bad_requests_get_errors_and_change_nothing, .init = setup, .fini = teardown, .timeout = 60)
{
	char before[65], after[65], *reply = NULL, token[160];
	th_enroll_token(&srv, 1, token, sizeof(token));
	th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":2000000,\"seed\":5},\"units\":1}");
	th_db_digest(&srv, before);
	static const struct {
		const char *path, *body;
		long status;
	} cases[] = {
		{"/boinc/scheduler", "not xml at all", 400},
		{"/boinc/scheduler", "<scheduler_request><authenticator>x</authenticator>", 400},
		{"/boinc/scheduler", "<data_server_request/>", 400},
		{"/boinc/scheduler", "<!DOCTYPE r [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;\">]>"
				     "<scheduler_request><authenticator>&b;</authenticator></scheduler_request>", 400},
		{"/boinc/scheduler", "<scheduler_request><hostid>-4</hostid></scheduler_request>", 400},
		{"/boinc/upload", "<data_server_request><file_upload><file_info><name>ts_1_1_0_out</name>"
				  "<xml_signature>00000000000000000000000000000000</xml_signature></file_info>"
				  "<nbytes>5</nbytes><offset>0</offset><data>\nhello", 403},
		{"/boinc/upload", "<data_server_request><file_upload><file_info><name>../../etc/passwd</name>"
				  "</file_info><nbytes>5</nbytes><offset>0</offset><data>\nhello", 403},
		{"/boinc/upload", "<data_server_request><bogus/></data_server_request>", 400},
	};
	for (size_t i = 0; i < TS_ARRAY_LEN(cases); i++) {
		long status = post(cases[i].path, cases[i].body, strlen(cases[i].body), &reply);
		cr_expect_eq(status, cases[i].status, "case %zu: HTTP %ld: %s", i, status, reply);
		free(reply);
	}
	/* Oversized: a scheduler request over its cap. */
	size_t big = 300 * 1024;
	char *huge = malloc(big + 128);
	int at = snprintf(huge, big + 128, "<scheduler_request><authenticator>");
	memset(huge + at, 'a', big);
	strcpy(huge + at + big, "</authenticator></scheduler_request>");
	cr_expect_eq(post("/boinc/scheduler", huge, strlen(huge), &reply), 413);
	free(reply);
	free(huge);
	/* The right secret for a result that no host holds (the replica does not exist). */
	srv_boinc_key *k = NULL;
	cr_assert_eq(srv_boinc_key_load(srv.data, &k), TS_OK);
	char mac[SRV_BOINC_MAC_HEX], body[512];
	srv_boinc_mac(k, "out:ts_1_99_0_out", mac);
	srv_boinc_key_free(k);
	snprintf(body, sizeof(body), "<data_server_request><file_upload><file_info><name>ts_1_99_0_out</name>"
		 "<xml_signature>%s</xml_signature></file_info><nbytes>5</nbytes><offset>0</offset><data>\nhello", mac);
	cr_expect_eq(post("/boinc/upload", body, strlen(body), &reply), 403, "%s", reply);
	free(reply);
	/* An unknown account key is told so, gets no work and no host. */
	const char *unknown = "<scheduler_request><authenticator>tse1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA."
			      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA</authenticator><hostid>0</hostid>"
			      "<platform_name>x86_64-pc-linux-gnu</platform_name><work_req_seconds>100</work_req_seconds>"
			      "</scheduler_request>";
	cr_expect_eq(post("/boinc/scheduler", unknown, strlen(unknown), &reply), 200);
	cr_expect(reply && strstr(reply, "not valid") && !strstr(reply, "<result>") && !strstr(reply, "<hostid>"),
		  "%s", reply);
	free(reply);
	/* Downloads: an input name without its secret is not found. */
	size_t len = 0;
	cr_expect_eq(th_http_bytes(&srv, "GET", "/boinc/download/ts_1_1_00000000000000000000000000000000.in", NULL,
				   NULL, 0, &reply, &len), 404);
	free(reply);
	th_db_digest(&srv, after);
	cr_expect_str_eq(before, after, "a refused BOINC request changed the store");

	/* The app file resumes with Range (what the client sends after a broken download). */
	char src[600], md5[33], url[800], cert[400];
	size_t n = 0;
	snprintf(src, sizeof(src), "%s/boinc-apps/tessera-boinc-x86_64", TESSERA_BIN_DIR);
	char *app = slurp(src, &n);
	cr_assert(app);
	srv_boinc_md5_hex(app, n, md5);
	free(app);
	snprintf(url, sizeof(url), "%s/boinc/download/tessera_100_x86_64-pc-linux-gnu_%.8s", srv.url, md5);
	snprintf(cert, sizeof(cert), "%s/server.crt", srv.data);
	CURL *h = curl_easy_init();
	size_t got = 0;
	long code = 0;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CAINFO, cert);
	curl_easy_setopt(h, CURLOPT_RANGE, "1000-");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, range_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &got);
	cr_expect_eq(curl_easy_perform(h), CURLE_OK);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(h);
	cr_expect_eq(code, 206);
	cr_expect_eq(got, n - 1000, "a range of %zu bytes, not %zu", got, n - 1000);
}

/* Runs a BOINC app in a slot-like dir as the client would (input "in", init_data.xml with
 * <ncpus>); returns the exit status and the output's text in out. */
static int run_app(const char *const *prefix, const char *app, const char *unit, char *out, size_t cap)
{
	char slot[400], path[500], cwd[1024];
	snprintf(slot, sizeof(slot), "%s/slot-%s", srv.dir, strrchr(app, '-') + 1);
	cr_assert_eq(ts_mkdirs(slot, 0700), TS_OK);
	put_file(slot, "in", unit);
	put_file(slot, "init_data.xml", "<app_init_data>\n<ncpus>2.000000</ncpus>\n</app_init_data>\n");
	char *argv[4] = {NULL};
	int n = 0;
	for (; prefix && prefix[n]; n++)
		argv[n] = (char *)prefix[n];
	argv[n] = (char *)app;
	cr_assert(getcwd(cwd, sizeof(cwd)));
	cr_assert_eq(chdir(slot), 0);
	char log[4096];
	int rc = th_run(argv, NULL, 60, log, sizeof(log));
	cr_assert_eq(chdir(cwd), 0);
	snprintf(path, sizeof(path), "%s/out", slot);
	char *text = slurp(path, NULL);
	snprintf(out, cap, "%s", text ? text : "");
	free(text);
	snprintf(path, sizeof(path), "%s/boinc_finish_called", slot);
	cr_expect(rc != 0 || access(path, F_OK) == 0, "%s exited 0 without boinc_finish_called", app);
	return rc;
}

Test(boinc, the_apps_compute_a_unit_exactly, .init = setup, .fini = teardown, .timeout = 120)
{
	char app[600], out[256], want[64];
	const char *unit = "{\"unit_id\":9,\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":10000000,\"seed\":7},"
			   "\"start\":3000000,\"count\":2000000}";
	snprintf(want, sizeof(want), "{\"hits\":%llu}",
		 (unsigned long long)kern_pi_hits_key(kern_pi_key(7), 3000000, 2000000));
	snprintf(app, sizeof(app), "%s/boinc-apps/tessera-boinc-x86_64", TESSERA_BIN_DIR);
	cr_expect_eq(run_app(NULL, app, unit, out, sizeof(out)), 0);
	cr_expect_str_eq(out, want);
	/* A unit it cannot compute is an error result, never a made-up output. */
	cr_expect_neq(run_app(NULL, app, "{\"kernel\":\"nope\",\"start\":0,\"count\":1}", out, sizeof(out)), 0);
	/* The ARM builds, where they were cross-built and qemu-user can run them. */
	static const struct {
		const char *arch, *qemu;
	} arm[] = {{"aarch64", "/usr/bin/qemu-aarch64-static"}, {"armhf", "/usr/bin/qemu-arm-static"}};
	int ran = 0;
	for (size_t i = 0; i < TS_ARRAY_LEN(arm); i++) {
		const char *qemu[] = {arm[i].qemu, NULL};
		snprintf(app, sizeof(app), "%s/boinc-apps/tessera-boinc-%s", TESSERA_BIN_DIR, arm[i].arch);
		if (access(app, X_OK) != 0 || access(qemu[0], X_OK) != 0)
			continue;
		cr_expect_eq(run_app(qemu, app, unit, out, sizeof(out)), 0, "%s", arm[i].arch);
		cr_expect_str_eq(out, want, "%s", arm[i].arch);
		ran++;
	}
	if (!ran)
		cr_skip_test("no ARM app or no qemu-user to run one");
}

/* The text of the first <tag>...</tag> after from in text, whitespace trimmed, into out. */
static int xml_get(const char *text, const char *tag, char *out, size_t cap)
{
	char open[64], close[64];
	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	const char *a = text ? strstr(text, open) : NULL, *b = a ? strstr(a, close) : NULL;
	if (!b)
		return 0;
	a += strlen(open);
	while (a < b && (*a == ' ' || *a == '\n'))
		a++;
	while (b > a && (b[-1] == ' ' || b[-1] == '\n'))
		b--;
	snprintf(out, cap, "%.*s", (int)(b - a), a);
	return 1;
}

/* One attach-compute-report cycle spoken by hand, as a BOINC client would: the scheduler reply's
 * parts, the input's download, the upload with the result's secret, the report and its ack. */
Test(boinc, the_protocol_by_hand, .init = setup, .fini = teardown, .timeout = 60)
{
	char token[160], req[2048], *reply = NULL, *text = NULL;
	th_enroll_token(&srv, 2, token, sizeof(token));
	int64_t id = th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000000,\"seed\":9},\"units\":1}");
	snprintf(req, sizeof(req),
		 "<scheduler_request>\n<authenticator>%s</authenticator>\n<hostid>0</hostid>\n"
		 "<platform_name>x86_64-pc-linux-gnu</platform_name>\n<work_req_seconds>1</work_req_seconds>\n"
		 "<host_info>\n<domain_name>by-hand</domain_name>\n<p_ncpus>2</p_ncpus>\n<p_fpops>2e9</p_fpops>\n"
		 "</host_info>\n</scheduler_request>\n", token);
	cr_assert_eq(post("/boinc/scheduler", req, strlen(req), &reply), 200, "%s", reply);
	char hostid[32], name[200], sig[200], url[400], deadline[32];
	cr_assert(xml_get(reply, "hostid", hostid, sizeof(hostid)), "%s", reply);
	cr_expect(strstr(reply, "<code_sign_key>\n1024\n"), "no code_sign_key: %s", reply);
	cr_expect(strstr(reply, "<next_rpc_delay>"), "no next_rpc_delay");
	cr_expect(strstr(reply, "<file_signature>"), "the app file is not signed");
	cr_expect(!strstr(reply, "<request_delay>"), "a host given work is told to wait");
	const char *res = strstr(reply, "<result>");
	cr_assert(res, "no result: %s", reply);
	cr_assert(xml_get(res, "name", name, sizeof(name)));
	cr_assert(xml_get(res, "report_deadline", deadline, sizeof(deadline)));
	cr_expect_gt(atoll(deadline), (long long)ts_now());
	/* The input, from the url of the workunit's file. */
	const char *wu = strstr(reply, "<workunit>"), *in = wu ? strstr(wu - 600 > reply ? wu - 600 : reply, "/boinc/download/ts_") : NULL;
	cr_assert(in);
	snprintf(url, sizeof(url), "%.*s", (int)strcspn(in, "<"), in);
	size_t n = 0;
	cr_assert_eq(th_http_bytes(&srv, "GET", url, NULL, NULL, 0, &text, &n), 200, "%s", url);
	json_t *unit = json_loads(text, 0, NULL);
	free(text);
	cr_assert(unit, "the input is not JSON");
	uint64_t hits = kern_pi_hits_key(kern_pi_key(9), (uint64_t)json_integer_value(json_object_get(unit, "start")),
					 (uint64_t)json_integer_value(json_object_get(unit, "count")));
	json_decref(unit);
	/* The upload: the output's file_info name and secret, from the reply. */
	const char *outfi = strstr(reply, "_0_out</name>");
	cr_assert(outfi && xml_get(outfi, "xml_signature", sig, sizeof(sig)));
	char outname[220], data[64], md5[33], body[1024];
	snprintf(outname, sizeof(outname), "%s_out", name);
	snprintf(data, sizeof(data), "{\"hits\":%llu}", (unsigned long long)hits);
	srv_boinc_md5_hex(data, strlen(data), md5);
	snprintf(body, sizeof(body), "<data_server_request>\n<file_upload>\n<file_info>\n<name>%s</name>\n"
		 "<xml_signature>\n%s\n</xml_signature>\n<max_nbytes>4096</max_nbytes>\n</file_info>\n"
		 "<nbytes>%zu</nbytes>\n<md5_cksum>%s</md5_cksum>\n<offset>0</offset>\n<data>\n%s",
		 outname, sig, strlen(data), md5, data);
	free(reply);
	/* Refused, storing nothing: over the cap, an offset past what is stored, a wrong MD5. */
	static const struct {
		const char *nbytes, *offset, *md5;
		long status;
	} refused[] = {{"5000", "0", NULL, 413}, {NULL, "3", NULL, 400}, {NULL, "0", "0123456789abcdef0123456789abcdef", 400}};
	for (size_t i = 0; i < TS_ARRAY_LEN(refused); i++) {
		char nb[16], bad[1024];
		snprintf(nb, sizeof(nb), "%zu", strlen(data));
		snprintf(bad, sizeof(bad), "<data_server_request>\n<file_upload>\n<file_info>\n<name>%s</name>\n"
			 "<xml_signature>\n%s\n</xml_signature>\n</file_info>\n<nbytes>%s</nbytes>\n"
			 "<md5_cksum>%s</md5_cksum>\n<offset>%s</offset>\n<data>\n%s", outname, sig,
			 refused[i].nbytes ? refused[i].nbytes : nb, refused[i].md5 ? refused[i].md5 : md5,
			 refused[i].offset, data + atoi(refused[i].offset));
		cr_expect_eq(post("/boinc/upload", bad, strlen(bad), &reply), refused[i].status, "case %zu: %s", i, reply);
		free(reply);
	}
	char stored[800];
	snprintf(stored, sizeof(stored), "%s/boinc/up/%s", srv.data, outname);
	cr_expect_neq(access(stored, F_OK), 0, "a refused upload stored a file");
	cr_assert_eq(post("/boinc/upload", body, strlen(body), &reply), 200, "%s", reply);
	cr_expect(strstr(reply, "<status>0</status>"), "%s", reply);
	free(reply);
	/* A resumed upload: the rest from an offset within what is stored. */
	snprintf(body, sizeof(body), "<data_server_request>\n<file_upload>\n<file_info>\n<name>%s</name>\n"
		 "<xml_signature>\n%s\n</xml_signature>\n</file_info>\n<nbytes>%zu</nbytes>\n"
		 "<md5_cksum>%s</md5_cksum>\n<offset>5</offset>\n<data>\n%s", outname, sig, strlen(data), md5, data + 5);
	cr_assert_eq(post("/boinc/upload", body, strlen(body), &reply), 200, "%s", reply);
	free(reply);
	/* The size probe now sees the whole file. */
	snprintf(body, sizeof(body), "<data_server_request>\n<get_file_size>%s</get_file_size>\n</data_server_request>\n", outname);
	cr_assert_eq(post("/boinc/upload", body, strlen(body), &reply), 200);
	char size[32];
	cr_expect(xml_get(reply, "file_size", size, sizeof(size)) && (size_t)atoll(size) == strlen(data), "%s", reply);
	free(reply);
	/* The report, from the host it was given to, with the key it was given. */
	snprintf(req, sizeof(req),
		 "<scheduler_request>\n<authenticator>%s</authenticator>\n<hostid>%s</hostid>\n"
		 "<platform_name>x86_64-pc-linux-gnu</platform_name>\n<work_req_seconds>0</work_req_seconds>\n"
		 "<code_sign_key>\n1024\n.\n</code_sign_key>\n<result>\n<name>%s</name>\n<final_elapsed_time>1.5</final_elapsed_time>\n"
		 "<exit_status>0</exit_status>\n<state>5</state>\n</result>\n</scheduler_request>\n", token, hostid, name);
	cr_assert_eq(post("/boinc/scheduler", req, strlen(req), &reply), 200, "%s", reply);
	char acked[200];
	cr_expect(strstr(reply, "<result_ack>") && xml_get(strstr(reply, "<result_ack>"), "name", acked, sizeof(acked)) &&
		  strcmp(acked, name) == 0, "%s", reply);
	cr_expect(!strstr(reply, "<code_sign_key>"), "the key is sent again");
	free(reply);
	json_t *job = job_done(id, 10);
	cr_expect_eq((uint64_t)json_integer_value(json_object_get(json_object_get(job, "result"), "hits")), hits);
	json_decref(job);
	/* Its measured rate (the unit's indices over the task's 1.5 s) sizes its next fetches. */
	cr_expect_eq(th_db_int(&srv, "SELECT CAST(round(json_extract(rates, '$.montecarlo_pi') * 1.5) AS INTEGER)"
				     " FROM nodes"), 1000000);
	/* One host, one use: the same hostid came back. */
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM nodes"), 1);
	cr_expect_eq(th_db_int(&srv, "SELECT uses_left FROM tokens WHERE kind = 'enroll'"), 1);
	/* The files of a reported result are gone. */
	char dir[800];
	snprintf(dir, sizeof(dir), "%s/boinc/up/%s", srv.data, outname);
	cr_expect_neq(access(dir, F_OK), 0, "the upload stayed after its report");
	/* Revoked: the host is told, and told to abort what it still holds. */
	int64_t enroll_id = th_db_int(&srv, "SELECT id FROM tokens WHERE kind = 'enroll'");
	char path[80];
	snprintf(path, sizeof(path), "/api/v1/enroll-tokens/%lld", (long long)enroll_id);
	cr_assert_eq(th_http(&srv, "DELETE", path, srv.admin_token, NULL, 0, 0, NULL), 200);
	snprintf(req, sizeof(req),
		 "<scheduler_request>\n<authenticator>%s</authenticator>\n<hostid>%s</hostid>\n"
		 "<platform_name>x86_64-pc-linux-gnu</platform_name>\n<work_req_seconds>100</work_req_seconds>\n"
		 "<other_results>\n<other_result>\n<name>ts_7_7_0</name>\n</other_result>\n</other_results>\n"
		 "</scheduler_request>\n", token, hostid);
	cr_assert_eq(post("/boinc/scheduler", req, strlen(req), &reply), 200, "%s", reply);
	cr_expect(strstr(reply, "not valid") && strstr(reply, "<result_abort>\n<name>ts_7_7_0</name>"), "%s", reply);
	cr_expect(!strstr(reply, "<result>") && !strstr(reply, "<next_rpc_delay>"), "%s", reply);
	free(reply);
}
