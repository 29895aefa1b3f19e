/* cl_sandbox: runs a user's program (issue 11) on the node, inside bubblewrap.
 *
 * Every run is one `bwrap` (two for C: compile, then run) with its own user, pid, ipc, uts and
 * network namespaces (loopback only; with a hostfile the node's network, which MPI across boards
 * needs), the system's /usr and the few /etc entries MPI and Python need read-only, the job's
 * work dir bound on /work (its cwd, the only place on disk it can write), sized tmpfs /tmp and
 * /dev/shm, a new /proc of its own pid namespace, a clean environment, no capabilities, no
 * further user namespaces, --die-with-parent and --new-session. There is no unsandboxed mode.
 *
 * Limits: wall time by this process's timer (the sandbox's init is killed, which takes
 * everything in its pid namespace with it); RLIMIT_CPU, RLIMIT_AS, RLIMIT_FSIZE per process;
 * RLIMIT_NPROC set inside the sandbox's own user namespace (prlimit), so it counts the
 * sandbox's processes and threads only; stdout and stderr kept up to caps. A caller running as
 * root runs the sandbox as an unprivileged uid (the kernel does not enforce RLIMIT_NPROC for
 * root) and hands the work dir to it.
 *
 * Between the caller and bwrap stands a keeper process (a child subreaper): it reaps bwrap and
 * then the sandbox's init, so when cl_sandbox_run returns nothing the run started is left, and
 * the run's CPU is known. cl_sandbox_run forks and waits in the calling thread, which must stay
 * alive while the run lasts (the sandbox dies with it).
 *
 * cl_sandbox.c runs and probes; cl_sandbox_cmd.c holds the pure parts (the command line, the
 * status of an end). */
#ifndef CL_SANDBOX_H
#define CL_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ts_err.h"

#define CL_SANDBOX_BWRAP "/usr/bin/bwrap"
#define CL_SANDBOX_PYTHON3 "/usr/bin/python3"
#define CL_SANDBOX_MPIRUN "/usr/bin/mpirun"
#define CL_SANDBOX_MPICC "/usr/bin/mpicc"
#define CL_SANDBOX_PRLIMIT "/usr/bin/prlimit"
#define CL_SANDBOX_NOBODY 65534 /* the uid and gid a root caller runs the sandbox as by default */
#define CL_SANDBOX_PROG ".tessera-prog" /* the compiled C program in /work (no job file starts
					 * with '.') */

typedef struct cl_sandbox_caps {
	int ok;                  /* bwrap runs here */
	char why[256];           /* when not: why, in words, with what to do */
	char bwrap[32];          /* "0.8.0" */
	char python3[32], mpi4py[32], mpicc[64]; /* versions; "" when missing */
	int mpirun;              /* mpirun is there (np > 1 needs it) */
	int slots;               /* processes it can run at once: online CPUs, or the hostfile's
				  * slots; 1 without mpirun */
} cl_sandbox_caps;

/* Probes bwrap (by really starting a tiny sandbox), /usr/bin/python3 with mpi4py, mpicc, and
 * the slots. TS_OK with caps->ok saying whether programs can run (caps->why when not);
 * TS_ERR_BAD_REQUEST when the hostfile (may be NULL) cannot be read or names no slots (why in
 * caps->why). */
ts_err cl_sandbox_probe(const char *hostfile, cl_sandbox_caps *caps);

/* {"sandbox":"bwrap 0.8.0","python3":"3.11.2","mpi4py":"3.1.4","mpicc":"Open MPI 4.1.4",
 * "langs":["py","c","sh"],"slots":N}: langs only those that can run (py needs python3 and
 * mpi4py, c needs mpicc, sh always). NULL when !caps->ok (the node runs no programs) or out of
 * memory. */
json_t *cl_sandbox_caps_json(const cl_sandbox_caps *caps);

typedef struct cl_sandbox_spec {
	const char *work_dir;    /* holds the job's files, writable: the program's cwd, and all
				  * it may write (a root caller hands it to run_uid) */
	const char *main;        /* a file name in work_dir ending .py, .c or .sh */
	const char *const *argv; /* extra arguments, NULL-terminated; may be NULL */
	const char *const *env;  /* extra "NAME=value" entries (TESSERA_UNIT_START...),
				  * NULL-terminated; may be NULL */
	int np;                  /* MPI processes, >= 1 */
	const char *hostfile;    /* NULL: everything on this machine, network namespace with
				  * loopback only; else mpirun --hostfile and the node's network */
	double wall_s;           /* wall-time limit, compiling included */
	double cpu_s;            /* CPU-time limit per process */
	int64_t memory_mb;       /* memory limit (per process, address space); MPI needs >= 128 */
	int nproc;               /* processes+threads at most (fork bombs); mpirun -np N needs
				  * about 4 + 4 N */
	int64_t file_mb;         /* largest file it may write; also the size of the tmpfs /tmp
				  * and /dev/shm */
	size_t stdout_max, stderr_max; /* bytes kept; more is read and discarded, and flagged */
	unsigned run_uid, run_gid; /* a root caller runs the sandbox as these; 0: 65534 */
} cl_sandbox_spec;

