/* cl_sandbox: users' programs under bubblewrap, with limits, their output captured: the
 * keeper process, the wait and the probe (the command line is cl_sandbox_cmd.c's). */
#include "cl_sandbox.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ts_util.h"

#define MIB (1024 * 1024)
#define ERR_TAIL 4096            /* stderr bytes kept for the memory check, past the cap too */
#define STATUS_MAX 4096          /* bwrap's --json-status-fd documents */
#define KILL_GRACE_S 2.0         /* after killing the sandbox's init: the keeper's group */
#define DRAIN_S 2.0              /* after the keeper ended: the pipes' last bytes */
#define CANCEL_POLL_MS 100       /* how often *cancel is looked at */
#define COMPILE_MEMORY_MB 1024   /* at least this address space for mpicc (cc1, as) */
#define COMPILE_FILE_MB 64       /* and this file size (objects, the program) */

/* --- Running one step --- */

typedef struct capture {
	unsigned char *buf;
	size_t len, max;
	int truncated;
	char tail[ERR_TAIL]; /* a ring of the last bytes (stderr only) */
	size_t tail_pos, tail_len;
	int keep_tail;
} capture;

static ts_err capture_init(capture *c, size_t max, int keep_tail)
{
	memset(c, 0, sizeof(*c));
	c->max = max;
	c->keep_tail = keep_tail;
	c->buf = malloc(max + 1);
	if (!c->buf)
		return TS_ERR_NOMEM;
	c->buf[0] = '\0';
	return TS_OK;
}

static void capture_add(capture *c, const unsigned char *p, size_t n)
{
	size_t keep = c->max - c->len < n ? c->max - c->len : n;
	memcpy(c->buf + c->len, p, keep);
	c->len += keep;
	c->buf[c->len] = '\0';
	if (keep < n)
		c->truncated = 1;
	for (size_t i = 0; c->keep_tail && i < n; i++) {
		c->tail[c->tail_pos] = (char)p[i];
		c->tail_pos = (c->tail_pos + 1) % ERR_TAIL;
		if (c->tail_len < ERR_TAIL)
			c->tail_len++;
	}
}

/* The tail in order, into out (ERR_TAIL bytes); returns its length. */
static size_t capture_tail(const capture *c, char *out)
{
	size_t start = (c->tail_pos + ERR_TAIL - c->tail_len) % ERR_TAIL;
	for (size_t i = 0; i < c->tail_len; i++)
		out[i] = c->tail[(start + i) % ERR_TAIL];
	return c->tail_len;
}

typedef struct step_limits {
	double cpu_s;
	int64_t memory_mb, file_mb;
} step_limits;

typedef struct step_io {
	int drop;      /* the caller is root: stage the work dir, setuid to uid/gid, then bwrap */
	uid_t uid;
	gid_t gid;
	int null_fd;   /* >= 10, close-on-exec */
	const char *work_dir, *hostfile_path; /* the spec's */
	const char *work, *hostfile;          /* the paths bwrap binds (cl_sandbox_argv's) */
} step_io;

/* A root caller's work dir may lie below directories the sandbox's uid cannot enter (a 0700
 * state dir), and bwrap opens its sources by path as that uid. So the child, still root, shows
 * the work dir (and the hostfile) to bwrap at these paths, on a tmpfs of its own mount
 * namespace: nothing of it is seen outside the child. */
#define STAGE "/tmp"
#define STAGE_WORK STAGE "/tessera-work"
#define STAGE_HOSTFILE STAGE "/tessera-hostfile"
#define FD_WORK 4
#define FD_HOSTFILE 5
#define FD_REPORT 6 /* the keeper's report to the parent */

typedef struct step_out {
	cl_sandbox_end end;
	int cancelled;
	char status[STATUS_MAX + 1];
	size_t status_len;
} step_out;

static int fd_high(int fd)
{
	if (fd < 0)
		return -1;
	int h = fcntl(fd, F_DUPFD_CLOEXEC, 10);
	close(fd);
	return h;
}

static void set_limit(int resource, rlim_t soft, rlim_t hard)
{
	struct rlimit rl = {soft, hard};
	if (setrlimit(resource, &rl) != 0) {
		/* Not above the hard limit we were given (a non-root caller). */
		struct rlimit cur;
		if (getrlimit(resource, &cur) == 0 && cur.rlim_max != RLIM_INFINITY) {
			rl.rlim_max = cur.rlim_max;
			if (rl.rlim_cur > rl.rlim_max)
				rl.rlim_cur = rl.rlim_max;
			setrlimit(resource, &rl);
		}
	}
}

