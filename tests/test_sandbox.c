/* cl_sandbox with real bwrap and real mpirun: programs run, hostile ones are contained with
 * their reason (and leave nothing behind: /proc is searched for their marker), and the next
 * program still runs. Works as root (the sandbox then runs as 65534) and as another user. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cl_sandbox.h"
#include "ts_util.h"

static char top[128];  /* the test's temp dir: work/ and, beside it, what must stay hidden */
static char work[160];
static char mark[80];  /* TESSERA_TEST_MARK=...: how /proc tells this test's processes */
static const char *env_default[4];

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void setup(void)
{
	snprintf(top, sizeof(top), "/tmp/tessera-sandbox-test-XXXXXX");
	cr_assert(mkdtemp(top));
	snprintf(work, sizeof(work), "%s/work", top);
	cr_assert_eq(mkdir(work, 0755), 0);
	unsigned char r[6];
	char hex[13];
	cr_assert_eq(ts_random(r, sizeof(r)), TS_OK);
	ts_hex(r, sizeof(r), hex);
	snprintf(mark, sizeof(mark), "TESSERA_TEST_MARK=%s", hex);
	env_default[0] = mark;
	env_default[1] = NULL;
}

static void teardown(void)
{
	nftw(top, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void put(const char *dir, const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	cr_assert_eq(ts_write_file(path, text, strlen(text), 0644), TS_OK, "write %s", path);
}

static cl_sandbox_spec spec_for(const char *main)
{
	return (cl_sandbox_spec){.work_dir = work, .main = main, .env = env_default, .np = 1,
				 .wall_s = 30, .cpu_s = 30, .memory_mb = 512, .nproc = 64,
				 .file_mb = 16, .stdout_max = 256 * 1024, .stderr_max = 64 * 1024};
}

static void run_ok(const cl_sandbox_spec *spec, cl_sandbox_result *res)
{
	char why[256] = "";
	ts_err e = cl_sandbox_run(spec, res, NULL, why, sizeof(why));
	cr_assert_eq(e, TS_OK, "the sandbox did not run %s: %s", spec->main, why);
}

/* Processes still alive (not zombies) whose environment holds this test's marker. */
static int marked_processes(void)
{
	int n = 0;
	DIR *d = opendir("/proc");
	struct dirent *e;
	cr_assert(d);
	while ((e = readdir(d))) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9' || atoi(e->d_name) == getpid())
			continue;
		char path[64], buf[1 << 16];
		snprintf(path, sizeof(path), "/proc/%.20s/environ", e->d_name);
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		ssize_t len = read(fd, buf, sizeof(buf));
		close(fd);
		if (len > 0 && memmem(buf, (size_t)len, mark, strlen(mark)))
			n++;
	}
	closedir(d);
	return n;
}

/* What each hostile test ends with: nothing of it left, and the next program runs fine. */
static void nothing_left_and_next_runs(void)
{
	cr_assert_eq(marked_processes(), 0, "processes of the program are left behind");
	put(work, "next.sh", "echo next; exit 0\n");
	cl_sandbox_spec spec = spec_for("next.sh");
	cl_sandbox_result res;
	run_ok(&spec, &res);
	cr_assert_str_eq(res.status, "ok");
	cr_assert_str_eq((char *)res.out, "next\n");
	cl_sandbox_result_free(&res);
}

TestSuite(sandbox, .init = setup, .fini = teardown, .timeout = 60);

/* --- The pure parts --- */

Test(sandbox, languages_from_the_main_files_name)
{
	cr_assert_eq(cl_sandbox_lang_of("pi.py"), CL_SANDBOX_LANG_PY);
	cr_assert_eq(cl_sandbox_lang_of("hello.c"), CL_SANDBOX_LANG_C);
	cr_assert_eq(cl_sandbox_lang_of("run-1_2.sh"), CL_SANDBOX_LANG_SH);
	const char *bad[] = {"", ".py", ".x.py", "a/b.py", "../x.sh", "x.pl", "x.PY", "x y.sh", "py",
			     "x.py\n"};
	for (size_t i = 0; i < TS_ARRAY_LEN(bad); i++)
		cr_assert_eq(cl_sandbox_lang_of(bad[i]), CL_SANDBOX_LANG_NONE, "'%s'", bad[i]);
}

Test(sandbox, hostfile_slots)
{
	cr_assert_eq(cl_sandbox_hostfile_slots("localhost slots=3\n"), 3);
	cr_assert_eq(cl_sandbox_hostfile_slots("# boards\npi1 slots=4\npi2 slots=4 max_slots=8\n\n"
					       "pi3\n  # off\n"),
		     9);
	cr_assert_eq(cl_sandbox_hostfile_slots("# nothing\n\n"), 0);
	cr_assert_eq(cl_sandbox_hostfile_slots("pi1 slots=x\n"), -1);
	cr_assert_eq(cl_sandbox_hostfile_slots("pi1 slots=0\n"), -1);
}

Test(sandbox, status_from_how_it_ended)
{
	static const struct {
		cl_sandbox_end end;
		const char *tail, *status;
		int code;
	} cases[] = {
		{{.ran = 1, .exit_code = 0}, "", "ok", 0},
		{{.ran = 1, .exit_code = 3}, "", "exit status 3", 3},
		{{.timed_out = 1, .exit_code = 137}, "MemoryError", "killed: time limit", -1},
		{{.ran = 1, .exit_code = 128 + 24}, "", "killed: cpu limit", -1},
		{{.ran = 1, .exit_code = 128 + 9, .cpu_used_s = 5, .cpu_limit_s = 5}, "",
		 "killed: cpu limit", -1},
		{{.ran = 1, .exit_code = 128 + 9, .cpu_used_s = 1, .cpu_limit_s = 5}, "",
		 "killed: signal 9", -1},
		{{.ran = 1, .exit_code = 128 + 11}, "", "killed: signal 11", -1},
		{{.ran = 1, .exit_code = 1}, "Traceback...\nMemoryError\n", "killed: memory", -1},
		{{.ran = 1, .exit_code = 1}, "malloc: Cannot allocate memory\n", "killed: memory", -1},
		{{.ran = 1, .exit_code = 128 + 6}, "what():  std::bad_alloc", "killed: memory", -1},
		{{.ran = 1, .exit_code = 0}, "MemoryError (handled)", "ok", 0},
		{{.ran = 1, .exit_code = 2}, "no such file", "exit status 2", 2},
	};
	for (size_t i = 0; i < TS_ARRAY_LEN(cases); i++) {
		cl_sandbox_end end = cases[i].end;
		end.err_tail = cases[i].tail;
		end.err_tail_len = strlen(cases[i].tail);
		char status[64];
		int code = 99;
		cl_sandbox_classify(&end, status, sizeof(status), &code);
		cr_assert_str_eq(status, cases[i].status, "case %zu", i);
		cr_assert_eq(code, cases[i].code, "case %zu", i);
	}
}

static int has_arg(char **argv, const char *a, const char *b)
{
	for (char **p = argv; *p; p++)
		if (strcmp(*p, a) == 0 && (!b || (p[1] && strcmp(p[1], b) == 0)))
			return 1;
	return 0;
}

Test(sandbox, the_bwrap_command_line)
{
	cl_sandbox_host host;
	cl_sandbox_host_scan(&host);
	cl_sandbox_spec spec = spec_for("pi.py");
	const char *args[] = {"--x", "2", NULL};
	spec.argv = args;
	spec.np = 3;
	char **v = cl_sandbox_argv(&spec, &host, CL_SANDBOX_RUN, work, spec.hostfile);
	cr_assert(v);
	cr_assert_str_eq(v[0], CL_SANDBOX_BWRAP);
	cr_assert(has_arg(v, "--unshare-all", NULL) && has_arg(v, "--unshare-user", NULL));
	cr_assert(!has_arg(v, "--share-net", NULL), "one machine: loopback only");
	cr_assert(has_arg(v, "--die-with-parent", NULL) && has_arg(v, "--new-session", NULL));
	cr_assert(has_arg(v, "--cap-drop", "ALL") && has_arg(v, "--clearenv", NULL));
	cr_assert(has_arg(v, "--size", "16777216") && has_arg(v, "--tmpfs", "/tmp"));
	cr_assert(has_arg(v, "--remount-ro", "/") && has_arg(v, "--chdir", "/work"));
	cr_assert(has_arg(v, "--setenv", "HOME") && has_arg(v, "OMPI_MCA_btl", "self,vader"));
	cr_assert(has_arg(v, "--setenv", "TESSERA_TEST_MARK"));
	cr_assert(has_arg(v, "--nproc=64:64", NULL) && has_arg(v, "-np", "3"));
	cr_assert(has_arg(v, CL_SANDBOX_PYTHON3, "./pi.py") && has_arg(v, "./pi.py", "--x"));
	for (char **p = v; *p; p++)
		cr_assert(!strstr(*p, "/root") && (!strstr(*p, top) || strcmp(p[-1], "--bind") == 0),
			  "'%s' shows the host", *p);
	cl_sandbox_argv_free(v);

	spec.hostfile = "/etc/hosts";
	v = cl_sandbox_argv(&spec, &host, CL_SANDBOX_RUN, work, spec.hostfile);
	cr_assert(has_arg(v, "--share-net", NULL), "a cluster's ranks need the network");
	cr_assert(has_arg(v, "--hostfile", "/etc/tessera/hostfile"));
	cr_assert(!has_arg(v, "OMPI_MCA_btl", "self,vader"));
	cl_sandbox_argv_free(v);

	spec = spec_for("-x.c");
	v = cl_sandbox_argv(&spec, &host, CL_SANDBOX_COMPILE, work, NULL);
	cr_assert(has_arg(v, "-o", CL_SANDBOX_PROG) && has_arg(v, "./-x.c", "-lm"));
	cl_sandbox_argv_free(v);
}

Test(sandbox, refuses_a_bad_spec)
{
	cl_sandbox_spec spec = spec_for("x.rb");
	cl_sandbox_result res;
	char why[256];
	cr_assert_eq(cl_sandbox_run(&spec, &res, NULL, why, sizeof(why)), TS_ERR_BAD_REQUEST);
	cr_assert(strstr(why, "x.rb"), "%s", why);
	spec = spec_for("x.sh");
	const char *env[] = {"1BAD=x", NULL};
	spec.env = env;
	cr_assert_eq(cl_sandbox_run(&spec, &res, NULL, why, sizeof(why)), TS_ERR_BAD_REQUEST);
	cl_sandbox_result_free(&res);
}

/* --- The probe --- */

Test(sandbox, probe_says_what_runs_here)
{
	cl_sandbox_caps caps;
	cr_assert_eq(cl_sandbox_probe(NULL, &caps), TS_OK);
	cr_assert(caps.ok, "%s", caps.why);
	cr_assert(caps.bwrap[0] >= '0' && caps.bwrap[0] <= '9' && strchr(caps.bwrap, '.'), "%s",
		  caps.bwrap);
	cr_assert(caps.python3[0] == '3', "%s", caps.python3);
	cr_assert(caps.mpi4py[0], "Debian's python3-mpi4py");
	cr_assert(strstr(caps.mpicc, "Open MPI"), "%s", caps.mpicc);
	cr_assert_eq(caps.slots, (int)sysconf(_SC_NPROCESSORS_ONLN));
	json_t *j = cl_sandbox_caps_json(&caps);
	char *s = json_dumps(j, JSON_COMPACT);
	cr_assert(strstr(s, "\"langs\":[\"py\",\"c\",\"sh\"]") && strstr(s, "\"sandbox\":\"bwrap "),
		  "%s", s);
	cr_log_info("probe: %s", s);
	free(s);
	json_decref(j);

	put(top, "hostfile", "localhost slots=3\n");
	char hf[256];
	snprintf(hf, sizeof(hf), "%s/hostfile", top);
	cr_assert_eq(cl_sandbox_probe(hf, &caps), TS_OK);
	cr_assert_eq(caps.slots, 3);
	put(top, "hostfile", "localhost slots=many\n");
	cr_assert_eq(cl_sandbox_probe(hf, &caps), TS_ERR_BAD_REQUEST);
	cr_assert(strstr(caps.why, "slots"), "%s", caps.why);

	caps.ok = 0;
	cr_assert_null(cl_sandbox_caps_json(&caps), "a node that cannot sandbox runs no program");
}

/* --- Programs that behave --- */

Test(sandbox, exit_status_args_and_environment)
{
	setenv("TESSERA_SECRET_OF_THE_NODE", "s3cret", 1);
	put(work, "env.sh",
	    "echo \"args:$#:$1:$2\"\n"
	    "echo \"unit:$TESSERA_UNIT_START:$TESSERA_UNIT_COUNT:$TESSERA_SPACE\"\n"
	    "echo \"home:$HOME:cwd:$(pwd):path:$PATH\"\n"
	    "env | grep -c SECRET_OF_THE_NODE\n"
	    "echo oops >&2\n"
	    "exit 3\n");
	cl_sandbox_spec spec = spec_for("env.sh");
	const char *args[] = {"one", "two words", NULL};
	const char *env[] = {mark, "TESSERA_UNIT_START=100", "TESSERA_UNIT_COUNT=50",
			     "TESSERA_SPACE=1000", NULL};
	spec.argv = args;
	spec.env = env;
	cl_sandbox_result res;
	run_ok(&spec, &res);
	cr_assert_str_eq(res.status, "exit status 3");
	cr_assert_eq(res.exit_code, 3);
	cr_assert_str_eq((char *)res.out, "args:2:one:two words\n"
					  "unit:100:50:1000\n"
					  "home:/work:cwd:/work:path:/usr/bin:/bin\n"
					  "0\n");
	cr_assert_str_eq((char *)res.err, "oops\n");
	cr_assert(!res.out_truncated && !res.err_truncated);
	cl_sandbox_result_free(&res);
}

static int cmp_lines(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The output's lines sorted (ranks print in any order), joined by '|'. */
static void sorted_lines(const char *text, char *out, size_t cap)
{
	char copy[4096], *lines[64];
	size_t n = 0, len = 0;
	snprintf(copy, sizeof(copy), "%s", text);
	for (char *save = NULL, *l = strtok_r(copy, "\n", &save); l && n < 64;
	     l = strtok_r(NULL, "\n", &save))
		lines[n++] = l;
	qsort(lines, n, sizeof(*lines), cmp_lines);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? "|" : "", lines[i]);
}

Test(sandbox, mpi4py_on_three_processes)
{
	put(work, "ranks.py",
	    "from mpi4py import MPI\n"
	    "c = MPI.COMM_WORLD\n"
	    "total = c.reduce(c.Get_rank() + 1, op=MPI.SUM, root=0)\n"
	    "print('rank %d of %d' % (c.Get_rank(), c.Get_size()), flush=True)\n"
	    "if c.Get_rank() == 0:\n"
	    "    print('sum', total, flush=True)\n");
	cl_sandbox_spec spec = spec_for("ranks.py");
	spec.np = 3;
	cl_sandbox_result res;
	run_ok(&spec, &res);
	cr_assert_str_eq(res.status, "ok", "%s", res.err);
	char lines[1024];
	sorted_lines((char *)res.out, lines, sizeof(lines));
	cr_assert_str_eq(lines, "rank 0 of 3|rank 1 of 3|rank 2 of 3|sum 6", "%s", res.out);
	cr_log_info("mpi4py -np 3: %.2f s", res.wall_s);
	cl_sandbox_result_free(&res);
}

Test(sandbox, c_mpi_compiled_and_run_on_three_ranks)
{
	put(work, "hello.c",
	    "#include <mpi.h>\n#include <stdio.h>\n#include <math.h>\n"
	    "int main(int argc, char **argv) {\n"
	    "  int rank, size, part, parts[64];\n"
	    "  MPI_Init(&argc, &argv);\n"
	    "  MPI_Comm_rank(MPI_COMM_WORLD, &rank);\n"
	    "  MPI_Comm_size(MPI_COMM_WORLD, &size);\n"
	    "  part = (int)sqrt((double)((rank + 1) * (rank + 1) * 100));\n"
	    "  MPI_Gather(&part, 1, MPI_INT, parts, 1, MPI_INT, 0, MPI_COMM_WORLD);\n"
	    "  if (rank == 0) { printf(\"%d ranks, %s:\", size, argc > 1 ? argv[1] : \"-\");\n"
	    "    for (int i = 0; i < size; i++) printf(\" %d\", parts[i]);\n"
	    "    printf(\"\\n\"); }\n"
	    "  MPI_Finalize();\n  return 0;\n}\n");
	cl_sandbox_spec spec = spec_for("hello.c");
	const char *args[] = {"arg", NULL};
	spec.argv = args;
	spec.np = 3;
	cl_sandbox_result res;
	run_ok(&spec, &res);
	cr_assert_str_eq(res.status, "ok", "%s", res.err);
	cr_assert_str_eq((char *)res.out, "3 ranks, arg: 10 20 30\n");
	cr_log_info("mpicc + mpirun -np 3: %.2f s", res.wall_s);
	cl_sandbox_result_free(&res);

	spec.np = 1; /* MPI's singleton init, without mpirun */
	run_ok(&spec, &res);
	cr_assert_str_eq(res.status, "ok", "%s", res.err);
	cr_assert_str_eq((char *)res.out, "1 ranks, arg: 10\n");
	cl_sandbox_result_free(&res);
}

Test(sandbox, c_compile_error_with_the_compilers_message)
{
	put(work, "broken.c", "int main(void) { return undeclared_thing; }\n");
	cl_sandbox_spec spec = spec_for("broken.c");
	cl_sandbox_result res;
	run_ok(&spec, &res);
	cr_assert_str_eq(res.status, "compile error");
	cr_assert_neq(res.exit_code, 0);
	cr_assert(strstr((char *)res.err, "undeclared_thing") && strstr((char *)res.err, "error"),
		  "%s", res.err);
	cr_assert_eq(res.out_len, 0);
	cl_sandbox_result_free(&res);
	nothing_left_and_next_runs();
}

Test(sandbox, a_hostfile_naming_localhost)
{
	put(top, "hostfile", "localhost slots=2\n");
	char hf[256];
	snprintf(hf, sizeof(hf), "%s/hostfile", top);
	put(work, "ranks.py",
	    "from mpi4py import MPI\nprint('rank', MPI.COMM_WORLD.Get_rank(), flush=True)\n");
	cl_sandbox_spec spec = spec_for("ranks.py");
	spec.np = 2;
	spec.hostfile = hf;
	cl_sandbox_result res;
	run_ok(&spec, &res);
	cr_assert_str_eq(res.status, "ok", "%s", res.err);
	char lines[256];
	sorted_lines((char *)res.out, lines, sizeof(lines));
	cr_assert_str_eq(lines, "rank 0|rank 1");
	cl_sandbox_result_free(&res);
}

/* --- Hostile programs --- */

Test(sandbox, fork_bomb)
{
	/* Every process forks for ever: the nproc limit holds them, the wall time ends them. */
	put(work, "bomb.c", "#include <unistd.h>\nint main(void) { for (;;) fork(); }\n");
	cl_sandbox_spec spec = spec_for("bomb.c");
	spec.nproc = 32;
	spec.wall_s = 4;
	cl_sandbox_result res;
	run_ok(&spec, &res);
	cr_assert_str_eq(res.status, "killed: time limit");
	cr_assert_eq(res.exit_code, -1);
	cl_sandbox_result_free(&res);
	nothing_left_and_next_runs();

	/* How many it got: fewer than nproc (its init and itself count). */
	put(work, "count.py",
	    "import os, time\nn = 0\ntry:\n"
	    "    while True:\n"
	    "        if os.fork() == 0:\n"
	    "            time.sleep(1000)\n"
	    "            os._exit(0)\n"
	    "        n += 1\n"
	    "except OSError as e:\n"
	    "    print(n, e.errno)\n");
	spec = spec_for("count.py");
	spec.nproc = 20;
	run_ok(&spec, &res);
	cr_assert_str_eq(res.status, "ok", "%s", res.err);
	cr_assert_str_eq((char *)res.out, "18 11\n", "forks and EAGAIN"); /* 20 - init - itself */
	cl_sandbox_result_free(&res);
	nothing_left_and_next_runs();
}

static void *count_forks(void *arg)
{
	cl_sandbox_spec spec = spec_for("count.py");
	spec.nproc = 20;
	cl_sandbox_result *res = arg;
	char why[256];
	if (cl_sandbox_run(&spec, res, NULL, why, sizeof(why)))
		snprintf(res->status, sizeof(res->status), "%.60s", why);
	return NULL;
}

Test(sandbox, nproc_is_counted_per_sandbox)
{
	/* Two at once (the same uid when root): each gets its own nproc, as alone. */
	put(work, "count.py",
	    "import os, time\nn = 0\ntry:\n"
	    "    while True:\n"
	    "        if os.fork() == 0:\n"
	    "            time.sleep(1000)\n"
	    "            os._exit(0)\n"
	    "        n += 1\n"
	    "        time.sleep(0.01)\n"
	    "except OSError as e:\n"
	    "    print(n, e.errno)\n");
	cl_sandbox_result res[2];
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, count_forks, &res[i]), 0);
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		cr_assert_str_eq(res[i].status, "ok", "%s", res[i].err);
		cr_assert_str_eq((char *)res[i].out, "18 11\n");
		cl_sandbox_result_free(&res[i]);
	}
	nothing_left_and_next_runs();
}

