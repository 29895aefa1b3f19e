/* Users' programs end to end (issue 11): a real server, real `tessera-client run --programs`
 * nodes running each program under bubblewrap and mpirun, over TLS on 127.0.0.1; users' files,
 * grants, the program job's outcome, combine and output routes; a lying node at R=2/Q=2; nodes
 * that may not get program units. The sandbox's own hostile programs are tests/test_sandbox.c. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "th_harness.h"
#include "ts_util.h"

static th_server srv;
static char alice[160]; /* a user with the programs grant */

static void login(const char *user, const char *password, char *out)
{
	char body[256];
	json_t *reply = NULL;
	snprintf(body, sizeof(body), "{\"username\":\"%s\",\"password\":\"%s\"}", user, password);
	cr_assert_eq(th_http(&srv, "POST", "/api/v1/login", NULL, body, strlen(body), 0, &reply), 200, "login %s", user);
	snprintf(out, 160, "%s", json_string_value(json_object_get(reply, "token")));
	json_decref(reply);
}

static int64_t add_user(const char *name, int grant, char *token)
{
	char body[256], path[80];
	json_t *reply = NULL;
	snprintf(body, sizeof(body), "{\"username\":\"%s\",\"password\":\"password-%s\",\"role\":\"user\"}", name, name);
	cr_assert_eq(th_http(&srv, "POST", "/api/v1/users", srv.admin_token, body, strlen(body), 0, &reply), 201);
	int64_t id = json_integer_value(json_object_get(reply, "id"));
	json_decref(reply);
	if (grant) {
		snprintf(path, sizeof(path), "/api/v1/users/%lld/grant", (long long)id);
		cr_assert_eq(th_http(&srv, "POST", path, srv.admin_token, "{\"grant\":\"programs\"}", 20, 0, NULL), 200);
	}
	snprintf(body, sizeof(body), "password-%s", name);
	login(name, body, token);
	return id;
}

static void setup(void)
{
	th_server_start(&srv);
	add_user("alice", 1, alice);
}

static void teardown(void)
{
	th_server_stop(&srv);
}

/* Uploads bytes as the user; returns the HTTP status and the hash in sha (65 bytes). */
static long upload(const char *token, const char *data, size_t n, char *sha)
{
	char *out;
	size_t len;
	long status = th_http_bytes(&srv, "PUT", "/api/v1/files", token, data, n, &out, &len);
	json_t *j = json_loads(out, 0, NULL);
	if (sha)
		snprintf(sha, 65, "%s", json_string_value(json_object_get(j, "sha256")) ?: "");
	json_decref(j);
	free(out);
	return status;
}

/* Submits a program job: main NAME with TEXT, params_extra added to params ("" or ",\"np\":3"),
 * job_extra to the job (",\"units\":100"). Returns the job id (asserts a 201). */
static int64_t submit(const char *token, const char *name, const char *text, const char *params_extra,
		      const char *job_extra)
{
	char sha[65], body[2048];
	long up = upload(token, text, strlen(text), sha);
	cr_assert(up == 201 || up == 200, "upload %s: HTTP %ld", name, up);
	snprintf(body, sizeof(body), "{\"kernel\":\"program\",\"params\":{\"main\":{\"name\":\"%s\",\"sha256\":\"%s\"}%s}%s}",
		 name, sha, params_extra, job_extra);
	json_t *reply = NULL;
	long status = th_http(&srv, "POST", "/api/v1/jobs", token, body, strlen(body), 0, &reply);
	cr_assert_eq(status, 201, "submit %s: HTTP %ld", name, status);
	int64_t id = json_integer_value(json_object_get(reply, "id"));
	json_decref(reply);
	return id;
}

/* A job's raw output (a route under /api/v1/jobs/ID); the bytes are malloc'd. */
static long output(int64_t job, const char *query, char **out, size_t *len)
{
	char path[128];
	snprintf(path, sizeof(path), "/api/v1/jobs/%lld/output%s", (long long)job, query);
	return th_http_bytes(&srv, "GET", path, alice, NULL, 0, out, len);
}