static void child_fail(const char *msg)
{
	ssize_t r = write(2, msg, strlen(msg));
	(void)r;
	_exit(127);
}

/* The root child's staging (see STAGE). The sources are opened again in the new mount
 * namespace (a bind mount's source must be in the caller's), before the tmpfs may hide them. */
static int child_stage(const char *work_dir, const char *hostfile)
{
	if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
		return -1;
	int w = open(work_dir, O_PATH | O_DIRECTORY);
	int h = hostfile ? open(hostfile, O_PATH) : -1;
	if (w < 0 || dup2(w, FD_WORK) < 0 || (hostfile && (h < 0 || dup2(h, FD_HOSTFILE) < 0)))
		return -1;
	if (mount("tmpfs", STAGE, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k") != 0 ||
	    mkdir(STAGE_WORK, 0700) != 0 ||
	    mount("/proc/self/fd/4", STAGE_WORK, NULL, MS_BIND, NULL) != 0)
		return -1;
	if (hostfile) {
		int fd = open(STAGE_HOSTFILE, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0)
			return -1;
		close(fd);
		if (mount("/proc/self/fd/5", STAGE_HOSTFILE, NULL, MS_BIND, NULL) != 0)
			return -1;
	}
	return 0;
}

/* What the keeper tells the parent when everything it started has ended. */
typedef struct keeper_report {
	int bwrap_status; /* bwrap's wait status */
	int64_t cpu_us;   /* CPU of every process it reaped: bwrap, the sandbox's init, all in it */
} keeper_report;

/* The forked child, the keeper: it stages the work dir (root), sets the limits, drops to the
 * sandbox's uid, starts bwrap and, as a child subreaper, reaps bwrap and then the sandbox's
 * init (orphaned when bwrap ends with the program, killed by --die-with-parent), which reaps
 * everything in its pid namespace: when the keeper reports, nothing of the run is left, and its
 * children's rusage is the whole run's CPU. Only async-signal-safe calls here. */
static void keeper(char **argv, const step_io *io, const step_limits *lim, int out_fd, int err_fd,
		   int status_fd, int report_fd, pid_t parent)
{
	static char *const envp[] = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8", NULL};
	/* No signal blocked or ignored by the caller (SIGPIPE, SIGCHLD...) reaches the program,
	 * nor the keeper's own wait. */
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	sigemptyset(&dfl.sa_mask);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setsid(); /* its own process group (the parent's fallback kill); the terminal's ^C is the
		   * caller's to handle, not the sandbox's */
	if (dup2(io->null_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0 ||
	    dup2(status_fd, CL_SANDBOX_FD_STATUS) < 0 || dup2(report_fd, FD_REPORT) < 0 ||
	    fcntl(FD_REPORT, F_SETFD, FD_CLOEXEC) < 0)
		child_fail("sandbox: dup2 failed\n");
	if (io->drop && child_stage(io->work_dir, io->hostfile_path) != 0)
		child_fail("sandbox: cannot stage the work dir in a mount namespace\n");
	if (syscall(SYS_close_range, CL_SANDBOX_FD_STATUS + 1, FD_REPORT - 1, 0) != 0 ||
	    syscall(SYS_close_range, FD_REPORT + 1, ~0U, 0) != 0) {
		for (int fd = CL_SANDBOX_FD_STATUS + 1; fd < 4096; fd++)
			if (fd != FD_REPORT)
				close(fd);
	}
	rlim_t cpu = (rlim_t)ceil(lim->cpu_s);
	set_limit(RLIMIT_CPU, cpu, cpu + 1);
	set_limit(RLIMIT_AS, (rlim_t)lim->memory_mb * MIB, (rlim_t)lim->memory_mb * MIB);
	set_limit(RLIMIT_FSIZE, (rlim_t)lim->file_mb * MIB, (rlim_t)lim->file_mb * MIB);
	set_limit(RLIMIT_CORE, 0, 0);
	if (io->drop) {
		/* Root's RLIMIT_NPROC is never enforced, and counted per uid: the real limit is set
		 * inside the sandbox's user namespace, so none is needed out here. */
		set_limit(RLIMIT_NPROC, RLIM_INFINITY, RLIM_INFINITY);
		if (setgroups(1, &io->gid) != 0 || setgid(io->gid) != 0 || setuid(io->uid) != 0 ||
		    getuid() != io->uid || geteuid() != io->uid)
			child_fail("sandbox: cannot change to the sandbox's uid\n");
	}
	/* After setuid, which clears it: the keeper dies with the caller (its thread, in fact),
	 * bwrap with the keeper, the sandbox with bwrap. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent ||
	    prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
		_exit(127);
	pid_t self = getpid();
	pid_t bw = fork();
	if (bw == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != self)
			_exit(127);
		execve(argv[0], argv, envp);
		child_fail("sandbox: cannot run " CL_SANDBOX_BWRAP "\n");
	}
	if (bw < 0)
		child_fail("sandbox: fork failed\n");
	close(0);
	close(1);
	close(2);
	close(CL_SANDBOX_FD_STATUS);
	keeper_report rep = {.bwrap_status = -1};
	for (;;) {
		int st;
		pid_t r = waitpid(-1, &st, 0);
		if (r == bw)
			rep.bwrap_status = st;
		if (r < 0 && errno != EINTR)
			break; /* ECHILD: all reaped */
	}
	struct rusage ru;
	if (getrusage(RUSAGE_CHILDREN, &ru) == 0)
		rep.cpu_us = (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
			     ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
	ssize_t w = write(FD_REPORT, &rep, sizeof(rep));
	_exit(w == (ssize_t)sizeof(rep) ? 0 : 1);
}

/* The number after "KEY": in bwrap's status documents, or -1. */
static long status_number(const char *status, const char *key)
{
	const char *p = strstr(status, key);
	if (!p)
		return -1;
	p += strlen(key);
	while (*p == ' ' || *p == ':' || *p == '"')
		p++;
	if (!isdigit((unsigned char)*p))
		return -1;
	return strtol(p, NULL, 10);
}

static int pidfd_of(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	return -1;
#endif
}

/* SIGKILL through a pidfd (no pid reuse race) when there is one. */
static void kill_hard(int pidfd, pid_t pid)
{
#ifdef SYS_pidfd_send_signal
	if (pidfd >= 0 && syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0) == 0)
		return;
#endif
	if (pid > 0)
		kill(pid, SIGKILL);
}

static void read_into(int *fd, capture *c)
{
	unsigned char buf[65536];
	ssize_t n = read(*fd, buf, sizeof(buf));
	if (n > 0) {
		capture_add(c, buf, (size_t)n);
	} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
		close(*fd);
		*fd = -1;
	}
}