Test(sandbox, endless_loop_and_cpu_limit)
{
	put(work, "loop.sh", "while :; do :; done\n");
	cl_sandbox_spec spec = spec_for("loop.sh");
	spec.wall_s = 2;
	cl_sandbox_result res;
	run_ok(&spec, &res);
	cr_assert_str_eq(res.status, "killed: time limit");
	cr_assert(res.wall_s >= 2);
	cl_sandbox_result_free(&res);
	nothing_left_and_next_runs();

	put(work, "spin.py", "while True:\n    pass\n");
	spec = spec_for("spin.py");
	spec.cpu_s = 1;
	run_ok(&spec, &res);
	cr_assert_str_eq(res.status, "killed: cpu limit");
	cl_sandbox_result_free(&res);

	/* One that ignores SIGXCPU meets the hard limit's SIGKILL a second later. */
	put(work, "stubborn.py",
	    "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass\n");
	spec = spec_for("stubborn.py");
	spec.cpu_s = 1;
	run_ok(&spec, &res);
	cr_assert_str_eq(res.status, "killed: cpu limit");
	cl_sandbox_result_free(&res);
	nothing_left_and_next_runs();
}

Test(sandbox, ten_gigabytes)
{
	put(work, "big.py", "b = bytearray(10 * 1024 ** 3)\nprint(len(b))\n");
	cl_sandbox_spec spec = spec_for("big.py");
	spec.memory_mb = 256;
	cl_sandbox_result res;
	run_ok(&spec, &res);
	cr_assert_str_eq(res.status, "killed: memory", "%s", res.err);
	cr_assert(strstr((char *)res.err, "MemoryError"));
	cl_sandbox_result_free(&res);

	put(work, "big.c",
	    "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n"
	    "int main(void) { size_t n = 10UL << 30; char *p = malloc(n);\n"
	    "  if (!p) { perror(\"malloc\"); return 1; }\n"
	    "  memset(p, 1, n); printf(\"%d\\n\", p[n - 1]); return 0; }\n");
	spec = spec_for("big.c");
	spec.memory_mb = 256;
	run_ok(&spec, &res);
	cr_assert_str_eq(res.status, "killed: memory", "%s", res.err);
	cl_sandbox_result_free(&res);

	/* Through mpirun too: the rank's MemoryError ends the job. */
	spec = spec_for("big.py");
	spec.memory_mb = 256;
	spec.np = 2;
	run_ok(&spec, &res);
	cr_assert_str_eq(res.status, "killed: memory", "%s", res.err);
	cl_sandbox_result_free(&res);
	nothing_left_and_next_runs();
}