/* A program node: enrolled with its own token (its own volunteer) and running --programs. */
static pid_t program_node(int i)
{
	char token[160], state[400], log[400], out[4096], name[16];
	th_enroll_token(&srv, 1, token, sizeof(token));
	snprintf(state, sizeof(state), "%s/pnode%d", srv.dir, i);
	snprintf(log, sizeof(log), "%s/pnode%d.log", srv.dir, i);
	snprintf(name, sizeof(name), "prog-%d", i);
	char *enroll[] = {(char *)th_bin("tessera-client"), "enroll", srv.url, token, "--state", state, "--name", name,
			  "--no-bench", NULL};
	cr_assert_eq(th_run(enroll, NULL, 60, out, sizeof(out)), 0, "enroll: %s", out);
	/* 4 slots on this 2-core machine: the mpi test runs 3 ranks (mpirun --oversubscribe). */
	char *run[] = {(char *)th_bin("tessera-client"), "run", "--state", state, "--programs", "--slots", "4",
		       "--no-bench", "--wait", "5", NULL};
	return th_spawn(run, NULL, log);
}

static json_t *wait_done(int64_t id, double timeout_s)
{
	json_t *job = th_wait_job(&srv, id, timeout_s);
	cr_assert(job, "job %lld did not finish in %.0f s", (long long)id, timeout_s);
	return job;
}

static const char *state_of(const json_t *job)
{
	return json_string_value(json_object_get(job, "state"));
}

static const char mpi_py[] =
	"from mpi4py import MPI\n"
	"import sys\n"
	"c = MPI.COMM_WORLD\n"
	"parts = c.gather('rank %d of %d: %s' % (c.rank, c.size, sys.argv[1]), root=0)\n"
	"if c.rank == 0:\n"
	"    print('\\n'.join(parts))\n";

static const char mpi_c[] =
	"#include <mpi.h>\n#include <stdio.h>\n"
	"int main(int argc, char **argv) {\n"
	"  int r, n, sum = 0;\n  MPI_Init(&argc, &argv);\n"
	"  MPI_Comm_rank(MPI_COMM_WORLD, &r);\n  MPI_Comm_size(MPI_COMM_WORLD, &n);\n"
	"  int sq = (r + 1) * (r + 1);\n"
	"  MPI_Reduce(&sq, &sum, 1, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);\n"
	"  if (r == 0) printf(\"%d ranks, sum of squares %d\\n\", n, sum);\n"
	"  MPI_Finalize();\n  return 0;\n}\n";

Test(programs, mpi4py_on_three_ranks_and_c_mpi_compiled_on_the_node, .init = setup, .fini = teardown,
     .timeout = 240)
{
	pid_t node = program_node(1);
	int64_t py = submit(alice, "ranks.py", mpi_py, ",\"np\":3,\"args\":[\"hello\"]", "");
	int64_t c = submit(alice, "sq.c", mpi_c, ",\"np\":3", "");
	json_t *job = wait_done(py, 120);
	cr_expect_str_eq(state_of(job), "done", "error: %s", json_string_value(json_object_get(job, "error")));
	char *out;
	size_t len;
	cr_expect_eq(output(py, "", &out, &len), 200);
	cr_expect_str_eq(out, "rank 0 of 3: hello\nrank 1 of 3: hello\nrank 2 of 3: hello\n");
	free(out);
	json_t *res = json_object_get(job, "result");
	cr_expect_str_eq(json_string_value(json_object_get(res, "status")), "ok");
	cr_expect_eq(json_integer_value(json_object_get(res, "stdout_bytes")), 57);
	json_decref(job);
	job = wait_done(c, 120);
	cr_expect_str_eq(state_of(job), "done", "error: %s", json_string_value(json_object_get(job, "error")));
	cr_expect_eq(output(c, "?unit=0&stream=stdout", &out, &len), 200);
	cr_expect_str_eq(out, "3 ranks, sum of squares 14\n");
	free(out);
	json_decref(job);
	/* The per-unit view the dashboard shows. */
	char path[80];
	json_t *reply = NULL;
	snprintf(path, sizeof(path), "/api/v1/jobs/%lld/outputs", (long long)py);
	cr_assert_eq(th_http(&srv, "GET", path, alice, NULL, 0, 0, &reply), 200);
	json_t *u0 = json_array_get(json_object_get(reply, "units"), 0);
	cr_expect_str_eq(json_string_value(json_object_get(u0, "status")), "ok");
	cr_expect(strstr(json_string_value(json_object_get(u0, "stdout")), "rank 2 of 3: hello"));
	cr_expect(json_is_null(json_object_get(reply, "next")));
	json_decref(reply);
	th_proc_stop(node, 10);
}