typedef struct cl_sandbox_result {
	char status[64];   /* "ok", "exit status N", "killed: time limit", "killed: cpu limit",
			    * "killed: memory", "killed: signal N", "compile error" */
	int exit_code;     /* -1 when killed; the compiler's for a compile error */
	unsigned char *out, *err; size_t out_len, err_len; /* malloc'd, NUL-terminated */
	int out_truncated, err_truncated;
	double wall_s;
} cl_sandbox_result;

/* Runs the program. TS_OK: it ran, whatever its outcome (in res->status; a compile error's
 * message is in res->err). An error (why says which): the sandbox could not start: a node-side
 * failure (the caller gives the unit back); TS_ERR_BAD_REQUEST for a spec it refuses (main's
 * name, np...); TS_ERR_UNAVAILABLE when *cancel became non-zero (everything it started is
 * killed first). cancel may be NULL. res is always initialised (free it either way). */
ts_err cl_sandbox_run(const cl_sandbox_spec *spec, cl_sandbox_result *res,
		      const volatile int *cancel, char *why, size_t whylen);
void cl_sandbox_result_free(cl_sandbox_result *res);

/* --- The pure parts, for tests. --- */

typedef enum cl_sandbox_lang {
	CL_SANDBOX_LANG_NONE = 0,
	CL_SANDBOX_LANG_PY,
	CL_SANDBOX_LANG_C,
	CL_SANDBOX_LANG_SH,
} cl_sandbox_lang;

/* The language of a main file's name, NONE unless the name is 1..64 of A-Z a-z 0-9 . _ -, not
 * starting with '.', ending .py, .c or .sh. */
cl_sandbox_lang cl_sandbox_lang_of(const char *main);

/* Slots in an Open MPI hostfile's text: the sum of each host line's slots=N (a line without
 * one counts 1); comments (#) and blank lines skipped. 0 when none, -1 for a malformed
 * slots=. */
int cl_sandbox_hostfile_slots(const char *text);

/* How the host's top-level system paths look, found once by cl_sandbox_host_scan: /bin, /lib...
 * are symlinks into /usr on a merged-/usr system (recreated as such) or directories (bound
 * read-only). */
#define CL_SANDBOX_TOP_MAX 8
typedef struct cl_sandbox_host {
	struct {
		char path[16];   /* "/lib" */
		char target[64]; /* "usr/lib" for a symlink, "" for a directory */
	} top[CL_SANDBOX_TOP_MAX];
	int ntop;
} cl_sandbox_host;
void cl_sandbox_host_scan(cl_sandbox_host *host);

typedef enum cl_sandbox_step { CL_SANDBOX_COMPILE, CL_SANDBOX_RUN } cl_sandbox_step;

#define CL_SANDBOX_FD_STATUS 3 /* bwrap's --json-status-fd: written by bwrap, never the program */

/* The whole bwrap command line (argv[0] CL_SANDBOX_BWRAP) of one step: the sandbox, its
 * environment and the command in it. work and hostfile are the paths bwrap binds on /work and
 * the hostfile's place (hostfile only when spec->hostfile is set). NULL-terminated, malloc'd
 * (cl_sandbox_argv_free); NULL when out of memory. The spec must have passed cl_sandbox_check. */
char **cl_sandbox_argv(const cl_sandbox_spec *spec, const cl_sandbox_host *host,
		       cl_sandbox_step step, const char *work, const char *hostfile);
void cl_sandbox_argv_free(char **argv);

/* TS_OK when the spec can run, else TS_ERR_BAD_REQUEST with why. */
ts_err cl_sandbox_check(const cl_sandbox_spec *spec, char *why, size_t whylen);

/* How one step ended, as cl_sandbox_run saw it. */
typedef struct cl_sandbox_end {
	int timed_out;     /* the wall timer fired and the sandbox was killed */
	int ran;           /* bwrap reported the command's exit ("exit-code") */
	int exit_code;     /* bwrap's exit code: the command's; 128+N for a signal N */
	int bwrap_signal;  /* bwrap itself died of this signal (0: it exited) */
	double cpu_used_s; /* CPU of the whole sandbox (every reaped process) */
	double cpu_limit_s;
	const char *err_tail; /* the last bytes of stderr (kept even when truncated) */
	size_t err_tail_len;
} cl_sandbox_end;

/* The result's status and exit_code for an end (a RUN step; a failed COMPILE step is a
 * "compile error" unless it timed out). Precedence: time limit; cpu limit (SIGXCPU, or SIGKILL
 * with the sandbox's CPU at the limit: RLIMIT_CPU's hard limit); memory (a failure whose
 * stderr tail says so: Python's MemoryError, std::bad_alloc, "Cannot allocate memory", "out of
 * memory"); "killed: signal N" for 128+N; "exit status N". */
void cl_sandbox_classify(const cl_sandbox_end *end, char *status, size_t cap, int *exit_code);

#endif