Test(sandbox, cannot_read_the_nodes_files)
{
	/* The node's state dir with its token, the server's data dir, beside the work dir. */
	char dir[256];
	snprintf(dir, sizeof(dir), "%s/state", top);
	cr_assert_eq(mkdir(dir, 0700), 0);
	put(dir, "node.json", "{\"node_token\":\"tsn_TOKEN_THAT_MUST_NOT_LEAK\"}\n");
	snprintf(dir, sizeof(dir), "%s/data", top);
	cr_assert_eq(mkdir(dir, 0700), 0);
	put(dir, "tessera.db", "SERVER_DATA_THAT_MUST_NOT_LEAK\n");
	char script[4096];
	snprintf(script, sizeof(script),
		 "for f in %s/state/node.json %s/data/tessera.db %s/state %s /root /root/.bashrc "
		 "/home /etc/shadow /etc/passwd /var /run /sys/class/net /proc/1/root/etc/hostname; do\n"
		 "  if cat \"$f\" 2>/dev/null || ls \"$f\" 2>/dev/null; then echo \"SEEN $f\"; "
		 "else echo \"hidden $f\"; fi\n"
		 "done\n"
		 "echo pids: $(ls /proc | grep -c '^[0-9]')\n"
		 "grep -rl 'MUST_NOT''_LEAK' / 2>/dev/null --exclude-dir=proc --exclude-dir=usr "
		 "--exclude-dir=dev | sed 's/^/FOUND /'\n"
		 "exit 0\n",
		 top, top, top, top);
	put(work, "peek.sh", script);
	cl_sandbox_spec spec = spec_for("peek.sh");
	cl_sandbox_result res;
	run_ok(&spec, &res);
	cr_assert_str_eq(res.status, "ok");
	const char *out = (char *)res.out;
	cr_assert(!strstr(out, "SEEN") && !strstr(out, "FOUND"), "%s", out);
	cr_assert(strstr(out, "hidden /root\n") && strstr(out, "/state/node.json\n"), "%s", out);
	int pids = -1;
	const char *p = strstr(out, "pids: ");
	cr_assert(p && sscanf(p, "pids: %d", &pids) == 1 && pids < 10,
		  "its /proc shows its own processes only: %s", out);
	cl_sandbox_result_free(&res);
	nothing_left_and_next_runs();
}

