/* cl_sandbox's pure half: main files' languages, hostfiles' slots, the bwrap command line and
 * how a run's end reads as a status. No I/O but cl_sandbox_host_scan's lstat. */
#include "cl_sandbox.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ts_util.h"

#define MIB (1024 * 1024)
#define HOSTFILE_IN "/etc/tessera/hostfile" /* where the sandbox sees the hostfile */
#define MAIN_NAME_MAX 64

/* --- Names, hostfiles, the host's layout --- */

cl_sandbox_lang cl_sandbox_lang_of(const char *main)
{
	if (!main || !*main || main[0] == '.')
		return CL_SANDBOX_LANG_NONE;
	size_t n = strlen(main);
	if (n > MAIN_NAME_MAX)
		return CL_SANDBOX_LANG_NONE;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)main[i]) && !strchr("._-", main[i]))
			return CL_SANDBOX_LANG_NONE;
	static const struct {
		const char *ext;
		cl_sandbox_lang lang;
	} exts[] = {{".py", CL_SANDBOX_LANG_PY}, {".c", CL_SANDBOX_LANG_C}, {".sh", CL_SANDBOX_LANG_SH}};
	for (size_t i = 0; i < TS_ARRAY_LEN(exts); i++) {
		size_t e = strlen(exts[i].ext);
		if (n > e && strcmp(main + n - e, exts[i].ext) == 0)
			return exts[i].lang;
	}
	return CL_SANDBOX_LANG_NONE;
}

int cl_sandbox_hostfile_slots(const char *text)
{
	long total = 0;
	const char *p = text;
	while (p && *p) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char line[512];
		snprintf(line, sizeof(line), "%.*s", (int)(len < sizeof(line) ? len : sizeof(line) - 1), p);
		p = end ? end + 1 : NULL;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		char *save = NULL, *host = strtok_r(line, " \t\r", &save);
		if (!host)
			continue;
		long slots = 1;
		for (char *w = strtok_r(NULL, " \t\r", &save); w; w = strtok_r(NULL, " \t\r", &save)) {
			if (strncmp(w, "slots=", 6) != 0)
				continue;
			char *e = NULL;
			errno = 0;
			slots = strtol(w + 6, &e, 10);
			if (errno || e == w + 6 || *e || slots < 1 || slots > 1000000)
				return -1;
		}
		total += slots;
		if (total > 1000000)
			return -1;
	}
	return (int)total;
}

