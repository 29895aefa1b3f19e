/* Users' programs from the CLI (docs/PROGRAMS-API.md) against a real server: what `tessera run`
 * and `tessera submit program` refuse before anything is sent, `tessera kernels`, the programs
 * grant (a user without it is told why and who can change it), and, with a node that runs
 * programs, `tessera run` printing a program's stdout and stderr apart and exiting with its
 * status. The pure parts (exit-status mapping, names, the kinds description) are called
 * directly. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cl_kinds.h"
#include "cl_prog.h"
#include "th_harness.h"

#define OUT_MAX 16384

static th_server srv;

static void setup(void)
{
	th_server_start(&srv);
}

static void teardown(void)
{
	th_server_stop(&srv);
}

/* A path in the test's temp dir. */
static const char *at(const char *name)
{
	static char path[8][400];
	static int next;
	char *p = path[next++ % 8];
	snprintf(p, 400, "%s/%s", srv.dir, name);
	return p;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	cr_assert(f, "cannot write %s", path);
	fputs(text, f);
	fclose(f);
}

/* Runs tessera with config dir cfg (and $TESSERA_PASSWORD, $TESSERA_NEW_PASSWORD set), its
 * stdout alone in out and its stderr alone in err (either may be NULL); arguments up to NULL.
 * Returns the exit status. */
static int cli(const char *cfg, char *out, char *err, ...)
{
	char env_cfg[512], env_pw[128], env_new[128], so[420], se[420];
	static int n_run;
	snprintf(so, sizeof(so), "%s/cli-%d.out", srv.dir, n_run);
	snprintf(se, sizeof(se), "%s/cli-%d.err", srv.dir, n_run++);
	/* sh keeps the two streams apart: th_run would join them. */
	char *argv[40] = {"/bin/sh", "-c", "out=$1; err=$2; shift 2; exec \"$@\" >\"$out\" 2>\"$err\"", "sh", so,
			  se, (char *)th_bin("tessera")};
	int n = 7;
	va_list ap;
	va_start(ap, err);
	for (const char *a; n < 39 && (a = va_arg(ap, const char *)) != NULL;)
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	snprintf(env_cfg, sizeof(env_cfg), "TESSERA_CONFIG=%s", cfg);
	snprintf(env_pw, sizeof(env_pw), "TESSERA_PASSWORD=%s", TH_ADMIN_PASSWORD);
	snprintf(env_new, sizeof(env_new), "TESSERA_NEW_PASSWORD=%s", "bob-password-1");
	char *env[] = {env_cfg, env_pw, env_new, NULL};
	int rc = th_run(argv, env, 120, NULL, 0);
	const char *paths[2] = {so, se};
	char *bufs[2] = {out, err};
	for (int i = 0; i < 2; i++) {
		if (!bufs[i])
			continue;
		bufs[i][0] = '\0';
		FILE *f = fopen(paths[i], "r");
		if (f) {
			size_t got = fread(bufs[i], 1, OUT_MAX - 1, f);
			bufs[i][got] = '\0';
			fclose(f);
		}
	}
	unlink(so);
	unlink(se);
	return rc;
}

static const char *login(const char *who, const char *password)
{
	static char cfgs[4][400];
	static int next;
	char *cfg = cfgs[next++ % 4], out[OUT_MAX], err[OUT_MAX], env_pw[128];
	snprintf(cfg, 400, "%s/cfg-%s", srv.dir, who);
	snprintf(env_pw, sizeof(env_pw), "TESSERA_PASSWORD=%s", password);
	char env_cfg[512];
	snprintf(env_cfg, sizeof(env_cfg), "TESSERA_CONFIG=%s", cfg);
	char *env[] = {env_cfg, env_pw, NULL};
	char *argv[] = {(char *)th_bin("tessera"), "login", srv.url, "--user", (char *)who, "--pin", srv.pin, NULL};
	cr_assert_eq(th_run(argv, env, 30, out, sizeof(out)), 0, "login %s: %s", who, out);
	(void)err;
	return cfg;
}

/* Whether the server describes a program kind (GET /api/v1/kernels). */
static int server_runs_programs(void)
{
	json_t *reply = NULL;
	long st = th_http(&srv, "GET", "/api/v1/kernels", srv.admin_token, NULL, 0, 0, &reply);
	int yes = st == 200 && cl_kinds_find(reply, "program") != NULL;
	json_decref(reply);
	return yes;
}