Test(sandbox, cannot_write_outside_its_work_dir)
{
	put(work, "write.sh",
	    "for f in /x /usr/x /etc/x /bin/x /proc/x /dev/x /work/../x; do\n"
	    "  if echo bad > \"$f\" 2>/dev/null; then echo \"WROTE $f\"; else echo \"refused $f\"; fi\n"
	    "done\n"
	    "echo ok > /tmp/t && echo ok > /dev/shm/t && echo ok > /work/mine && echo written\n"
	    "dd if=/dev/zero of=/tmp/fill bs=1M count=64 2>/dev/null; ls -l /tmp/fill | awk '{print $5}'\n"
	    "echo fine > /dev/null && echo devnull\n");
	cl_sandbox_spec spec = spec_for("write.sh");
	spec.file_mb = 4;
	cl_sandbox_result res;
	run_ok(&spec, &res);
	const char *out = (char *)res.out;
	cr_assert(!strstr(out, "WROTE"), "%s", out);
	cr_assert(strstr(out, "refused /usr/x") && strstr(out, "refused /work/../x"), "%s", out);
	const char *w = strstr(out, "written\n");
	long fill = 0;
	cr_assert(w && sscanf(w, "written\n%ld", &fill) == 1 && fill > 0 && fill <= 4 << 20,
		  "tmpfs and file size capped: %s", out);
	cr_assert(strstr(out, "devnull\n"), "%s", out);
	char path[256];
	snprintf(path, sizeof(path), "%s/mine", work);
	cr_assert_eq(access(path, F_OK), 0, "its work dir is its own");
	snprintf(path, sizeof(path), "%s/x", top);
	cr_assert_neq(access(path, F_OK), 0);
	cl_sandbox_result_free(&res);
	nothing_left_and_next_runs();
}