static void read_small(int *fd, char *buf, size_t *len, size_t cap)
{
	char tmp[512];
	ssize_t n = read(*fd, tmp, sizeof(tmp));
	if (n > 0) {
		size_t keep = cap - *len < (size_t)n ? cap - *len : (size_t)n;
		memcpy(buf + *len, tmp, keep);
		*len += keep;
		buf[*len] = '\0';
	} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
		close(*fd);
		*fd = -1;
	}
}

enum { P_OUT, P_ERR, P_STATUS, P_REPORT, P_N };

/* Runs one bwrap command line to its end, the wall deadline (ts_mono) and *cancel enforced.
 * out and err receive the streams (err only, both streams, when out is NULL). TS_OK: bwrap
 * ran and ended (step->end says how, step->cancelled when cancel ended it); an error when it
 * could not be started. */
static ts_err run_step(char **argv, const step_io *io, const step_limits *lim, double deadline,
		       const volatile int *cancel, capture *out, capture *err, step_out *step,
		       char *why, size_t whylen)
{
	int p[P_N][2];
	memset(step, 0, sizeof(*step));
	for (int i = 0; i < P_N; i++)
		p[i][0] = p[i][1] = -1;
	for (int i = 0; i < P_N; i++) {
		if (i == P_OUT && !out)
			continue;
		if (pipe2(p[i], O_CLOEXEC) != 0 || (p[i][0] = fd_high(p[i][0])) < 0 ||
		    (p[i][1] = fd_high(p[i][1])) < 0) {
			snprintf(why, whylen, "pipe: %s", strerror(errno));
			for (int j = 0; j <= i; j++)
				for (int k = 0; k < 2; k++)
					if (p[j][k] >= 0)
						close(p[j][k]);
			return TS_ERR_IO;
		}
	}
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == 0)
		keeper(argv, io, lim, out ? p[P_OUT][1] : p[P_ERR][1], p[P_ERR][1], p[P_STATUS][1],
		       p[P_REPORT][1], parent);
	int fork_errno = errno;
	int fds[P_N];
	for (int i = 0; i < P_N; i++) {
		if (p[i][1] >= 0)
			close(p[i][1]);
		fds[i] = p[i][0];
	}
	if (pid < 0) {
		for (int i = 0; i < P_N; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		snprintf(why, whylen, "fork: %s", strerror(fork_errno));
		return TS_ERR_IO;
	}
	int pidfd = pidfd_of(pid), init_fd = -1;
	int reaped = 0, wstatus = 0;
	double killed_at = 0, reaped_at = 0;
	pid_t init_pid = 0; /* the sandbox's pid 1 (its host pid), from bwrap's "child-pid" */
	keeper_report rep = {.bwrap_status = -1};
	char rep_buf[sizeof(rep) + 1];
	size_t rep_len = 0;
	for (;;) {
		double now = ts_mono();
		if (!reaped) {
			int kill_now = 0;
			if (!killed_at && now >= deadline)
				kill_now = step->end.timed_out = 1;
			else if (!killed_at && cancel && *cancel)
				kill_now = step->cancelled = 1;
			if (kill_now) {
				/* Killing the sandbox's init takes its whole pid namespace with it, and
				 * bwrap and the keeper end once it is reaped; the keeper's process group
				 * (bwrap with it) a moment later if that did not happen. */
				if (init_pid > 0)
					kill_hard(init_fd, init_pid);
				else
					kill(-pid, SIGKILL);
				killed_at = now;
			} else if (killed_at && now - killed_at > KILL_GRACE_S) {
				kill(-pid, SIGKILL);
			}
		}
		if (reaped && ((fds[P_OUT] < 0 && fds[P_ERR] < 0) || now - reaped_at > DRAIN_S))
			break;
		int ms;
		if (reaped)
			ms = 20;
		else if (killed_at)
			ms = 100;
		else {
			double left = deadline - now;
			ms = left > 3600 ? 3600000 : (int)(left * 1000) + 1;
			if (cancel && ms > CANCEL_POLL_MS)
				ms = CANCEL_POLL_MS;
			if (pidfd < 0 && ms > 50)
				ms = 50;
		}
		struct pollfd pfd[P_N + 1];
		int np = 0, idx[P_N + 1];
		for (int i = 0; i < P_N; i++) {
			if (fds[i] >= 0) {
				pfd[np] = (struct pollfd){.fd = fds[i], .events = POLLIN};
				idx[np++] = i;
			}
		}
		if (!reaped && pidfd >= 0) {
			pfd[np] = (struct pollfd){.fd = pidfd, .events = POLLIN};
			idx[np++] = P_N;
		}
		int r = poll(pfd, (nfds_t)np, ms);
		if (r < 0 && errno != EINTR)
			break;
		for (int i = 0; r > 0 && i < np; i++) {
			if (!pfd[i].revents || idx[i] == P_N)
				continue;
			if (idx[i] == P_STATUS) {
				read_small(&fds[P_STATUS], step->status, &step->status_len, STATUS_MAX);
				long cp = status_number(step->status, "\"child-pid\"");
				if (cp > 1 && !init_pid) {
					init_pid = (pid_t)cp;
					init_fd = pidfd_of(init_pid);
				}
			} else if (idx[i] == P_REPORT) {
				read_small(&fds[P_REPORT], rep_buf, &rep_len, sizeof(rep));
			} else {
				read_into(&fds[idx[i]], idx[i] == P_OUT ? out : err);
			}
		}
		pid_t w = reaped ? 0 : waitpid(pid, &wstatus, WNOHANG);
		if (w == pid || (w < 0 && errno == ECHILD)) { /* ECHILD: SIGCHLD ignored here */
			reaped = 1;
			reaped_at = ts_mono();
		}
	}
	if (!reaped) { /* poll failed: end it all anyway */
		kill_hard(init_fd, init_pid);
		kill(-pid, SIGKILL);
		waitpid(pid, &wstatus, 0);
	}
	/* What is left of the report (it is written just before the keeper exits). */
	while (fds[P_REPORT] >= 0 && rep_len < sizeof(rep))
		read_small(&fds[P_REPORT], rep_buf, &rep_len, sizeof(rep));
	for (int i = 0; i < P_N; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (pidfd >= 0)
		close(pidfd);
	if (init_fd >= 0)
		close(init_fd);
	if (rep_len == sizeof(rep))
		memcpy(&rep, rep_buf, sizeof(rep));
	cl_sandbox_end *end = &step->end;
	long code = status_number(step->status, "\"exit-code\"");
	end->ran = code >= 0;
	if (end->ran)
		end->exit_code = (int)code;
	else if (rep.bwrap_status >= 0 && WIFEXITED(rep.bwrap_status))
		end->exit_code = WEXITSTATUS(rep.bwrap_status);
	else
		end->exit_code = -1;
	end->bwrap_signal = !end->ran && rep.bwrap_status >= 0 && WIFSIGNALED(rep.bwrap_status)
				    ? WTERMSIG(rep.bwrap_status)
				    : 0;
	end->cpu_used_s = (double)rep.cpu_us / 1e6;
	end->cpu_limit_s = ceil(lim->cpu_s);
	if (!end->ran && !end->timed_out && !step->cancelled && WIFEXITED(wstatus) &&
	    WEXITSTATUS(wstatus) == 127 && err->len == 0)
		capture_add(err, (const unsigned char *)"sandbox: the keeper failed\n", 27);
	return TS_OK;
}

/* --- cl_sandbox_run --- */

static uid_t chown_uid;
static gid_t chown_gid;

static int chown_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return lchown(path, chown_uid, chown_gid) != 0 ? -1 : 0;
}