Test(programs, a_failing_program_fails_its_job_with_its_words, .init = setup, .fini = teardown, .timeout = 240)
{
	pid_t node = program_node(1);
	int64_t bad_c = submit(alice, "bad.c", "int main(void) { return nope; }\n", "", "");
	int64_t three = submit(alice, "three.sh", "echo partial; echo 'it went wrong' >&2; exit 3\n", "", "");
	int64_t loop = submit(alice, "loop.sh", "while :; do :; done\n", ",\"time_s\":2", "");
	int64_t after = submit(alice, "after.sh", "echo still here\n", "", "");
	json_t *job = wait_done(bad_c, 120);
	const char *error = json_string_value(json_object_get(job, "error"));
	cr_expect_str_eq(state_of(job), "failed");
	cr_expect(error && strstr(error, "unit 0: compile error") && strstr(error, "nope"), "error: %s", error);
	json_decref(job);
	job = wait_done(three, 60);
	error = json_string_value(json_object_get(job, "error"));
	cr_expect(error && strstr(error, "unit 0: exit status 3: it went wrong"), "error: %s", error);
	char *out;
	size_t len;
	cr_expect_eq(output(three, "", &out, &len), 409, "a failed job has no combined output");
	free(out);
	cr_expect_eq(output(three, "?unit=0", &out, &len), 200);
	cr_expect_str_eq(out, "partial\n");
	free(out);
	cr_expect_eq(output(three, "?unit=0&stream=stderr", &out, &len), 200);
	cr_expect_str_eq(out, "it went wrong\n");
	free(out);
	json_decref(job);
	job = wait_done(loop, 60);
	error = json_string_value(json_object_get(job, "error"));
	cr_expect(error && strstr(error, "unit 0: killed: time limit"), "error: %s", error);
	json_decref(job);
	/* The node went on with the next unit. */
	job = wait_done(after, 60);
	cr_expect_str_eq(state_of(job), "done");
	cr_expect_eq(output(after, "", &out, &len), 200);
	cr_expect_str_eq(out, "still here\n");
	free(out);
	json_decref(job);
	th_proc_stop(node, 10);
}

/* The split program: sums f(i) = i*i mod 1000003 and counts its indices, as a flat object. */
static const char split_sh[] =
	"i=$TESSERA_UNIT_START; end=$((i + TESSERA_UNIT_COUNT)); s=0\n"
	"while [ $i -lt $end ]; do s=$((s + i * i % 1000003)); i=$((i + 1)); done\n"
	"echo \"{\\\"n\\\": $TESSERA_UNIT_COUNT, \\\"s\\\": $s, \\\"space\\\": $TESSERA_SPACE}\"\n";

static int64_t split_expected(uint64_t space)
{
	int64_t s = 0;
	for (uint64_t i = 0; i < space; i++)
		s += (int64_t)(i * i % 1000003);
	return s;
}

/* A node that says it runs programs and lies: every stdout it reports is "{}". */
static void liar_round(const char *token, int *lies)
{
	json_t *reply = NULL;
	long st = th_http(&srv, "POST", "/api/v1/work/fetch", token, "{\"max_units\":1}", 15, 0, &reply);
	json_t *u = json_array_get(json_object_get(reply, "units"), 0);
	if (st == 200 && u) {
		char body[256];
		snprintf(body, sizeof(body), "{\"results\":[{\"unit_id\":%lld,\"result\":{\"status\":\"ok\","
			 "\"stdout\":\"e30K\",\"stderr\":\"\"},\"wall_s\":0.1}]}",
			 (long long)json_integer_value(json_object_get(u, "id")));
		cr_assert_eq(th_http(&srv, "POST", "/api/v1/work/report", token, body, strlen(body), 0, NULL), 200);
		(*lies)++;
	}
	json_decref(reply);
}

static const char program_caps[] =
	"{\"programs\":{\"sandbox\":\"bwrap 0.8.0\",\"langs\":[\"py\",\"c\",\"sh\"],\"slots\":4}}";