Test(sandbox, cannot_connect_anywhere)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	cr_assert(s >= 0 && bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(s, 8) == 0);
	cr_assert_eq(getsockname(s, (struct sockaddr *)&a, &alen), 0);
	char script[2048];
	snprintf(script, sizeof(script),
		 "import socket\n"
		 "for host, port in [('127.0.0.1', %d), ('1.1.1.1', 53), ('10.0.0.1', 80)]:\n"
		 "    try:\n"
		 "        socket.create_connection((host, port), timeout=2)\n"
		 "        print('CONNECTED', host)\n"
		 "    except OSError as e:\n"
		 "        print('blocked', host, e.errno)\n"
		 "print([n for _, n in socket.if_nameindex()])\n",
		 ntohs(a.sin_port));
	put(work, "net.py", script);
	cl_sandbox_spec spec = spec_for("net.py");
	cl_sandbox_result res;
	run_ok(&spec, &res);
	cr_assert_str_eq(res.status, "ok", "%s", res.err);
	cr_assert_str_eq((char *)res.out, "blocked 127.0.0.1 111\nblocked 1.1.1.1 101\n"
					  "blocked 10.0.0.1 101\n['lo']\n");
	cr_assert_lt(accept(s, NULL, NULL), 0, "the test's listener was reached");
	cr_assert_eq(errno, EAGAIN);
	close(s);
	cl_sandbox_result_free(&res);
	nothing_left_and_next_runs();
}