void cl_sandbox_host_scan(cl_sandbox_host *host)
{
	static const char *const tops[] = {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"};
	memset(host, 0, sizeof(*host));
	for (size_t i = 0; i < TS_ARRAY_LEN(tops) && host->ntop < CL_SANDBOX_TOP_MAX; i++) {
		struct stat st;
		if (lstat(tops[i], &st) != 0)
			continue;
		char target[64] = "";
		if (S_ISLNK(st.st_mode)) {
			ssize_t n = readlink(tops[i], target, sizeof(target) - 1);
			if (n <= 0 || n >= (ssize_t)sizeof(target) - 1)
				continue;
			target[n] = '\0';
		} else if (!S_ISDIR(st.st_mode)) {
			continue;
		}
		snprintf(host->top[host->ntop].path, sizeof(host->top[0].path), "%s", tops[i]);
		snprintf(host->top[host->ntop].target, sizeof(host->top[0].target), "%s", target);
		host->ntop++;
	}
}

/* --- The bwrap command line --- */

typedef struct argv_buf {
	char **v;
	size_t n, cap;
	int oom;
} argv_buf;

static void push(argv_buf *a, const char *s)
{
	if (a->oom)
		return;
	if (a->n + 2 > a->cap) {
		size_t cap = a->cap ? 2 * a->cap : 64;
		char **v = realloc(a->v, cap * sizeof(*v));
		if (!v) {
			a->oom = 1;
			return;
		}
		a->v = v;
		a->cap = cap;
	}
	if (!(a->v[a->n] = strdup(s))) {
		a->oom = 1;
		return;
	}
	a->v[++a->n] = NULL;
}

static void pushf(argv_buf *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pushf(argv_buf *a, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	push(a, buf);
}

static void push2(argv_buf *a, const char *opt, const char *x)
{
	push(a, opt);
	push(a, x);
}

static void push3(argv_buf *a, const char *opt, const char *x, const char *y)
{
	push(a, opt);
	push(a, x);
	push(a, y);
}

/* The sandbox's whole environment (bwrap --clearenv first): what Open MPI 4.1 needs without
 * sysfs and, on one machine, with loopback only; Python made deterministic. */
static const char *const env_always[][2] = {
	{"PATH", "/usr/bin:/bin"},
	{"HOME", "/work"},
	{"LANG", "C.UTF-8"},
	{"TMPDIR", "/tmp"},
	{"PYTHONHASHSEED", "0"},          /* the same set and dict order on every replica */
	{"PYTHONDONTWRITEBYTECODE", "1"}, /* no __pycache__ in the work dir */
	{"HWLOC_COMPONENTS", "-linux"},   /* no /sys in the sandbox: hwloc's x86 probe instead */
	{"OMPI_MCA_btl_vader_single_copy_mechanism", "none"}, /* CMA needs ptrace rights */
	{"OMPI_MCA_rmaps_base_oversubscribe", "1"},
	{"OMPI_MCA_orte_tmpdir_base", "/tmp"},
	{"PMIX_MCA_gds", "hash"},
};
static const char *const env_local[][2] = {
	{"OMPI_MCA_plm", "isolated"}, /* ranks on this machine only: no ssh */
	{"OMPI_MCA_btl", "self,vader"},
	{"OMPI_MCA_oob_tcp_if_include", "lo"},
	{"OMPI_MCA_btl_tcp_if_include", "lo"},
};

/* /etc entries bound read-only where they exist: mpirun and mpicc are /etc/alternatives links,
 * Open MPI reads /etc/openmpi. A cluster's mpirun also resolves the boards' names and starts
 * them over ssh (which wants the user's passwd entry). */
static const char *const etc_always[] = {"/etc/alternatives", "/etc/openmpi", "/etc/ld.so.cache",
					 "/etc/ld.so.conf", "/etc/ld.so.conf.d"};
static const char *const etc_cluster[] = {"/etc/hosts",	     "/etc/resolv.conf", "/etc/nsswitch.conf",
					  "/etc/host.conf",  "/etc/gai.conf",	 "/etc/ssh",
					  "/etc/passwd",     "/etc/group"};

static void push_program(argv_buf *a, const cl_sandbox_spec *spec)
{
	switch (cl_sandbox_lang_of(spec->main)) {
	case CL_SANDBOX_LANG_PY:
		push(a, CL_SANDBOX_PYTHON3);
		break;
	case CL_SANDBOX_LANG_SH:
		push(a, "/bin/sh");
		break;
	default:
		break;
	}
	if (cl_sandbox_lang_of(spec->main) == CL_SANDBOX_LANG_C)
		push(a, "./" CL_SANDBOX_PROG);
	else
		pushf(a, "./%s", spec->main); /* "./": a name starting with '-' is no option */
	for (const char *const *p = spec->argv; p && *p; p++)
		push(a, *p);
}

char **cl_sandbox_argv(const cl_sandbox_spec *spec, const cl_sandbox_host *host,
		       cl_sandbox_step step, const char *work, const char *hostfile)
{
	argv_buf a = {0};
	char num[64];
	push(&a, CL_SANDBOX_BWRAP);
	push(&a, "--unshare-all"); /* user (below), ipc, pid, net, uts, cgroup */
	push(&a, "--unshare-user");
	if (spec->hostfile)
		push(&a, "--share-net"); /* ranks on other boards: MPI needs the network */
	push(&a, "--disable-userns");
	push(&a, "--die-with-parent");
	push(&a, "--new-session");
	push2(&a, "--cap-drop", "ALL");
	push2(&a, "--hostname", "tessera");
	push3(&a, "--ro-bind", "/usr", "/usr");
	for (int i = 0; i < host->ntop; i++) {
		if (host->top[i].target[0])
			push3(&a, "--symlink", host->top[i].target, host->top[i].path);
		else
			push3(&a, "--ro-bind", host->top[i].path, host->top[i].path);
	}
	for (size_t i = 0; i < TS_ARRAY_LEN(etc_always); i++)
		push3(&a, "--ro-bind-try", etc_always[i], etc_always[i]);
	for (size_t i = 0; spec->hostfile && i < TS_ARRAY_LEN(etc_cluster); i++)
		push3(&a, "--ro-bind-try", etc_cluster[i], etc_cluster[i]);
	push2(&a, "--proc", "/proc");
	push2(&a, "--dev", "/dev");
	snprintf(num, sizeof(num), "%" PRId64, spec->file_mb * MIB);
	push2(&a, "--size", num); /* --size applies to the next --tmpfs */
	push2(&a, "--tmpfs", "/tmp");
	push2(&a, "--size", num);
	push2(&a, "--tmpfs", "/dev/shm");
	push3(&a, "--bind", work, "/work");
	if (spec->hostfile)
		push3(&a, "--ro-bind", hostfile, HOSTFILE_IN);
	push2(&a, "--remount-ro", "/");
	push2(&a, "--remount-ro", "/dev"); /* bwrap's /dev is an unsized tmpfs: no files there */
	push2(&a, "--chdir", "/work");
	snprintf(num, sizeof(num), "%d", CL_SANDBOX_FD_STATUS);
	push2(&a, "--json-status-fd", num);
	push(&a, "--clearenv");
	for (size_t i = 0; i < TS_ARRAY_LEN(env_always); i++)
		push3(&a, "--setenv", env_always[i][0], env_always[i][1]);
	for (size_t i = 0; !spec->hostfile && i < TS_ARRAY_LEN(env_local); i++)
		push3(&a, "--setenv", env_local[i][0], env_local[i][1]);
	for (const char *const *e = spec->env; e && *e; e++) {
		const char *eq = strchr(*e, '=');
		char name[128];
		snprintf(name, sizeof(name), "%.*s", (int)(eq - *e), *e);
		push3(&a, "--setenv", name, eq + 1);
	}
	push(&a, "--");
	/* RLIMIT_NPROC inside the sandbox's own user namespace: there it counts this sandbox's
	 * processes only, not every process of the uid (and is enforced: the uid is not root). */
	push(&a, CL_SANDBOX_PRLIMIT);
	pushf(&a, "--nproc=%d:%d", spec->nproc, spec->nproc);
	push(&a, "--");
	if (step == CL_SANDBOX_COMPILE) {
		push(&a, CL_SANDBOX_MPICC);
		push(&a, "-O2");
		push2(&a, "-o", CL_SANDBOX_PROG);
		pushf(&a, "./%s", spec->main);
		push(&a, "-lm");
	} else {
		if (spec->np > 1 || spec->hostfile) {
			push(&a, CL_SANDBOX_MPIRUN);
			snprintf(num, sizeof(num), "%d", spec->np);
			push2(&a, "-np", num);
			push(&a, "--oversubscribe");
			push2(&a, "--bind-to", "none");
			if (spec->hostfile)
				push2(&a, "--hostfile", HOSTFILE_IN);
		}
		push_program(&a, spec);
	}
	if (a.oom) {
		cl_sandbox_argv_free(a.v);
		return NULL;
	}
	return a.v;
}

void cl_sandbox_argv_free(char **argv)
{
	for (char **p = argv; p && *p; p++)
		free(*p);
	free(argv);
}

static int env_name_ok(const char *e)
{
	const char *eq = strchr(e, '=');
	if (!eq || eq == e || eq - e >= 128 || isdigit((unsigned char)e[0]))
		return 0;
	for (const char *p = e; p < eq; p++)
		if (!isalnum((unsigned char)*p) && *p != '_')
			return 0;
	return 1;
}

ts_err cl_sandbox_check(const cl_sandbox_spec *spec, char *why, size_t whylen)
{
	if (!spec->work_dir || !*spec->work_dir) {
		snprintf(why, whylen, "no work dir");
		return TS_ERR_BAD_REQUEST;
	}
	if (cl_sandbox_lang_of(spec->main) == CL_SANDBOX_LANG_NONE) {
		snprintf(why, whylen, "main '%.64s' is not a file name ending .py, .c or .sh",
			 spec->main ? spec->main : "");
		return TS_ERR_BAD_REQUEST;
	}
	if (spec->np < 1 || spec->np > 4096 || spec->nproc < 1 || !(spec->wall_s > 0) ||
	    !(spec->cpu_s > 0) || spec->memory_mb < 1 || spec->file_mb < 1 ||
	    spec->memory_mb > (INT64_MAX / MIB) || spec->file_mb > (INT64_MAX / MIB)) {
		snprintf(why, whylen, "np, nproc, wall_s, cpu_s, memory_mb and file_mb must be positive");
		return TS_ERR_BAD_REQUEST;
	}
	for (const char *const *e = spec->env; e && *e; e++) {
		if (!env_name_ok(*e)) {
			snprintf(why, whylen, "environment entry '%.64s' is not NAME=value", *e);
			return TS_ERR_BAD_REQUEST;
		}
	}
	return TS_OK;
}

/* --- How a run ended --- */

/* Signals that mean a limit, not the program's own crash. */
static const struct {
	int sig;
	const char *status;
} signal_reasons[] = {
	{SIGXCPU, "killed: cpu limit"},
};

/* What a program that failed because an allocation failed leaves on stderr. */
static const char *const memory_words[] = {"MemoryError", "std::bad_alloc", "Cannot allocate memory",
					   "out of memory", "Out of memory"};

static int tail_says_memory(const char *tail, size_t len)
{
	for (size_t i = 0; i < TS_ARRAY_LEN(memory_words); i++)
		if (tail && memmem(tail, len, memory_words[i], strlen(memory_words[i])))
			return 1;
	return 0;
}

void cl_sandbox_classify(const cl_sandbox_end *end, char *status, size_t cap, int *exit_code)
{
	*exit_code = -1;
	if (end->timed_out) {
		snprintf(status, cap, "killed: time limit");
		return;
	}
	int sig = end->bwrap_signal;
	if (!sig && end->exit_code > 128 && end->exit_code < 128 + 65)
		sig = end->exit_code - 128; /* bwrap's init passes on a signal death as 128+N */
	for (size_t i = 0; sig && i < TS_ARRAY_LEN(signal_reasons); i++) {
		if (signal_reasons[i].sig == sig) {
			snprintf(status, cap, "%s", signal_reasons[i].status);
			return;
		}
	}
	/* RLIMIT_CPU's hard limit is a second past the soft one: a program that ignores SIGXCPU
	 * gets SIGKILL there, which can only be after that much CPU. */
	if (sig == SIGKILL && end->cpu_limit_s > 0 && end->cpu_used_s >= end->cpu_limit_s) {
		snprintf(status, cap, "killed: cpu limit");
		return;
	}
	if ((sig || end->exit_code) && tail_says_memory(end->err_tail, end->err_tail_len)) {
		snprintf(status, cap, "killed: memory");
		return;
	}
	if (sig) {
		snprintf(status, cap, "killed: signal %d", sig);
		return;
	}
	*exit_code = end->exit_code;
	if (end->exit_code == 0)
		snprintf(status, cap, "ok");
	else
		snprintf(status, cap, "exit status %d", end->exit_code);
}