Test(programs, split_job_of_100_units_summed_exactly_then_replicated_with_a_liar, .init = setup,
     .fini = teardown, .timeout = 300)
{
	pid_t a = program_node(1);
	int64_t id = submit(alice, "split.sh", split_sh, ",\"space\":100000,\"combine\":\"sum\"", ",\"units\":100");
	json_t *job = wait_done(id, 200);
	cr_assert_str_eq(state_of(job), "done", "error: %s", json_string_value(json_object_get(job, "error")));
	json_t *value = json_object_get(json_object_get(job, "result"), "value");
	int64_t want = split_expected(100000);
	cr_expect_eq(json_integer_value(json_object_get(value, "s")), want);
	cr_expect_eq(json_integer_value(json_object_get(value, "n")), 100000);
	cr_expect_eq(json_integer_value(json_object_get(value, "space")), 100 * 100000);
	cr_expect_eq(json_integer_value(json_object_get(json_object_get(job, "result"), "units")), 100);
	json_decref(job);
	char *out, text[128];
	size_t len;
	cr_expect_eq(output(id, "", &out, &len), 200);
	snprintf(text, sizeof(text), "{\"n\":100000,\"s\":%lld,\"space\":10000000}\n", (long long)want);
	cr_expect_str_eq(out, text);
	free(out);

	/* R=2/Q=2 with a second honest volunteer and a liar: the liar's outcomes never settle a
	 * unit, and the answer is the same. */
	pid_t b = program_node(2);
	char liar[160];
	th_enroll_node(&srv, "liar", liar, sizeof(liar));
	cr_assert_eq(th_http(&srv, "POST", "/api/v1/nodes/heartbeat", liar, program_caps, strlen(program_caps), 0, NULL),
		     200);
	id = submit(alice, "split.sh", split_sh, ",\"space\":100000,\"combine\":\"sum\"",
		    ",\"units\":100,\"replication\":2,\"quorum\":2");
	int lies = 0;
	double end = ts_mono() + 240;
	json_t *reply = NULL;
	char path[64];
	snprintf(path, sizeof(path), "/api/v1/jobs/%lld", (long long)id);
	for (;;) {
		liar_round(liar, &lies);
		cr_assert_eq(th_http(&srv, "GET", path, alice, NULL, 0, 0, &reply), 200);
		const char *state = state_of(reply);
		if (strcmp(state, "queued") && strcmp(state, "running"))
			break;
		json_decref(reply);
		reply = NULL;
		cr_assert(ts_mono() < end, "the replicated job did not finish");
		th_sleep(0.05);
	}
	cr_assert_str_eq(state_of(reply), "done", "error: %s", json_string_value(json_object_get(reply, "error")));
	value = json_object_get(json_object_get(reply, "result"), "value");
	cr_expect_eq(json_integer_value(json_object_get(value, "s")), want, "the liar changed the answer");
	json_decref(reply);
	cr_expect_gt(lies, 0, "the liar got no unit");
	cr_expect_eq(th_db_int(&srv, "SELECT n_invalid FROM nodes WHERE name = 'liar'"), lies,
		     "every lie was caught (%d lies)", lies);
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM units u WHERE u.job_id = %lld AND u.state = 2 AND"
		 " (SELECT count(*) FROM replicas r WHERE r.unit_id = u.id AND r.verdict = 1) < 2", (long long)id);
	cr_expect_eq(th_db_int(&srv, sql), 0, "a unit settled without two agreeing volunteers");
	printf("programs: 100 split units summed to %lld exactly; at R=2/Q=2 the liar told %d lies, all caught\n",
	       (long long)want, lies);
	th_proc_stop(a, 10);
	th_proc_stop(b, 10);
}