Test(sandbox, leaves_no_process_behind)
{
	put(work, "daemon.sh",
	    "sleep 1000 &\n"
	    "(trap '' HUP TERM; exec sleep 1001) </dev/null >/dev/null 2>&1 &\n"
	    "echo started\n");
	cl_sandbox_spec spec = spec_for("daemon.sh");
	cl_sandbox_result res;
	run_ok(&spec, &res);
	cr_assert_str_eq(res.status, "ok");
	cr_assert_str_eq((char *)res.out, "started\n");
	cr_assert_lt(res.wall_s, 10);
	cl_sandbox_result_free(&res);
	nothing_left_and_next_runs();
}

Test(sandbox, output_flood_is_cut_and_flagged)
{
	put(work, "flood.py",
	    "import sys\n"
	    "sys.stdout.write('x' * (4 << 20))\n"
	    "sys.stderr.write('e' * (1 << 20))\n");
	cl_sandbox_spec spec = spec_for("flood.py");
	spec.stdout_max = 64 * 1024;
	spec.stderr_max = 1000;
	cl_sandbox_result res;
	run_ok(&spec, &res);
	cr_assert_str_eq(res.status, "ok");
	cr_assert_eq(res.out_len, 64 * 1024);
	cr_assert_eq(res.err_len, 1000);
	cr_assert(res.out_truncated && res.err_truncated);
	cr_assert_eq(res.out[0], 'x');
	cl_sandbox_result_free(&res);
	nothing_left_and_next_runs();
}