/* The work dir and the job's files to the sandbox's uid, so that it may write there. */
static ts_err hand_over(const char *dir, uid_t uid, gid_t gid, char *why, size_t whylen)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER; /* nftw has no argument */
	pthread_mutex_lock(&mu);
	chown_uid = uid;
	chown_gid = gid;
	int r = nftw(dir, chown_one, 16, FTW_PHYS);
	pthread_mutex_unlock(&mu);
	if (r != 0) {
		snprintf(why, whylen, "cannot hand %s to uid %u: %s", dir, (unsigned)uid,
			 strerror(errno));
		return TS_ERR_IO;
	}
	return TS_OK;
}

/* bwrap's own complaint (its first "bwrap: " line), for the caller's why. */
static void bwrap_complaint(const capture *err, const char *what, char *why, size_t whylen)
{
	const char *s = err->buf ? (const char *)err->buf : "";
	const char *b = strstr(s, "bwrap: ");
	const char *line = b ? b : s;
	const char *nl = strchr(line, '\n');
	char raw[200], esc[256];
	snprintf(raw, sizeof(raw), "%.*s", nl ? (int)(nl - line) : (int)strlen(line), line);
	ts_escape_ctrl(raw, esc, sizeof(esc));
	snprintf(why, whylen, "%s: %s", what, esc[0] ? esc : "bwrap failed, saying nothing");
}