Test(programs, only_program_nodes_that_can_run_it_get_program_units, .init = setup, .fini = teardown,
     .timeout = 60)
{
	char plain[160], small[160];
	th_enroll_node(&srv, "plain", plain, sizeof(plain));
	th_enroll_node(&srv, "small", small, sizeof(small));
	const char *two = "{\"programs\":{\"sandbox\":\"bwrap 0.8.0\",\"langs\":[\"sh\"],\"slots\":2}}";
	cr_assert_eq(th_http(&srv, "POST", "/api/v1/nodes/heartbeat", small, two, strlen(two), 0, NULL), 200);
	int64_t p4 = submit(alice, "wide.sh", "echo 4\n", ",\"np\":4", "");
	int64_t py = submit(alice, "one.py", "print(1)\n", "", "");
	(void)p4, (void)py;
	json_t *reply = NULL;
	/* Neither gets them: no programs at all; sh only and 2 slots. */
	for (int round = 0; round < 2; round++) {
		cr_assert_eq(th_http(&srv, "POST", "/api/v1/work/fetch", round ? small : plain, "{\"max_units\":8}", 15, 0,
				     &reply), 200);
		cr_expect_eq(json_array_size(json_object_get(reply, "units")), 0, "round %d got a program unit", round);
		json_decref(reply);
	}
	/* A kernel job behind them still goes to the plain node. */
	th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000},\"units\":1}");
	cr_assert_eq(th_http(&srv, "POST", "/api/v1/work/fetch", plain, "{\"max_units\":8}", 15, 0, &reply), 200);
	json_t *u = json_array_get(json_object_get(reply, "units"), 0);
	cr_expect_str_eq(json_string_value(json_object_get(u, "kernel")), "montecarlo_pi");
	json_decref(reply);
	/* A node with 4 slots and python gets one program unit per fetch; a restarted node that
	 * says it runs none (null) gets none again. */
	cr_assert_eq(th_http(&srv, "POST", "/api/v1/nodes/heartbeat", small, program_caps, strlen(program_caps), 0, NULL),
		     200);
	cr_assert_eq(th_http(&srv, "POST", "/api/v1/work/fetch", small, "{\"max_units\":8,\"seconds\":60}", 28, 0, &reply),
		     200);
	cr_expect_eq(json_array_size(json_object_get(reply, "units")), 1);
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(reply, "units"), 0), "kernel")),
			 "program");
	json_decref(reply);
	const char *none = "{\"programs\":null}";
	cr_assert_eq(th_http(&srv, "POST", "/api/v1/nodes/heartbeat", small, none, strlen(none), 0, NULL), 200);
	cr_expect_eq(th_db_int(&srv, "SELECT slots FROM nodes WHERE name = 'small'"), 0);
	const char *bad = "{\"programs\":{\"sandbox\":\"x\",\"langs\":[\"rust\"],\"slots\":2}}";
	cr_expect_eq(th_http(&srv, "POST", "/api/v1/nodes/heartbeat", small, bad, strlen(bad), 0, NULL), 400);
}