Test(prog, exit_status_of_each_outcome)
{
	cr_expect_eq(cl_prog_exit_code("ok"), 0);
	cr_expect_eq(cl_prog_exit_code("exit status 3"), 3);
	cr_expect_eq(cl_prog_exit_code("exit status 255"), 255);
	cr_expect_eq(cl_prog_exit_code("exit status 256"), CL_PROG_EXIT_TESSERA);
	cr_expect_eq(cl_prog_exit_code("exit status 3x"), CL_PROG_EXIT_TESSERA);
	cr_expect_eq(cl_prog_exit_code("killed: signal 9"), 137);
	cr_expect_eq(cl_prog_exit_code("killed: signal 15"), 143);
	cr_expect_eq(cl_prog_exit_code("killed: time limit"), 124);
	cr_expect_eq(cl_prog_exit_code("killed: cpu limit"), 124);
	cr_expect_eq(cl_prog_exit_code("killed: memory"), 137);
	cr_expect_eq(cl_prog_exit_code("compile error"), 126);
	cr_expect_eq(cl_prog_exit_code("something new"), 125);
	cr_expect_eq(cl_prog_exit_code(NULL), 125);
}

Test(prog, names_and_languages)
{
	cr_expect_str_eq(cl_prog_lang("pi.py"), "py");
	cr_expect_str_eq(cl_prog_lang("a.c"), "c");
	cr_expect_str_eq(cl_prog_lang("run.sh"), "sh");
	cr_expect_null(cl_prog_lang(".py"));
	cr_expect_null(cl_prog_lang("pi.pyc"));
	cr_expect_null(cl_prog_lang("Makefile"));
	cr_expect(cl_prog_name_ok("data-1_v2.csv"));
	cr_expect(!cl_prog_name_ok(".hidden"));
	cr_expect(!cl_prog_name_ok("a b"));
	cr_expect(!cl_prog_name_ok(""));
	char long_name[70];
	memset(long_name, 'a', 65);
	long_name[65] = '\0';
	cr_expect(!cl_prog_name_ok(long_name));
	long_name[64] = '\0';
	cr_expect(cl_prog_name_ok(long_name));
}