static void result_take(cl_sandbox_result *res, capture *out, capture *err)
{
	res->out = out->buf;
	res->out_len = out->len;
	res->out_truncated = out->truncated;
	out->buf = NULL;
	res->err = err->buf;
	res->err_len = err->len;
	res->err_truncated = err->truncated;
	err->buf = NULL;
}

/* A step that was cancelled or never started its command is the node's failure, not the
 * program's outcome. */
static ts_err step_node_failure(const step_out *step, const capture *err, char *why, size_t whylen)
{
	if (step->cancelled) {
		snprintf(why, whylen, "cancelled");
		return TS_ERR_UNAVAILABLE;
	}
	if (!step->end.ran && !step->end.timed_out) {
		bwrap_complaint(err, "the sandbox did not start", why, whylen);
		return TS_ERR_INTERNAL;
	}
	return TS_OK;
}

ts_err cl_sandbox_run(const cl_sandbox_spec *spec, cl_sandbox_result *res,
		      const volatile int *cancel, char *why, size_t whylen)
{
	memset(res, 0, sizeof(*res));
	res->exit_code = -1;
	double t0 = ts_mono();
	ts_err result = cl_sandbox_check(spec, why, whylen);
	if (result)
		return result;
	capture out = {0}, err = {0};
	char **argv = NULL;
	step_io io = {.null_fd = -1};
	cl_sandbox_lang lang = cl_sandbox_lang_of(spec->main);
	if ((spec->np > 1 || spec->hostfile) && access(CL_SANDBOX_MPIRUN, X_OK) != 0) {
		snprintf(why, whylen, "%d processes need mpirun: apt install openmpi-bin", spec->np);
		return TS_ERR_UNAVAILABLE;
	}
	if ((result = capture_init(&out, spec->stdout_max, 0)) ||
	    (result = capture_init(&err, spec->stderr_max, 1))) {
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	struct stat st;
	int bad_dir = stat(spec->work_dir, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
	if (bad_dir || (spec->hostfile && access(spec->hostfile, R_OK) != 0)) {
		snprintf(why, whylen, "%s: %s", bad_dir ? spec->work_dir : spec->hostfile,
			 strerror(bad_dir ? bad_dir : errno));
		result = TS_ERR_IO;
		goto out;
	}
	if ((io.null_fd = fd_high(open("/dev/null", O_RDWR | O_CLOEXEC))) < 0) {
		snprintf(why, whylen, "/dev/null: %s", strerror(errno));
		result = TS_ERR_IO;
		goto out;
	}
	if (geteuid() == 0) {
		io.drop = 1;
		io.uid = spec->run_uid ? spec->run_uid : CL_SANDBOX_NOBODY;
		io.gid = spec->run_gid ? spec->run_gid : CL_SANDBOX_NOBODY;
		if ((result = hand_over(spec->work_dir, io.uid, io.gid, why, whylen)))
			goto out;
		io.work_dir = spec->work_dir;
		io.hostfile_path = spec->hostfile;
		io.work = STAGE_WORK;
		io.hostfile = STAGE_HOSTFILE;
	} else {
		io.work = spec->work_dir;
		io.hostfile = spec->hostfile;
	}
	cl_sandbox_host host;
	cl_sandbox_host_scan(&host);
	double deadline = t0 + spec->wall_s;
	step_out step;
	if (lang == CL_SANDBOX_LANG_C) {
		step_limits clim = {spec->cpu_s, spec->memory_mb, spec->file_mb};
		if (clim.memory_mb < COMPILE_MEMORY_MB)
			clim.memory_mb = COMPILE_MEMORY_MB;
		if (clim.file_mb < COMPILE_FILE_MB)
			clim.file_mb = COMPILE_FILE_MB;
		if (!(argv = cl_sandbox_argv(spec, &host, CL_SANDBOX_COMPILE, io.work, io.hostfile))) {
			result = TS_ERR_NOMEM;
			snprintf(why, whylen, "out of memory");
			goto out;
		}
		if ((result = run_step(argv, &io, &clim, deadline, cancel, NULL, &err, &step, why,
				       whylen)))
			goto out;
		cl_sandbox_argv_free(argv);
		argv = NULL;
		if ((result = step_node_failure(&step, &err, why, whylen)))
			goto out;
		if (step.end.timed_out || step.end.exit_code != 0) {
			if (step.end.timed_out)
				snprintf(res->status, sizeof(res->status), "killed: time limit");
			else
				snprintf(res->status, sizeof(res->status), "compile error");
			res->exit_code = step.end.timed_out ? -1 : step.end.exit_code;
			goto done;
		}
		err.len = 0; /* a compile's warnings are not the program's stderr */
		err.buf[0] = '\0';
		err.truncated = 0;
		err.tail_len = err.tail_pos = 0;
	}
	step_limits lim = {spec->cpu_s, spec->memory_mb, spec->file_mb};
	if (!(argv = cl_sandbox_argv(spec, &host, CL_SANDBOX_RUN, io.work, io.hostfile))) {
		result = TS_ERR_NOMEM;
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	if ((result = run_step(argv, &io, &lim, deadline, cancel, &out, &err, &step, why, whylen)) ||
	    (result = step_node_failure(&step, &err, why, whylen)))
		goto out;
	char tail[ERR_TAIL];
	step.end.err_tail = tail;
	step.end.err_tail_len = capture_tail(&err, tail);
	cl_sandbox_classify(&step.end, res->status, sizeof(res->status), &res->exit_code);
done:
	result_take(res, &out, &err);
	res->wall_s = ts_mono() - t0;
out:
	cl_sandbox_argv_free(argv);
	free(out.buf);
	free(err.buf);
	if (io.null_fd >= 0)
		close(io.null_fd);
	if (result) {
		res->exit_code = -1;
		res->status[0] = '\0';
	}
	return result;
}

void cl_sandbox_result_free(cl_sandbox_result *res)
{
	free(res->out);
	free(res->err);
	res->out = res->err = NULL;
	res->out_len = res->err_len = 0;
}

/* --- The probe --- */

/* Runs argv (outside any sandbox, a clean environment) to its end, at most timeout_s; its
 * stdout and stderr into out. Returns its exit status, or -1. */
static int run_capture(char *const argv[], char *out, size_t cap, double timeout_s)
{
	static char *const envp[] = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8", NULL};
	int p[2];
	out[0] = '\0';
	if (access(argv[0], X_OK) != 0 || pipe2(p, O_CLOEXEC) != 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		int null_fd = open("/dev/null", O_RDONLY);
		if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(p[1], 1) < 0 || dup2(p[1], 2) < 0)
			_exit(127);
		execve(argv[0], argv, envp);
		_exit(127);
	}
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		return -1;
	}
	size_t len = 0;
	double deadline = ts_mono() + timeout_s;
	for (;;) {
		double left = deadline - ts_mono();
		if (left <= 0) {
			kill(pid, SIGKILL);
			break;
		}
		struct pollfd pfd = {.fd = p[0], .events = POLLIN};
		if (poll(&pfd, 1, (int)(left * 1000) + 1) < 0 && errno != EINTR)
			break;
		char buf[1024];
		ssize_t n = read(p[0], buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
			break;
		if (n > 0 && len + 1 < cap) {
			size_t keep = cap - 1 - len < (size_t)n ? cap - 1 - len : (size_t)n;
			memcpy(out + len, buf, keep);
			len += keep;
			out[len] = '\0';
		}
	}
	close(p[0]);
	int st = 0;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/* The first line of s, without its newline, into out. */
static void first_line(const char *s, char *out, size_t cap)
{
	size_t n = strcspn(s, "\r\n");
	snprintf(out, cap, "%.*s", (int)n, s);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

/* Runs a program in a real sandbox in a temp dir: "" when it printed want, else why not. */
static void probe_sandbox(const char *main, const char *text, const char *want, char *why,
			  size_t whylen)
{
	char dir[] = "/tmp/tessera-sandbox-probe-XXXXXX", path[128];
	why[0] = '\0';
	if (!mkdtemp(dir)) {
		snprintf(why, whylen, "cannot make a temp dir in /tmp: %s", strerror(errno));
		return;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, main);
	cl_sandbox_result res;
	cl_sandbox_spec spec = {.work_dir = dir, .main = main, .np = 1, .wall_s = 30, .cpu_s = 10,
				.memory_mb = 512, .nproc = 64, .file_mb = 1, .stdout_max = 256,
				.stderr_max = 4096};
	char err[256] = "";
	ts_err e = ts_write_file(path, text, strlen(text), 0644);
	if (e)
		snprintf(why, whylen, "cannot write %s: %s", path, ts_strerror(e));
	else if ((e = cl_sandbox_run(&spec, &res, NULL, err, sizeof(err))))
		snprintf(why, whylen, "%s", err);
	else if (strcmp(res.status, "ok") != 0 || !res.out || strcmp((char *)res.out, want) != 0) {
		char line[200], esc[256];
		first_line(res.err ? (char *)res.err : "", line, sizeof(line));
		ts_escape_ctrl(line, esc, sizeof(esc));
		snprintf(why, whylen, "%.40s: %.120s", res.status, esc);
	}
	if (!e)
		cl_sandbox_result_free(&res);
	nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

ts_err cl_sandbox_probe(const char *hostfile, cl_sandbox_caps *caps)
{
	char buf[1024], why[200];
	memset(caps, 0, sizeof(*caps));
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	caps->slots = cpus > 0 ? (int)cpus : 1;
	if (hostfile) {
		char *text = NULL;
		size_t len = 0;
		ts_err e = ts_read_file(hostfile, 1 << 20, &text, &len);
		int slots = e ? -1 : cl_sandbox_hostfile_slots(text);
		free(text);
		if (slots <= 0) {
			snprintf(caps->why, sizeof(caps->why), "hostfile %.150s: %s", hostfile,
				 e ? ts_strerror(e) : slots < 0 ? "a malformed slots=" : "no hosts in it");
			return TS_ERR_BAD_REQUEST;
		}
		caps->slots = slots;
	}
	char *bw[] = {CL_SANDBOX_BWRAP, "--version", NULL};
	if (access(CL_SANDBOX_BWRAP, X_OK) != 0) {
		snprintf(caps->why, sizeof(caps->why),
			 "bubblewrap is not installed (no %s): apt install bubblewrap", CL_SANDBOX_BWRAP);
		return TS_OK;
	}
	if (run_capture(bw, buf, sizeof(buf), 10) == 0 && strncmp(buf, "bubblewrap ", 11) == 0)
		first_line(buf + 11, caps->bwrap, sizeof(caps->bwrap));
	if (access(CL_SANDBOX_PRLIMIT, X_OK) != 0) {
		snprintf(caps->why, sizeof(caps->why),
			 "prlimit is missing (no %s): apt install util-linux", CL_SANDBOX_PRLIMIT);
		return TS_OK;
	}
	probe_sandbox("probe.sh", "echo sandboxed\n", "sandboxed\n", why, sizeof(why));
	if (why[0]) {
		snprintf(caps->why, sizeof(caps->why), "bwrap cannot create namespaces here: %s", why);
		return TS_OK;
	}
	caps->ok = 1;
	caps->mpirun = access(CL_SANDBOX_MPIRUN, X_OK) == 0;
	if (!caps->mpirun)
		caps->slots = 1;
	char *py[] = {CL_SANDBOX_PYTHON3, "-c",
		      "import platform\nprint(platform.python_version())\n"
		      "import mpi4py\nprint(mpi4py.__version__)\n",
		      NULL};
	run_capture(py, buf, sizeof(buf), 20);
	char *nl = strchr(buf, '\n');
	if (nl && isdigit((unsigned char)buf[0])) {
		first_line(buf, caps->python3, sizeof(caps->python3));
		if (isdigit((unsigned char)nl[1]))
			first_line(nl + 1, caps->mpi4py, sizeof(caps->mpi4py));
	}
	if (caps->mpi4py[0]) {
		/* mpi4py's MPI_Init in the sandbox, the one thing Python programs all do */
		probe_sandbox("probe.py", "from mpi4py import MPI\nprint(MPI.COMM_WORLD.Get_size())\n",
			      "1\n", why, sizeof(why));
		if (why[0])
			caps->mpi4py[0] = '\0';
	}
	char *cc_version[] = {CL_SANDBOX_MPICC, "--showme:version", NULL};
	char *cc_works[] = {CL_SANDBOX_MPICC, "--version", NULL};
	if (run_capture(cc_version, buf, sizeof(buf), 10) == 0 &&
	    run_capture(cc_works, why, sizeof(why), 10) == 0) {
		/* "mpicc: Open MPI 4.1.4 (Language: C)" */
		const char *colon = strstr(buf, ": ");
		const char *v = colon ? colon + 2 : buf;
		size_t n = strcspn(v, "(\r\n");
		while (n && v[n - 1] == ' ')
			n--;
		snprintf(caps->mpicc, sizeof(caps->mpicc), "%.*s", (int)n, v);
	}
	return TS_OK;
}

json_t *cl_sandbox_caps_json(const cl_sandbox_caps *caps)
{
	if (!caps->ok)
		return NULL;
	char sandbox[64];
	snprintf(sandbox, sizeof(sandbox), "bwrap %s", caps->bwrap[0] ? caps->bwrap : "unknown");
	json_t *langs = json_array();
	if (langs && caps->python3[0] && caps->mpi4py[0])
		json_array_append_new(langs, json_string("py"));
	if (langs && caps->mpicc[0])
		json_array_append_new(langs, json_string("c"));
	if (langs)
		json_array_append_new(langs, json_string("sh"));
	return json_pack("{s:s, s:s, s:s, s:s, s:o*, s:i}", "sandbox", sandbox, "python3",
			 caps->python3, "mpi4py", caps->mpi4py, "mpicc", caps->mpicc, "langs", langs,
			 "slots", caps->slots);
}
