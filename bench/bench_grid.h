/* bench_grid.h: what the dispatch benchmarks (issue 12) share, header-only because every
 * .c file of bench/ is a program of its own (bench/CMakeLists.txt). Include it from one .c only.
 *
 * A grid is a real tessera-server in a temp dir (/tmp/tessera-bench-XXXXXX, removed at the end
 * with everything under it) and up to GRID_MAX_CLIENTS real `tessera-client run` processes,
 * each with its own state dir inside it, all on 127.0.0.1. Set-up goes through the API
 * (cl_http, pinned to the server's key), as a user would. Every child dies with the bench
 * (PR_SET_PDEATHSIG) and grid_cleanup kills and reaps them. Parts of it are bench_load.c's
 * server start-up, copied. */
#ifndef BENCH_GRID_H
#define BENCH_GRID_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cl_http.h"
#include "ts_util.h"

#define GRID_MAX_CLIENTS 8
#define GRID_PASSWORD "bench-grid-admin-password"

struct grid {
	const char *prog;             /* for messages */
	char bindir[PATH_MAX + 8];    /* the dir of tessera-server and tessera-client */
	char dir[256];                /* our temp dir, removed at the end */
	char data[PATH_MAX], log[PATH_MAX + 32];
	char url[128], pin[128];
	pid_t server;
	pid_t client[GRID_MAX_CLIENTS];
	int nclients;
	cl_http *admin; /* logged in as the admin */
};