static volatile int cancel_flag;

static void *cancel_later(void *arg)
{
	(void)arg;
	usleep(500 * 1000);
	cancel_flag = 1;
	return NULL;
}

Test(sandbox, cancelled_run_is_killed_and_says_so)
{
	put(work, "slow.sh", "sleep 100\n");
	cl_sandbox_spec spec = spec_for("slow.sh");
	cl_sandbox_result res;
	pthread_t t;
	cancel_flag = 0;
	cr_assert_eq(pthread_create(&t, NULL, cancel_later, NULL), 0);
	char why[256];
	double t0 = ts_mono();
	cr_assert_eq(cl_sandbox_run(&spec, &res, &cancel_flag, why, sizeof(why)), TS_ERR_UNAVAILABLE);
	cr_assert_lt(ts_mono() - t0, 10);
	pthread_join(t, NULL);
	cl_sandbox_result_free(&res);
	nothing_left_and_next_runs();
}

/* --- examples/ --- */

static void put_example(const char *name)
{
	char path[512], *text = NULL;
	size_t len = 0;
	snprintf(path, sizeof(path), "%s/examples/%s", TESSERA_SOURCE_DIR, name);
	cr_assert_eq(ts_read_file(path, 1 << 20, &text, &len), TS_OK, "%s", path);
	put(work, name, text);
	free(text);
}