/* The description's shape from docs/PROGRAMS-API.md, bounds as reals where it writes 1e18. */
Test(kinds, options_become_checked_params)
{
	json_t *kinds = json_loads(
		"{\"kernels\":[{\"name\":\"montecarlo_pi\",\"alias\":\"pi\",\"params\":["
		"{\"name\":\"samples\",\"type\":\"integer\",\"min\":1,\"max\":1e18,\"required\":true},"
		"{\"name\":\"seed\",\"type\":\"integer\",\"min\":0,\"max\":9.2e18,\"default\":0}]},"
		"{\"name\":\"program\",\"alias\":\"program\",\"params\":["
		"{\"name\":\"combine\",\"type\":\"choice\",\"choices\":[\"concat\",\"sum\",\"min\",\"max\"]},"
		"{\"name\":\"time_s\",\"type\":\"integer\",\"min\":1,\"max\":86400},"
		"{\"name\":\"ratio\",\"type\":\"number\",\"min\":0,\"max\":1},"
		"{\"name\":\"args\",\"type\":\"strings\"}]}]}",
		0, NULL);
	cr_assert(kinds);
	char why[512], known[128];
	const json_t *pi = cl_kinds_find(kinds, "pi"), *prog = cl_kinds_find(kinds, "program");
	cr_assert(pi && prog);
	cr_expect_eq(cl_kinds_find(kinds, "montecarlo_pi"), pi);
	cr_expect_null(cl_kinds_find(kinds, "primes"));
	cl_kinds_known(kinds, known, sizeof(known));
	cr_expect_str_eq(known, "pi, program");

	json_t *params = json_object();
	cr_expect_eq(cl_kinds_check_required(pi, params, why, sizeof(why)), -1);
	cr_expect_str_eq(why, "--samples is required for pi");
	cr_expect_eq(cl_kinds_set(pi, params, "samples", "2e10", why, sizeof(why)), 0, "%s", why);
	cr_expect_eq(json_integer_value(json_object_get(params, "samples")), 20000000000LL);
	cr_expect_eq(cl_kinds_set(pi, params, "samples", "1e18", why, sizeof(why)), 0, "1e18 is the max");
	cr_expect_eq(cl_kinds_set(pi, params, "samples", "2e18", why, sizeof(why)), -1);
	cr_expect_str_eq(why, "--samples must be an integer from 1 to 1e18 (2e10 works), not '2e18'");
	cr_expect_eq(cl_kinds_set(pi, params, "samples", "0", why, sizeof(why)), -1);
	cr_expect_eq(cl_kinds_set(pi, params, "samples", "lots", why, sizeof(why)), -1);
	cr_expect_eq(cl_kinds_set(pi, params, "from", "3", why, sizeof(why)), -1);
	cr_expect_str_eq(why, "--from does not apply to pi (its parameters: --samples, --seed)");
	cr_expect_eq(cl_kinds_check_required(pi, params, why, sizeof(why)), 0);

	cr_expect_eq(cl_kinds_set(prog, params, "combine", "avg", why, sizeof(why)), -1);
	cr_expect_str_eq(why, "--combine must be one of concat, sum, min, max, not 'avg'");
	cr_expect_eq(cl_kinds_set(prog, params, "combine", "sum", why, sizeof(why)), 0);
	cr_expect_str_eq(json_string_value(json_object_get(params, "combine")), "sum");
	cr_expect_eq(cl_kinds_set(prog, params, "time-s", "60", why, sizeof(why)), 0, "- for _: %s", why);
	cr_expect_eq(json_integer_value(json_object_get(params, "time_s")), 60);
	cr_expect_eq(cl_kinds_set(prog, params, "ratio", "0.25", why, sizeof(why)), 0);
	cr_expect_eq(cl_kinds_set(prog, params, "ratio", "1.5", why, sizeof(why)), -1);
	cr_expect_eq(cl_kinds_set(prog, params, "args", "a", why, sizeof(why)), 0);
	cr_expect_eq(cl_kinds_set(prog, params, "args", "b", why, sizeof(why)), 0);
	cr_expect_eq(json_array_size(json_object_get(params, "args")), 2, "strings accumulate");
	json_decref(params);
	json_decref(kinds);

	/* Servers before the route: the three kernels as the CLI checked them. */
	json_t *legacy = cl_kinds_legacy();
	cl_kinds_known(legacy, known, sizeof(known));
	cr_expect_str_eq(known, "pi, primes, collatz");
	json_decref(legacy);
}