static inline void grid_sleep(double s)
{
	if (s <= 0)
		return;
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static inline int grid_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* Kills (SIGTERM, then SIGKILL after 3 s) and reaps one child. */
static inline void grid_kill(pid_t *pid)
{
	if (*pid <= 0)
		return;
	kill(*pid, SIGTERM);
	double end = ts_mono() + 3;
	while (waitpid(*pid, NULL, WNOHANG) == 0) {
		if (ts_mono() > end) {
			kill(*pid, SIGKILL);
			waitpid(*pid, NULL, 0);
			break;
		}
		grid_sleep(0.01);
	}
	*pid = 0;
}

static inline void grid_cleanup(struct grid *g)
{
	for (int i = 0; i < GRID_MAX_CLIENTS; i++)
		grid_kill(&g->client[i]);
	cl_http_close(g->admin);
	g->admin = NULL;
	if (g->server > 0) {
		kill(g->server, SIGKILL);
		waitpid(g->server, NULL, 0);
		g->server = 0;
	}
	if (g->dir[0] && !getenv("BENCH_KEEP")) {
		nftw(g->dir, grid_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		g->dir[0] = '\0';
	}
}

static inline void grid_pin_self(int cpu)
{
	if (cpu < 0)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

/* fork + exec, stdout and stderr to logfile (NULL: a pipe returned in *pipe_rd), stdin from
 * /dev/null; cpu >= 0 pins the child; env "VAR=VALUE" (or NULL) is put in its environment. */
static inline pid_t grid_spawn(char *const argv[], const char *logfile, int cpu, int *pipe_rd, char *env)
{
	int p[2] = {-1, -1};
	if (pipe_rd && pipe(p) != 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int fd = pipe_rd ? p[1] : open(logfile ? logfile : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		if (pipe_rd)
			close(p[0]);
		int nul = open("/dev/null", O_RDONLY);
		if (nul >= 0) {
			dup2(nul, 0);
			close(nul);
		}
		if (env)
			putenv(env);
		grid_pin_self(cpu);
		execv(argv[0], argv);
		_exit(127);
	}
	if (pipe_rd) {
		close(p[1]);
		*pipe_rd = p[0];
	}
	return pid;
}

/* Runs argv to completion (at most timeout_s), its output into buf. Returns the exit status. */
static inline int grid_run_capture(char *const argv[], char *buf, size_t cap, double timeout_s, char *env)
{
	int rd = -1;
	pid_t pid = grid_spawn(argv, NULL, -1, &rd, env);
	if (pid < 0)
		return -1;
	size_t n = 0;
	double end = ts_mono() + timeout_s;
	fcntl(rd, F_SETFL, O_NONBLOCK);
	for (;;) {
		ssize_t r = read(rd, buf + n, cap - 1 - n);
		if (r > 0) {
			n += (size_t)r;
			if (n >= cap - 1)
				break;
			continue;
		}
		if (r == 0)
			break;
		if (ts_mono() > end) {
			kill(pid, SIGKILL);
			break;
		}
		grid_sleep(0.005);
	}
	buf[n] = '\0';
	close(rd);
	int st = 0;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- /proc ---------------------------------------------------------------------------------- */

/* utime + stime of a process, in clock ticks. */
static inline int grid_cpu_ticks(pid_t pid, unsigned long long *ticks)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')'), *save = NULL;
	if (!p)
		return -1;
	unsigned long long ut = 0, stt = 0;
	int field = 2; /* after "pid (comm)": utime and stime are fields 14 and 15 */
	for (char *tok = strtok_r(p + 1, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		field++;
		if (field == 14)
			ut = strtoull(tok, NULL, 10);
		if (field == 15) {
			stt = strtoull(tok, NULL, 10);
			break;
		}
	}
	*ticks = ut + stt;
	return 0;
}

/* A "Key:" line of /proc/PID/status in KiB (VmRSS:, VmHWM:), or -1. */
static inline long grid_status_kb(pid_t pid, const char *key)
{
	char path[64], line[256];
	long v = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t kl = strlen(key);
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, kl) == 0) {
			v = strtol(line + kl, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static inline void grid_loadavg(char *buf, size_t cap)
{
	FILE *f = fopen("/proc/loadavg", "r");
	buf[0] = '\0';
	if (f) {
		if (!fgets(buf, (int)cap, f))
			buf[0] = '\0';
		fclose(f);
	}
	/* the three averages only */
	char *p = buf;
	for (int i = 0; i < 3 && p; i++)
		p = strchr(p + (i > 0), ' ');
	if (p)
		*p = '\0';
	buf[strcspn(buf, "\n")] = '\0';
}

static inline void grid_cpu_model(char *buf, size_t cap)
{
	char line[256];
	snprintf(buf, cap, "unknown CPU");
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "model name", 10) == 0 && strchr(line, ':')) {
			char *v = strchr(line, ':') + 1;
			v += strspn(v, " \t");
			v[strcspn(v, "\n")] = '\0';
			snprintf(buf, cap, "%s", v);
			break;
		}
	fclose(f);
}

/* One line about the machine: CPUs, model, load average. */
static inline void grid_print_machine(FILE *out)
{
	char model[128], la[128];
	grid_cpu_model(model, sizeof(model));
	grid_loadavg(la, sizeof(la));
	fprintf(out, "machine: %ld CPUs online (%s); load average %s\n", sysconf(_SC_NPROCESSORS_ONLN), model, la);
}

static inline int grid_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Sorts v and returns its median. */
static inline double grid_median(double *v, int n)
{
	if (n <= 0)
		return NAN;
	qsort(v, (size_t)n, sizeof(*v), grid_cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- server and API --------------------------------------------------------------------------- */

/* g->bindir: the dir above this program's (build/bench/.. = build), where the server and the
 * client are built. */
static inline int grid_init(struct grid *g, const char *prog, const char *bindir)
{
	memset(g, 0, sizeof(*g));
	g->prog = prog;
	if (bindir) {
		snprintf(g->bindir, sizeof(g->bindir), "%s", bindir);
	} else {
		char exe[PATH_MAX - 8];
		ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		if (n <= 0)
			return -1;
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (!slash)
			return -1;
		*slash = '\0';
		snprintf(g->bindir, sizeof(g->bindir), "%s/..", exe);
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (!getenv("TESSERA_ADMIN_PASSWORD"))
		setenv("TESSERA_ADMIN_PASSWORD", GRID_PASSWORD, 1);
	snprintf(g->dir, sizeof(g->dir), "/tmp/tessera-bench-XXXXXX");
	if (!mkdtemp(g->dir)) {
		g->dir[0] = '\0';
		perror("mkdtemp");
		return -1;
	}
	snprintf(g->data, sizeof(g->data), "%s/data", g->dir);
	snprintf(g->log, sizeof(g->log), "%s/server.log", g->dir);
	return 0;
}

/* Inits the store and starts `tessera-server run` with extra options (NULL-terminated), pinned
 * to cpu (-1: not); fills g->url and g->pin, and logs in as the admin. */
static inline int grid_server_start(struct grid *g, char *const extra[], int cpu)
{
	char text[8192], server[PATH_MAX + 32], portfile[PATH_MAX + 16];
	snprintf(server, sizeof(server), "%s/tessera-server", g->bindir);
	snprintf(portfile, sizeof(portfile), "%s/server.port", g->data);
	char *init_argv[] = {server, "init", "--data", g->data, NULL};
	if (grid_run_capture(init_argv, text, sizeof(text), 60, NULL) != 0) {
		fprintf(stderr, "%s: %s init failed:\n%s", g->prog, server, text);
		return -1;
	}
	char *pin_argv[] = {server, "pin", "--data", g->data, NULL};
	if (grid_run_capture(pin_argv, text, sizeof(text), 30, NULL) != 0 || strncmp(text, "sha256//", 8) != 0) {
		fprintf(stderr, "%s: %s pin failed:\n%s", g->prog, server, text);
		return -1;
	}
	text[strcspn(text, "\r\n")] = '\0';
	snprintf(g->pin, sizeof(g->pin), "%.120s", text);
	char *argv[32] = {server, "run", "--data", g->data, "--listen", "127.0.0.1:0", "--quiet"};
	int n = 7;
	for (int i = 0; extra && extra[i] && n < 31; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	g->server = grid_spawn(argv, g->log, cpu, NULL, NULL);
	if (g->server < 0)
		return -1;
	double end = ts_mono() + 20;
	char *port = NULL;
	while (ts_read_file(portfile, 64, &port, NULL) != TS_OK) {
		int st;
		if (waitpid(g->server, &st, WNOHANG) == g->server) {
			g->server = 0;
			if (ts_read_file(g->log, 4096, &port, NULL) == TS_OK) {
				fprintf(stderr, "%s: the server exited at start:\n%s", g->prog, port);
				free(port);
			}
			return -1;
		}
		if (ts_mono() > end) {
			fprintf(stderr, "%s: the server did not start in 20 s (see %s)\n", g->prog, g->log);
			return -1;
		}
		grid_sleep(0.02);
	}
	snprintf(g->url, sizeof(g->url), "https://127.0.0.1:%d", atoi(port));
	free(port);
	char why[256];
	cl_http_opts ho = {.url = g->url, .pin = g->pin};
	if (cl_http_open(&ho, &g->admin, why, sizeof(why))) {
		fprintf(stderr, "%s: %s\n", g->prog, why);
		return -1;
	}
	int status = 0;
	json_t *login = NULL, *body = json_pack("{s:s,s:s}", "username", "admin", "password",
						   getenv("TESSERA_ADMIN_PASSWORD"));
	ts_err e = cl_http_request(g->admin, "POST", "/api/v1/login", body, &status, &login, why, sizeof(why));
	json_decref(body);
	if (e) {
		fprintf(stderr, "%s: login: HTTP %d: %s\n", g->prog, status, why);
		return -1;
	}
	cl_http_set_token(g->admin, json_string_value(json_object_get(login, "token")));
	json_decref(login);
	return 0;
}

/* A request that must answer `want`; takes body; returns the reply (a new reference) or NULL
 * after printing why. *ms: its time. */
static inline json_t *grid_api(struct grid *g, cl_http *h, const char *method, const char *path,
			       json_t *body, int want, double *ms)
{
	int status = 0;
	json_t *reply = NULL;
	char msg[CL_HTTP_MSG_MAX];
	double t0 = ts_mono();
	ts_err e = cl_http_request(h, method, path, body, &status, &reply, msg, sizeof(msg));
	if (ms)
		*ms = (ts_mono() - t0) * 1e3;
	json_decref(body);
	if (e || status != want) {
		fprintf(stderr, "%s: %s %s: HTTP %d: %s\n", g->prog, method, path, status, e ? msg : "unexpected status");
		json_decref(reply);
		return NULL;
	}
	return reply;
}

/* A new enrollment token with `uses` uses, into tok (TS_TOKEN_MAX is 256 at most). */
static inline int grid_enroll_token(struct grid *g, int uses, char *tok, size_t cap)
{
	json_t *t = grid_api(g, g->admin, "POST", "/api/v1/enroll-tokens",
			     json_pack("{s:i,s:i}", "uses", uses, "ttl_s", 3600), 201, NULL);
	if (!t)
		return -1;
	snprintf(tok, cap, "%s", json_string_value(json_object_get(t, "token")));
	json_decref(t);
	return 0;
}

/* ---- real clients ----------------------------------------------------------------------------- */

/* `tessera-client enroll` of client i (state in DIR/client-i, name bench-i) with one use of a
 * fresh enrollment token (in the environment, not in argv), and extra options. */
static inline int grid_client_enroll(struct grid *g, int i, char *const extra[])
{
	char client[PATH_MAX + 32], state[PATH_MAX], name[32], tok[512], env[600], text[8192];
	if (grid_enroll_token(g, 1, tok, sizeof(tok)))
		return -1;
	snprintf(client, sizeof(client), "%s/tessera-client", g->bindir);
	snprintf(state, sizeof(state), "%s/client-%d", g->dir, i);
	snprintf(name, sizeof(name), "bench-%d", i);
	snprintf(env, sizeof(env), "TESSERA_ENROLL_TOKEN=%s", tok);
	char *argv[24] = {client, "enroll", g->url, "--state", state, "--name", name};
	int n = 7;
	for (int k = 0; extra && extra[k] && n < 23; k++)
		argv[n++] = extra[k];
	argv[n] = NULL;
	if (grid_run_capture(argv, text, sizeof(text), 60, env) != 0) {
		fprintf(stderr, "%s: enrolling client %d failed:\n%s", g->prog, i, text);
		return -1;
	}
	return 0;
}

/* Starts `tessera-client run --state DIR/client-i` with extra options, pinned to cpu (-1: not),
 * its output to DIR/client-i.log. */
static inline int grid_client_start(struct grid *g, int i, char *const extra[], int cpu)
{
	char client[PATH_MAX + 32], state[PATH_MAX], log[PATH_MAX + 16];
	snprintf(client, sizeof(client), "%s/tessera-client", g->bindir);
	snprintf(state, sizeof(state), "%s/client-%d", g->dir, i);
	snprintf(log, sizeof(log), "%s/client-%d.log", g->dir, i);
	char *argv[24] = {client, "run", "--state", state};
	int n = 4;
	for (int k = 0; extra && extra[k] && n < 23; k++)
		argv[n++] = extra[k];
	argv[n] = NULL;
	grid_kill(&g->client[i]);
	g->client[i] = grid_spawn(argv, log, cpu, NULL, NULL);
	if (i >= g->nclients)
		g->nclients = i + 1;
	return g->client[i] > 0 ? 0 : -1;
}

/* Splits a string of options at spaces into argv (at most cap-1 words, NULL-terminated); s is
 * modified and must outlive argv. */
static inline void grid_split_args(char *s, char **argv, int cap)
{
	int n = 0;
	for (char *save = NULL, *w = strtok_r(s, " ", &save); w && n < cap - 1; w = strtok_r(NULL, " ", &save))
		argv[n++] = w;
	argv[n] = NULL;
}

/* Waits until GET /api/v1/nodes shows `n` nodes online, at most timeout_s. */
static inline int grid_wait_nodes(struct grid *g, int n, double timeout_s)
{
	double end = ts_mono() + timeout_s;
	while (ts_mono() < end) {
		json_t *r = grid_api(g, g->admin, "GET", "/api/v1/nodes", NULL, 200, NULL);
		int online = 0;
		size_t i;
		json_t *nd;
		json_array_foreach(json_object_get(r, "nodes"), i, nd)
			online += strcmp(json_string_value(json_object_get(nd, "state")) ?: "", "online") == 0;
		json_decref(r);
		if (online >= n)
			return 0;
		grid_sleep(0.1);
	}
	fprintf(stderr, "%s: %d nodes did not come online in %.0f s\n", g->prog, n, timeout_s);
	return -1;
}

/* Disables the node named `name` (POST /api/v1/nodes/ID/disable): its token is refused from
 * then on. For a node whose client was stopped: a fetch it left waiting on the server must not
 * take work. */
static inline int grid_node_disable(struct grid *g, const char *name)
{
	json_t *r = grid_api(g, g->admin, "GET", "/api/v1/nodes", NULL, 200, NULL);
	size_t i;
	json_t *nd;
	long long id = 0;
	json_array_foreach(json_object_get(r, "nodes"), i, nd)
		if (strcmp(json_string_value(json_object_get(nd, "name")) ?: "", name) == 0)
			id = json_integer_value(json_object_get(nd, "id"));
	json_decref(r);
	if (id <= 0)
		return -1;
	char path[96];
	snprintf(path, sizeof(path), "/api/v1/nodes/%lld/disable", id);
	r = grid_api(g, g->admin, "POST", path, NULL, 200, NULL);
	json_decref(r);
	return r ? 0 : -1;
}

/* Submits a montecarlo_pi job; returns its id (or -1). *reply_s: the POST's time. */
static inline int64_t grid_submit_pi(struct grid *g, uint64_t samples, uint64_t seed, int units, double *reply_s)
{
	double ms = 0;
	json_t *job = grid_api(g, g->admin, "POST", "/api/v1/jobs",
			       json_pack("{s:s,s:{s:I,s:I},s:i,s:i}", "kernel", "montecarlo_pi", "params",
					 "samples", (json_int_t)samples, "seed", (json_int_t)seed, "units", units,
					 "deadline_s", 600),
			       201, &ms);
	if (!job)
		return -1;
	int64_t id = json_integer_value(json_object_get(job, "id"));
	json_decref(job);
	if (reply_s)
		*reply_s = ms / 1e3;
	return id;
}

/* Polls GET /api/v1/jobs/ID every poll_s until the job is finished (or timeout_s). Returns the
 * job (a new reference) or NULL. *t_done: ts_mono() when the finished state was seen;
 * *t_running (NULL: not wanted): when a state other than queued was first seen. */
static inline json_t *grid_wait_job(struct grid *g, int64_t id, double poll_s, double timeout_s,
				    double *t_done, double *t_running)
{
	char path[64];
	snprintf(path, sizeof(path), "/api/v1/jobs/%lld", (long long)id);
	double end = ts_mono() + timeout_s;
	if (t_running)
		*t_running = 0;
	while (ts_mono() < end) {
		json_t *job = grid_api(g, g->admin, "GET", path, NULL, 200, NULL);
		double now = ts_mono();
		if (!job)
			return NULL;
		const char *st = json_string_value(json_object_get(job, "state")) ?: "";
		json_t *u = json_object_get(job, "units");
		int moving = strcmp(st, "queued") != 0 || json_integer_value(json_object_get(u, "leased")) > 0;
		if (t_running && !*t_running && moving)
			*t_running = now;
		if (strcmp(st, "done") == 0 || strcmp(st, "failed") == 0 || strcmp(st, "cancelled") == 0) {
			*t_done = now;
			return job;
		}
		json_decref(job);
		grid_sleep(poll_s);
	}
	fprintf(stderr, "%s: job %lld not finished in %.0f s\n", g->prog, (long long)id, timeout_s);
	return NULL;
}

#endif