Test(programs, grants_files_and_caps, .init = setup, .fini = teardown, .timeout = 60)
{
	char bob[160], sha[65], path[128], body[2048];
	int64_t bob_id = add_user("bob", 0, bob);
	json_t *reply = NULL;
	char *out;
	size_t len;
	/* No grant: refused in words, and nothing stored. */
	cr_expect_eq(th_http_bytes(&srv, "PUT", "/api/v1/files", bob, "echo hi\n", 8, &out, &len), 403);
	cr_expect(strstr(out, "tessera users grant bob programs"), "%s", out);
	free(out);
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM files"), 0);
	cr_assert_eq(upload(alice, "echo hi\n", 8, sha), 201);
	cr_expect_eq(upload(alice, "echo hi\n", 8, NULL), 200, "the same content again is known");
	snprintf(body, sizeof(body), "{\"kernel\":\"program\",\"params\":{\"main\":{\"name\":\"hi.sh\",\"sha256\":\"%s\"}}}",
		 sha);
	cr_expect_eq(th_http(&srv, "POST", "/api/v1/jobs", bob, body, strlen(body), 0, NULL), 403);
	/* Granted: bob may submit, but not name alice's file until he uploaded it himself. */
	snprintf(path, sizeof(path), "/api/v1/users/%lld/grant", (long long)bob_id);
	cr_assert_eq(th_http(&srv, "POST", path, srv.admin_token, "{\"grant\":\"programs\"}", 20, 0, &reply), 200);
	cr_expect_str_eq(json_string_value(json_array_get(json_object_get(reply, "grants"), 0)), "programs");
	json_decref(reply);
	cr_expect_eq(th_http(&srv, "POST", "/api/v1/jobs", bob, body, strlen(body), 0, &reply), 400);
	cr_expect(strstr(json_string_value(json_object_get(json_object_get(reply, "error"), "message")),
			 "not a file you uploaded"));
	json_decref(reply);
	snprintf(path, sizeof(path), "/api/v1/files/%s", sha);
	cr_expect_eq(th_http_bytes(&srv, "GET", path, bob, NULL, 0, &out, &len), 404, "bob may not read alice's file");
	free(out);
	cr_expect_eq(upload(bob, "echo hi\n", 8, NULL), 200);
	cr_expect_eq(th_http(&srv, "POST", "/api/v1/jobs", bob, body, strlen(body), 0, NULL), 201);
	cr_expect_eq(th_http_bytes(&srv, "GET", path, bob, NULL, 0, &out, &len), 200);
	cr_expect_eq(len, 8);
	free(out);
	/* A node without a lease of a job naming the file cannot read it. */
	char node[160];
	th_enroll_node(&srv, "nosy", node, sizeof(node));
	cr_expect_eq(th_http_bytes(&srv, "GET", path, node, NULL, 0, &out, &len), 404);
	free(out);
	/* Caps and bad params, each refused and changing nothing. */
	int64_t jobs = th_db_int(&srv, "SELECT count(*) FROM jobs");
	char *big = calloc(1, (1 << 20) + 2);
	memset(big, 'x', (1 << 20) + 1);
	cr_expect_eq(upload(alice, big, (1 << 20) + 1, NULL), 413, "a file over 1 MiB");
	free(big);
	static const char *const bad[] = {
		"{\"main\":{\"name\":\"x.rb\",\"sha256\":\"%s\"}}",
		"{\"main\":{\"name\":\"../x.sh\",\"sha256\":\"%s\"}}",
		"{\"main\":{\"name\":\".x.sh\",\"sha256\":\"%s\"}}",
		"{\"main\":{\"name\":\"x.sh\",\"sha256\":\"%s\"},\"files\":[{\"name\":\"x.sh\",\"sha256\":\"%s\"}]}",
		"{\"main\":{\"name\":\"x.sh\",\"sha256\":\"%s\"},\"np\":0}",
		"{\"main\":{\"name\":\"x.sh\",\"sha256\":\"%s\"},\"np\":65}",
		"{\"main\":{\"name\":\"x.sh\",\"sha256\":\"%s\"},\"combine\":\"avg\"}",
		"{\"main\":{\"name\":\"x.sh\",\"sha256\":\"%s\"},\"args\":[1]}",
		"{\"main\":{\"name\":\"x.sh\",\"sha256\":\"%s\"},\"time_s\":0}",
		"{\"main\":{\"name\":\"x.sh\",\"sha256\":\"ABC\"}}",
		"{\"main\":{\"name\":\"x.sh\",\"sha256\":\"%s\"},\"shell\":true}",
	};
	for (size_t i = 0; i < TS_ARRAY_LEN(bad); i++) {
		char params[1024];
		snprintf(params, sizeof(params), bad[i], sha, sha);
		snprintf(body, sizeof(body), "{\"kernel\":\"program\",\"params\":%s}", params);
		cr_expect_eq(th_http(&srv, "POST", "/api/v1/jobs", alice, body, strlen(body), 0, &reply), 400, "%s", params);
		const char *msg = json_string_value(json_object_get(json_object_get(reply, "error"), "message"));
		cr_expect(msg && *msg, "%s: no message", params);
		json_decref(reply);
	}
	snprintf(body, sizeof(body), "{\"kernel\":\"program\",\"params\":{\"main\":{\"name\":\"x.sh\",\"sha256\":\"%s\"},"
		 "\"time_s\":100},\"deadline_s\":60}", sha);
	cr_expect_eq(th_http(&srv, "POST", "/api/v1/jobs", alice, body, strlen(body), 0, NULL), 400, "lease under the limit");
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM jobs"), jobs);
	/* Revoked: refused again. */
	snprintf(path, sizeof(path), "/api/v1/users/%lld/revoke", (long long)bob_id);
	cr_assert_eq(th_http(&srv, "POST", path, srv.admin_token, "{\"grant\":\"programs\"}", 20, 0, NULL), 200);
	cr_expect_eq(upload(bob, "echo again\n", 11, NULL), 403);
	cr_expect_eq(th_http(&srv, "POST", path, srv.admin_token, "{\"grant\":\"root\"}", 16, 0, NULL), 400);
	/* The kinds every surface is made from. */
	cr_assert_eq(th_http(&srv, "GET", "/api/v1/kernels", bob, NULL, 0, 0, &reply), 200);
	json_t *kinds = json_object_get(reply, "kernels"), *k;
	size_t i;
	int found = 0;
	json_array_foreach(kinds, i, k)
		found += !strcmp(json_string_value(json_object_get(k, "name")), "program") &&
			 json_array_size(json_object_get(k, "params")) == 8;
	cr_expect_eq(found, 1, "program with its 8 params in /api/v1/kernels");
	json_decref(reply);
}