Test(cli_programs, refused_before_anything_is_sent, .init = setup, .fini = teardown, .timeout = 120)
{
	char out[OUT_MAX], err[OUT_MAX];
	const char *admin = login("admin", TH_ADMIN_PASSWORD);
	const char *prog = at("hello.py"), *txt = at("notes.txt"), *big = at("big.dat"), *badname = at("a b.py");
	write_file(prog, "print('hello')\n");
	write_file(txt, "not a program\n");
	write_file(badname, "print(1)\n");
	int fd = open(big, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	cr_assert(fd >= 0);
	cr_assert_eq(ftruncate(fd, (off_t)CL_PROG_FILE_MAX + 1), 0);
	close(fd);

	/* tessera run: its own failures are 125, so that a program's 1 or 2 stays the program's. */
	cr_expect_eq(cli(admin, out, err, "run", at("missing.py"), NULL), 125);
	cr_expect(strstr(err, "cannot read") && strstr(err, "missing.py") && strstr(err, "No such file"), "%s", err);
	cr_expect_eq(cli(admin, out, err, "run", txt, NULL), 125);
	cr_expect(strstr(err, "a program ends in .py"), "%s", err);
	cr_expect_eq(cli(admin, out, err, "run", prog, "--file", big, NULL), 125);
	cr_expect(strstr(err, "at most 1 MiB"), "%s", err);
	cr_expect_eq(cli(admin, out, err, "run", badname, NULL), 125);
	cr_expect(strstr(err, "cannot be a file name"), "%s", err);
	cr_expect_eq(cli(admin, out, err, "run", prog, "--file", prog, NULL), 125);
	cr_expect(strstr(err, "two files are called hello.py"), "%s", err);
	cr_expect_eq(cli(admin, out, err, "run", prog, "--units", "4", NULL), 125);
	cr_expect(strstr(err, "a run is one unit"), "%s", err);
	cr_expect_eq(cli(admin, out, err, "run", NULL), 125);
	cr_expect(strstr(err, "needs a program FILE"), "%s", err);
	cr_expect_eq(cli(admin, out, err, "run", prog, "extra", NULL), 125);
	cr_expect(strstr(err, "arguments go after --"), "%s", err);
	cr_expect_eq(cli(admin, out, err, "run", "--help", NULL), 0);
	cr_expect(strstr(out, "usage: tessera run FILE") && strstr(out, "125"), "%s", out);
	cli(admin, out, NULL, "run", txt, NULL);
	cr_expect_str_empty(out, "a refused run printed on stdout: %s", out);

	/* submit program: usage errors are 2, as for every other command. */
	cr_expect_eq(cli(admin, out, err, "submit", "program", at("missing.py"), "--space", "10", NULL), 2);
	cr_expect(strstr(err, "cannot read"), "%s", err);
	cr_expect_eq(cli(admin, out, err, "submit", "program", txt, NULL), 2);
	cr_expect_eq(cli(admin, out, err, "submit", "program", prog, "--file", big, NULL), 2);
	cr_expect_eq(cli(admin, out, err, "submit", "program", prog, "--units", "2", "--unit-size", "3", NULL), 2);
	cr_expect(strstr(err, "not both"), "%s", err);
	cr_expect_eq(cli(admin, out, err, "submit", "program", prog, "--replication", "2", "--quorum", "3", NULL), 2);
	cr_expect(strstr(err, "--quorum 3 exceeds the replication 2"), "%s", err);

	if (server_runs_programs()) {
		/* The numbers are checked against the server's program kind, before any upload. */
		cr_expect_eq(cli(admin, out, err, "run", prog, "-n", "0", NULL), 125);
		cr_expect(strstr(err, "-n must be an integer from 1"), "%s", err);
		cr_expect_eq(cli(admin, out, err, "submit", "program", prog, "-n0", NULL), 2);
		cr_expect(strstr(err, "-n must be an integer from 1"), "%s", err);
		cr_expect_eq(cli(admin, out, err, "submit", "program", prog, "--space", "100", "--units", "10",
				 "--combine", "avg", NULL), 2);
		cr_expect(strstr(err, "--combine must be one of") && strstr(err, "sum"), "%s", err);
		cr_expect_eq(cli(admin, out, err, "run", prog, "--time", "0", NULL), 125);
		cr_expect(strstr(err, "--time must be an integer"), "%s", err);
		cr_expect_eq(cli(admin, out, err, "run", prog, "--bogus", "1", NULL), 125);
		cr_expect(strstr(err, "unknown option --bogus"), "%s", err);
	} else {
		/* A server without programs says so, and nothing is uploaded. */
		cr_expect_eq(cli(admin, out, err, "run", prog, NULL), 125);
		cr_expect(strstr(err, "runs no programs"), "%s", err);
	}
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM jobs"), 0, "a refused command made a job");

	/* output: a usage error, an unknown job. */
	cr_expect_eq(cli(admin, out, err, "output", "x", NULL), 2);
	cr_expect_eq(cli(admin, out, err, "output", "5", "--stderr", NULL), 2);
	cr_expect(strstr(err, "--stderr goes with --unit"), "%s", err);
	cr_expect_eq(cli(admin, out, err, "output", "999", NULL), 1);
	cr_expect_str_empty(out);
}

Test(cli_programs, kernels_come_from_the_server, .init = setup, .fini = teardown, .timeout = 60)
{
	char out[OUT_MAX], err[OUT_MAX];
	const char *admin = login("admin", TH_ADMIN_PASSWORD);
	cr_assert_eq(cli(admin, out, err, "kernels", NULL), 0, "%s", err);
	cr_expect(strstr(out, "pi (montecarlo_pi)") && strstr(out, "--samples"), "%s", out);
	cr_expect(strstr(out, "primes (prime_count)") && strstr(out, "collatz"), "%s", out);
	cr_assert_eq(cli(admin, out, err, "kernels", "--json", NULL), 0, "%s", err);
	json_t *j = json_loads(out, 0, NULL);
	cr_assert(j, "kernels --json: %s", out);
	cr_expect(cl_kinds_find(j, "pi") && cl_kinds_find(j, "prime_count"), "%s", out);
	json_decref(j);
	if (server_runs_programs()) {
		cli(admin, out, err, "kernels", NULL);
		/* The program kind in the command line's words. */
		cr_expect(strstr(out, "program") && strstr(out, "FILE") && strstr(out, "-n N") &&
				  strstr(out, "--file FILE") && strstr(out, "-- ARGS"),
			  "%s", out);
	}
	/* Unknown kernels and options, with the known ones named. */
	cr_expect_eq(cli(admin, out, err, "submit", "fft", "--n", "3", NULL), 2);
	cr_expect(strstr(err, "unknown kernel 'fft' (known: pi, primes, collatz"), "%s", err);
	cr_expect_eq(cli(admin, out, err, "submit", "pi", "--samples", "1e6", "--from", "3", NULL), 2);
	cr_expect(strstr(err, "--from does not apply to pi"), "%s", err);
	cr_expect_eq(cli(admin, out, err, "submit", "pi", NULL), 2);
	cr_expect(strstr(err, "--samples is required for pi"), "%s", err);
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM jobs"), 0);
	/* And as before: the id alone on stdout. */
	cr_assert_eq(cli(admin, out, err, "submit", "pi", "--samples", "1e6", "--seed", "7", "--units", "4", NULL), 0,
		     "%s", err);
	cr_expect_eq(atoll(out), 1, "%s", out);
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM jobs"), 1);
}

Test(cli_programs, the_programs_grant, .init = setup, .fini = teardown, .timeout = 120)
{
	char out[OUT_MAX], err[OUT_MAX], line[512];
	if (!server_runs_programs())
		cr_skip_test("the server has no program kind yet (GET /api/v1/kernels)");
	const char *admin = login("admin", TH_ADMIN_PASSWORD);
	cr_assert_eq(cli(admin, out, err, "users", "add", "bob", NULL), 0, "%s", err);
	const char *bob = login("bob", "bob-password-1");
	const char *prog = at("hello.py");
	write_file(prog, "print('hello')\n");

	/* Without the grant: the server's words, with the command that would allow it. */
	cr_expect_eq(cli(bob, out, err, "run", prog, NULL), 125);
	cr_expect(strstr(err, "user 'bob' may not run programs") && strstr(err, "tessera users grant bob programs"),
		  "%s", err);
	cr_expect_eq(cli(bob, out, err, "submit", "program", prog, "--space", "10", "--units", "2", NULL), 1);
	cr_expect(strstr(err, "may not run programs"), "%s", err);
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM jobs"), 0);
	cr_expect_eq(cli(bob, out, err, "users", "grant", "bob", "programs", NULL), 1, "a user granted itself");
	cr_expect(strstr(err, "not allowed"), "%s", err);

	cr_expect_eq(cli(admin, out, err, "users", "grant", "bob", "programs", NULL), 0, "%s", err);
	cr_expect(strstr(out, "user bob may now run programs"), "%s", out);
	cr_expect_eq(cli(admin, out, err, "users", "list", NULL), 0);
	const char *at_bob = strstr(out, " bob ");
	cr_assert(at_bob, "%s", out);
	snprintf(line, sizeof(line), "%.*s", (int)strcspn(at_bob, "\n"), at_bob);
	cr_expect(strstr(line, "programs"), "the grant is not listed: %s", out);
	/* With it, bob's program job is taken (it waits: no node runs programs here). */
	cr_expect_eq(cli(bob, out, err, "submit", "program", prog, "--space", "10", "--units", "2", NULL), 0, "%s",
		     err);
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM jobs"), 1);

	cr_expect_eq(cli(admin, out, err, "users", "revoke", "bob", "programs", NULL), 0, "%s", err);
	cr_expect(strstr(out, "user bob may no longer run programs"), "%s", out);
	cr_expect_eq(cli(bob, out, err, "run", prog, NULL), 125);
	cr_expect(strstr(err, "may not run programs"), "%s", err);
	cr_expect_eq(cli(admin, out, err, "users", "grant", "nobody", "programs", NULL), 1);
	cr_expect(strstr(err, "no user 'nobody'"), "%s", err);
	cr_expect_eq(cli(admin, out, err, "users", "grant", "bob", NULL), 2);
	cr_expect_eq(cli(admin, out, err, "users", "grant", "bob", "Root!", NULL), 2);
}

/* A node that runs programs (tessera-client run --programs), or a skip where there is none. */
static pid_t start_program_node(void)
{
	char help[OUT_MAX], token[160], state[400], out[OUT_MAX];
	char *hargv[] = {(char *)th_bin("tessera-client"), "run", "--help", NULL};
	th_run(hargv, NULL, 10, help, sizeof(help));
	if (!strstr(help, "--programs") || !server_runs_programs() || access("/usr/bin/bwrap", X_OK) != 0)
		return 0;
	th_enroll_token(&srv, 1, token, sizeof(token));
	snprintf(state, sizeof(state), "%s/node", srv.dir);
	char *eargv[] = {(char *)th_bin("tessera-client"), "enroll", srv.url, token, "--state", state,
			 "--name", "prog-node", "--no-bench", NULL};
	cr_assert_eq(th_run(eargv, NULL, 30, out, sizeof(out)), 0, "%s", out);
	/* 4 slots whatever the cores: the mpi run takes 3 ranks (mpirun oversubscribes). */
	char *rargv[] = {(char *)th_bin("tessera-client"), "run", "--state", state, "--programs", "--slots", "4", NULL};
	return th_spawn(rargv, NULL, at("node.log"));
}

Test(cli_programs, run_prints_the_output_and_exits_with_the_status, .init = setup, .fini = teardown,
     .timeout = 300)
{
	char out[OUT_MAX], err[OUT_MAX], example[400];
	pid_t node = start_program_node();
	if (!node)
		cr_skip_test("no node that runs programs here (tessera-client run --programs, bwrap)");
	const char *admin = login("admin", TH_ADMIN_PASSWORD);

	/* mpi4py on 3 processes: every rank's part in the output. */
	snprintf(example, sizeof(example), "%s/examples/mpi_pi.py", TESSERA_SOURCE_DIR);
	const char *mpi = at("ranks.py");
	write_file(mpi, "from mpi4py import MPI\n"
			"c = MPI.COMM_WORLD\n"
			"parts = c.gather(c.Get_rank() * 10, root=0)\n"
			"if c.Get_rank() == 0:\n"
			"    print('size', c.Get_size(), 'parts', parts)\n");
	cr_expect_eq(cli(admin, out, err, "run", mpi, "-n", "3", NULL), 0, "%s", err);
	cr_expect_str_eq(out, "size 3 parts [0, 10, 20]\n", "stderr: %s", err);
	if (access(example, R_OK) == 0) {
		cr_expect_eq(cli(admin, out, err, "run", example, "-n", "3", NULL), 0, "%s", err);
		cr_expect(strstr(out, "3"), "examples/mpi_pi.py -n 3 printed: %s", out);
	}

	/* stdout and stderr apart, the arguments passed, the status as the exit status. */
	const char *three = at("three.sh");
	write_file(three, "echo \"out $1 $2\"\necho 'to stderr' >&2\nexit 3\n");
	cr_expect_eq(cli(admin, out, err, "run", three, "--", "a b", "-n", NULL), 3, "%s", err);
	cr_expect_str_eq(out, "out a b -n\n");
	cr_expect(strstr(err, "to stderr\n"), "%s", err);
	const char *zero = at("ok.sh");
	write_file(zero, "printf 'no newline'\n");
	cr_expect_eq(cli(admin, out, err, "run", zero, NULL), 0, "%s", err);
	cr_expect_str_eq(out, "no newline");

	/* A C compile error: 126, with the compiler's words on stderr. */
	const char *bad = at("bad.c");
	write_file(bad, "int main(void) { return undeclared_thing; }\n");
	cr_expect_eq(cli(admin, out, err, "run", bad, NULL), 126, "%s", err);
	cr_expect(strstr(err, "undeclared_thing") && strstr(err, "compile error"), "%s", err);

	/* An extra file is in the work directory. */
	const char *data = at("data.txt"), *cat = at("cat.sh");
	write_file(data, "42\n");
	write_file(cat, "cat data.txt\n");
	cr_expect_eq(cli(admin, out, err, "run", cat, "--file", data, NULL), 0, "%s", err);
	cr_expect_str_eq(out, "42\n");

	/* status and output of a finished run. */
	cr_expect_eq(cli(admin, out, err, "jobs", NULL), 0);
	cr_expect_eq(cli(admin, out, err, "output", "1", NULL), 0, "%s", err);
	cr_expect_str_eq(out, "size 3 parts [0, 10, 20]\n");
	cr_expect_eq(cli(admin, out, err, "status", "1", NULL), 0, "%s", err);
	cr_expect(strstr(out, "status: ok") && strstr(out, "ranks.py, 3 processes"), "%s", out);
	cr_expect_eq(th_proc_stop(node, 10), 0);
}