static void run_example(const char *name, int np, const char *arg, const char *const *env,
			cl_sandbox_result *res)
{
	put_example(name);
	cl_sandbox_spec spec = spec_for(name);
	const char *args[] = {arg, NULL};
	spec.argv = arg ? args : NULL;
	spec.env = env;
	spec.np = np;
	run_ok(&spec, res);
	cr_assert_str_eq(res->status, "ok", "%s: %s", name, res->err);
}

Test(sandbox, the_examples_run_and_agree_with_themselves)
{
	cl_sandbox_result res, again;
	run_example("mpi_hello.c", 3, "1000", NULL, &res);
	cr_assert_str_eq((char *)res.out, "rank 0 of 3: 12475735\n"
					  "rank 1 of 3: 86660475\n"
					  "rank 2 of 3: 234697290\n"
					  "sum of squares 1..1000 = 333833500\n");
	cl_sandbox_result_free(&res);

	run_example("mpi_pi.py", 3, "30000", NULL, &res);
	cr_assert(strstr((char *)res.out, "pi ~ 3.1") && strstr((char *)res.out, "rank 2: "), "%s",
		  res.out);
	run_example("mpi_pi.py", 3, "30000", NULL, &again);
	cr_assert_str_eq((char *)res.out, (char *)again.out, "a replica prints the same bytes");
	cl_sandbox_result_free(&res);
	cl_sandbox_result_free(&again);

	/* Ten units of 10^5 each sum to the primes below 10^6. */
	long total = 0;
	for (int i = 0; i < 10; i++) {
		char start[64];
		snprintf(start, sizeof(start), "TESSERA_UNIT_START=%d", i * 100000);
		const char *env[] = {mark, start, "TESSERA_UNIT_COUNT=100000", "TESSERA_SPACE=1000000",
				     NULL};
		run_example("split_primes.py", 1, NULL, env, &res);
		total += strtol((char *)res.out, NULL, 10);
		cl_sandbox_result_free(&res);
	}
	cr_assert_eq(total, 78498);
}
