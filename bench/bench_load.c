/* bench_load: the server throughput load generator (issue 6, "Server throughput").
 *
 * Starts a real tessera-server on 127.0.0.1 (a temp data dir, or --data DIR), enrolls N
 * simulated nodes through the API, submits montecarlo_pi jobs of tiny units and drives N
 * keep-alive TLS connections (libcurl multi, one easy handle per node, pinned to the server's
 * key): fetch (max_units = B) -> compute the units for real -> report, for a fixed time after a
 * warm-up. Prints units/s, requests/s, fetch and report latency, the server's CPU and RSS and
 * its own CPU. At the end it kills the server with SIGKILL and checks in the SQLite file that
 * every unit it saw accepted is recorded valid, and that every finished job's result is exact.
 * --healthz drives GET /healthz on the same connections instead (the bare evhttp+TLS ceiling).
 *
 * Exit status: 0 ok, 1 the durability or exactness check failed, 2 usage, 3 set-up failed. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
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
#include <sqlite3.h>

#include "cl_http.h"
#include "kern.h"
#include "ts_util.h"

#define MAX_GEN_THREADS 2
#define MAX_JOBS 4096
#define JOB_MAX_UNITS 1000000
#define ENROLL_TOKEN_USES 10000
#define DEFAULT_PASSWORD "bench-load-admin-password"

enum { PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_STOP };
enum { N_IDLE, N_FETCH, N_REPORT, N_HEALTH, N_DONE };

struct opts {
	int conns, batch, gen_threads, json, healthz, keep, split, server_log;
	double seconds, warmup, drain, rss_every, timeout;
	uint64_t unit_size;
	int64_t job_units;
	const char *server, *data;
	char *server_env[8]; /* --server-env VAR=VALUE, for the server only */
	int nenv;
	int report_fetch; /* reports carry the next fetch */
};

struct lat {
	uint32_t *v; /* microseconds */
	size_t n, cap;
};

struct jcache {
	int64_t job;
	const kern *k;
	kern_args args;
};

struct gen;

struct node {
	struct gen *g;
	CURL *e;
	struct curl_slist *hdr;
	int state;
	double t0, wake;
	char *rx;
	size_t rxn, rxcap;
	char *tx; /* the report body (json_dumps), kept until the transfer ends */
	int held; /* units in the report in flight */
	int then; /* N_IDLE: what to send when woken */
};

struct gen {
	int idx;
	CURLM *m;
	struct node *nodes;
	int n, active;
	struct lat fetch_lat, report_lat;
	struct jcache jc[64];
	int njc;
	_Atomic uint64_t fetched, accepted, requests, fetches, reports, empty, errors, rejected, conns;
	_Atomic uint64_t in_doubt; /* units of reports abandoned unanswered at the end */
	char first_error[256];
	double compute_s;
};

static struct {
	struct opts o;
	pid_t server;
	char dir[256];       /* temp dir we made (removed at the end), or "" */
	char data[PATH_MAX]; /* the server's data dir */
	char log[PATH_MAX + 32];
	char url[128], pin[128];
	char url_fetch[160], url_report[160], url_health[160];
	char fetch_body[64];
	_Atomic int phase;
	volatile sig_atomic_t interrupted;
	struct gen gens[MAX_GEN_THREADS];
	struct {
		int64_t id;
		uint64_t samples, seed;
		int64_t units;
		double submit_ms;
	} jobs[MAX_JOBS];
	int njobs;
	uint64_t submitted_units;
} G;

static FILE *out; /* human-readable lines: stdout, or stderr with --json */

static void sleep_s(double s)
{
	if (s <= 0)
		return;
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !G.interrupted)
		;
}

/* ---- processes --------------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void cleanup(void)
{
	if (G.server > 0) {
		kill(G.server, SIGKILL);
		waitpid(G.server, NULL, 0);
		G.server = 0;
	}
	if (G.dir[0] && !G.o.keep) {
		nftw(G.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		G.dir[0] = '\0';
	}
}

static void on_signal(int sig)
{
	G.interrupted = 1;
	atomic_store(&G.phase, PH_DRAIN);
}

static void on_alarm(int sig)
{
	/* Hard time bound: never leave a server behind. */
	if (G.server > 0)
		kill(G.server, SIGKILL);
	static const char msg[] = "bench_load: hard time limit reached, giving up\n";
	if (write(2, msg, sizeof(msg) - 1) < 0) {
	}
	_exit(3);
}

/* fork + exec with stdout/stderr to logfile (NULL: a pipe whose text goes to out, cap bytes).
 * cpu >= 0 pins the child to that CPU. The child dies with us (PR_SET_PDEATHSIG). */
static pid_t spawn(char *const argv[], const char *logfile, int cpu, int *pipe_rd)
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
		for (int i = 0; logfile && i < G.o.nenv; i++)
			putenv(G.o.server_env[i]);
		if (cpu >= 0) {
			cpu_set_t set;
			CPU_ZERO(&set);
			CPU_SET(cpu, &set);
			sched_setaffinity(0, sizeof(set), &set);
		}
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
static int run_capture(char *const argv[], char *buf, size_t cap, double timeout_s)
{
	int rd = -1;
	pid_t pid = spawn(argv, NULL, -1, &rd);
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
		sleep_s(0.005);
	}
	buf[n] = '\0';
	close(rd);
	int st = 0;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int proc_cpu_ticks(pid_t pid, unsigned long long *ticks)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (!p)
		return -1;
	/* After "pid (comm)" come fields 3..; utime and stime are fields 14 and 15. */
	unsigned long long ut = 0, stt = 0;
	int field = 2;
	for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " ")) {
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

/* A "Vm...:" line of /proc/PID/status in KiB, or -1. */
static long proc_status_kb(pid_t pid, const char *key)
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

static double self_cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

static void loadavg(char *buf, size_t cap)
{
	FILE *f = fopen("/proc/loadavg", "r");
	buf[0] = '\0';
	if (f) {
		if (!fgets(buf, (int)cap, f))
			buf[0] = '\0';
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = '\0';
}

static const char *default_server(char *buf, size_t cap)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			snprintf(buf, cap, "%s/../tessera-server", exe);
			if (access(buf, X_OK) == 0)
				return buf;
		}
	}
	return "tessera-server";
}

/* Inits (when new) and starts the server; fills G.url and G.pin. */
static int server_start(void)
{
	char text[8192], dbpath[PATH_MAX + 16], portfile[PATH_MAX + 16];
	snprintf(dbpath, sizeof(dbpath), "%s/tessera.db", G.data);
	snprintf(portfile, sizeof(portfile), "%s/server.port", G.data);
	if (access(dbpath, F_OK) != 0) {
		char *argv[] = {(char *)G.o.server, "init", "--data", G.data, NULL};
		if (run_capture(argv, text, sizeof(text), 60) != 0) {
			fprintf(stderr, "bench_load: %s init failed:\n%s", G.o.server, text);
			return -1;
		}
	}
	char *pin_argv[] = {(char *)G.o.server, "pin", "--data", G.data, NULL};
	if (run_capture(pin_argv, text, sizeof(text), 30) != 0 || strncmp(text, "sha256//", 8) != 0) {
		fprintf(stderr, "bench_load: %s pin failed:\n%s", G.o.server, text);
		return -1;
	}
	text[strcspn(text, "\r\n")] = '\0';
	snprintf(G.pin, sizeof(G.pin), "%.120s", text);
	unlink(portfile);
	char *argv[] = {(char *)G.o.server, "run", "--data", G.data, "--listen", "127.0.0.1:0",
			"--rate-limit", "0", "--login-rate", "0", "--max-connections-per-address",
			"100000", "--max-connections", "100000", G.o.server_log ? NULL : "--quiet", NULL};
	G.server = spawn(argv, G.log, G.o.split ? 0 : -1, NULL);
	if (G.server < 0)
		return -1;
	double end = ts_mono() + 20;
	char *port = NULL;
	while (ts_read_file(portfile, 64, &port, NULL) != TS_OK) {
		int st;
		if (waitpid(G.server, &st, WNOHANG) == G.server) {
			G.server = 0;
			fprintf(stderr, "bench_load: the server exited at start (see %s)\n", G.log);
			return -1;
		}
		if (ts_mono() > end) {
			fprintf(stderr, "bench_load: the server did not start in 20 s (see %s)\n", G.log);
			return -1;
		}
		sleep_s(0.02);
	}
	snprintf(G.url, sizeof(G.url), "https://127.0.0.1:%d", atoi(port));
	free(port);
	snprintf(G.url_fetch, sizeof(G.url_fetch), "%s/api/v1/work/fetch", G.url);
	snprintf(G.url_report, sizeof(G.url_report), "%s/api/v1/work/report", G.url);
	snprintf(G.url_health, sizeof(G.url_health), "%s/healthz", G.url);
	return 0;
}

/* ---- set-up through the API (blocking, cl_http) ------------------------------------------ */

static json_t *api(cl_http *h, const char *method, const char *path, json_t *body, int want,
		   double *ms)
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
		fprintf(stderr, "bench_load: %s %s: HTTP %d: %s\n", method, path, status, e ? msg : "unexpected status");
		json_decref(reply);
		return NULL;
	}
	return reply;
}

static int submit_job(cl_http *admin)
{
	if (G.njobs >= MAX_JOBS)
		return -1;
	int64_t units = G.o.job_units;
	uint64_t seed = (uint64_t)G.njobs + 1, samples = (uint64_t)units * G.o.unit_size;
	double ms = 0;
	json_t *body = json_pack("{s:s,s:{s:I,s:I},s:I,s:i}", "kernel", "montecarlo_pi", "params",
				 "samples", (json_int_t)samples, "seed", (json_int_t)seed, "unit_size",
				 (json_int_t)G.o.unit_size, "deadline_s", 3600);
	json_t *job = api(admin, "POST", "/api/v1/jobs", body, 201, &ms);
	if (!job)
		return -1;
	int n = G.njobs;
	G.jobs[n].id = json_integer_value(json_object_get(job, "id"));
	G.jobs[n].samples = samples;
	G.jobs[n].seed = seed;
	G.jobs[n].units = units;
	G.jobs[n].submit_ms = ms;
	json_decref(job);
	G.submitted_units += (uint64_t)units;
	G.njobs = n + 1;
	return 0;
}

/* Logs in, makes enrollment tokens and enrolls n nodes; tokens[i] gets node i's token. */
static int enroll_nodes(cl_http *admin, cl_http *anon, int n, char **tokens)
{
	char enroll[256] = "";
	int left = 0;
	for (int i = 0; i < n; i++) {
		if (left == 0) {
			left = n - i < ENROLL_TOKEN_USES ? n - i : ENROLL_TOKEN_USES;
			json_t *t = api(admin, "POST", "/api/v1/enroll-tokens",
					json_pack("{s:i,s:i}", "uses", left, "ttl_s", 3600), 201, NULL);
			if (!t)
				return -1;
			snprintf(enroll, sizeof(enroll), "%s", json_string_value(json_object_get(t, "token")));
			json_decref(t);
		}
		char name[32];
		snprintf(name, sizeof(name), "bench-%05d", i);
		json_t *r = api(anon, "POST", "/api/v1/nodes/enroll",
				json_pack("{s:s,s:s,s:s,s:i}", "token", enroll, "name", name, "platform",
					  "bench", "cores", 1),
				201, NULL);
		if (!r)
			return -1;
		tokens[i] = strdup(json_string_value(json_object_get(r, "node_token")));
		json_decref(r);
		left--;
	}
	return 0;
}

/* ---- the generator ------------------------------------------------------------------------ */

static void lat_add(struct lat *l, double s)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 65536;
		uint32_t *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return;
		l->v = v;
		l->cap = cap;
	}
	double us = s * 1e6;
	l->v[l->n++] = us > 4e9 ? 4000000000u : (uint32_t)us;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct node *nd = arg;
	size_t add = size * n;
	if (nd->rxn + add + 1 > nd->rxcap) {
		size_t cap = (nd->rxn + add + 1) * 2;
		char *b = realloc(nd->rx, cap);
		if (!b)
			return 0;
		nd->rx = b;
		nd->rxcap = cap;
	}
	memcpy(nd->rx + nd->rxn, p, add);
	nd->rxn += add;
	nd->rx[nd->rxn] = '\0';
	return add;
}

static void node_send(struct node *nd, int state, const char *body)
{
	CURL *e = nd->e;
	const char *url = state == N_FETCH ? G.url_fetch : state == N_REPORT ? G.url_report : G.url_health;
	curl_easy_setopt(e, CURLOPT_URL, url);
	if (body) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	} else {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	}
	nd->state = state;
	nd->rxn = 0;
	nd->t0 = ts_mono();
	curl_multi_add_handle(nd->g->m, e);
}

static void node_fetch(struct node *nd)
{
	if (G.o.healthz)
		node_send(nd, N_HEALTH, NULL);
	else
		node_send(nd, N_FETCH, G.fetch_body);
}

/* Waits wait_s, then sends a fetch (then = N_FETCH) or the held report again (N_REPORT). */
static void node_idle(struct node *nd, double wait_s, int then)
{
	nd->state = N_IDLE;
	nd->then = then;
	nd->wake = ts_mono() + wait_s;
}

static void gen_error(struct gen *g, const char *fmt, const char *a, long b)
{
	if (atomic_fetch_add(&g->errors, 1) == 0)
		snprintf(g->first_error, sizeof(g->first_error), fmt, a, b);
}

static const struct jcache *job_args(struct gen *g, json_t *unit)
{
	int64_t job = json_integer_value(json_object_get(unit, "job_id"));
	for (int i = 0; i < g->njc; i++)
		if (g->jc[i].job == job)
			return &g->jc[i];
	struct jcache *c = &g->jc[g->njc < 64 ? g->njc++ : 63];
	char why[200];
	c->job = job;
	c->k = kern_find(json_string_value(json_object_get(unit, "kernel")));
	if (!c->k || c->k->parse(json_object_get(unit, "params"), &c->args, why, sizeof(why)) != TS_OK)
		return NULL;
	return c;
}

/* A fetch reply: compute every unit for real and send the report. */
static void on_fetched(struct gen *g, struct node *nd, json_t *reply)
{
	json_t *units = json_object_get(reply, "units");
	size_t n = json_array_size(units);
	if (n == 0) {
		atomic_fetch_add(&g->empty, 1);
		if (atomic_load(&G.phase) >= PH_DRAIN)
			nd->state = N_DONE;
		else
			node_idle(nd, 0.02, N_FETCH);
		return;
	}
	json_t *results = json_array();
	double t0 = ts_mono();
	size_t i;
	json_t *u;
	json_array_foreach(units, i, u) {
		const struct jcache *c = job_args(g, u);
		kern_partial part;
		double t1 = ts_mono();
		if (!c || c->k->compute(&c->args, (uint64_t)json_integer_value(json_object_get(u, "start")),
					(uint64_t)json_integer_value(json_object_get(u, "count")), &part, NULL)) {
			gen_error(g, "cannot compute a unit of %s%ld", "job ", (long)json_integer_value(json_object_get(u, "job_id")));
			continue;
		}
		json_array_append_new(results, json_pack("{s:O,s:o,s:f}", "unit_id", json_object_get(u, "id"),
							 "result", c->k->partial_to_json(&part), "wall_s",
							 ts_mono() - t1));
	}
	g->compute_s += ts_mono() - t0;
	atomic_fetch_add(&g->fetched, n);
	nd->held = (int)json_array_size(results);
	free(nd->tx);
	json_t *body = json_pack("{s:o}", "results", results);
	/* Report and fetch in one request; not while draining, when held units are only reported. */
	if (G.o.report_fetch && atomic_load(&G.phase) < PH_DRAIN)
		json_object_set_new(body, "fetch", json_pack("{s:i}", "max_units", G.o.batch));
	nd->tx = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	node_send(nd, N_REPORT, nd->tx);
}

static void on_done(struct gen *g, struct node *nd, CURLcode code)
{
	long status = 0;
	double now = ts_mono(), lat = now - nd->t0;
	int phase = atomic_load(&G.phase);
	long nconn = 0;
	curl_easy_getinfo(nd->e, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(nd->e, CURLINFO_NUM_CONNECTS, &nconn);
	curl_multi_remove_handle(g->m, nd->e);
	atomic_fetch_add(&g->conns, (uint64_t)nconn);
	if (code != CURLE_OK || status != 200) {
		if (code != CURLE_OK)
			gen_error(g, "transport: %s (%ld)", curl_easy_strerror(code), (long)code);
		else
			gen_error(g, "HTTP status from %s: %ld", nd->state == N_REPORT ? "report" : "fetch", status);
		/* Retry the same request (a report is idempotent) after a pause. */
		if (phase == PH_STOP) {
			if (nd->state == N_REPORT)
				atomic_fetch_add(&g->in_doubt, (uint64_t)nd->held);
			nd->state = N_DONE;
			return;
		}
		node_idle(nd, 0.05, nd->state);
		return;
	}
	atomic_fetch_add(&g->requests, 1);
	json_t *reply = NULL;
	if (nd->state != N_HEALTH) {
		reply = json_loadb(nd->rx, nd->rxn, 0, NULL);
		if (!reply) {
			gen_error(g, "unparsable reply%s (%ld bytes)", "", (long)nd->rxn);
			node_idle(nd, 0.05, nd->state);
			return;
		}
	}
	switch (nd->state) {
	case N_HEALTH:
		if (phase == PH_MEASURE)
			lat_add(&g->fetch_lat, lat);
		if (phase >= PH_DRAIN)
			nd->state = N_DONE;
		else
			node_fetch(nd);
		break;
	case N_FETCH:
		atomic_fetch_add(&g->fetches, 1);
		if (phase == PH_MEASURE)
			lat_add(&g->fetch_lat, lat);
		if (phase == PH_STOP)
			nd->state = N_DONE;
		else
			on_fetched(g, nd, reply);
		break;
	case N_REPORT: {
		atomic_fetch_add(&g->reports, 1);
		if (phase == PH_MEASURE)
			lat_add(&g->report_lat, lat);
		json_t *rej = json_object_get(reply, "rejected");
		size_t acc = json_array_size(json_object_get(reply, "accepted"));
		atomic_fetch_add(&g->accepted, acc);
		if (json_array_size(rej)) {
			if (atomic_fetch_add(&g->rejected, json_array_size(rej)) == 0)
				snprintf(g->first_error, sizeof(g->first_error), "rejected: %s",
					 json_string_value(json_object_get(json_array_get(rej, 0), "reason")));
		}
		json_t *next = json_object_get(reply, "units");
		if (phase < PH_STOP && json_array_size(next)) {
			atomic_fetch_add(&g->fetches, 1);
			on_fetched(g, nd, reply); /* the report's fetch: compute those, report again */
		} else if (phase >= PH_DRAIN)
			nd->state = N_DONE;
		else
			node_fetch(nd);
		break;
	}
	}
	json_decref(reply);
}

static void *gen_main(void *arg)
{
	struct gen *g = arg;
	for (int i = 0; i < g->n; i++)
		node_fetch(&g->nodes[i]);
	for (;;) {
		int running = 0, left;
		curl_multi_perform(g->m, &running);
		CURLMsg *msg;
		while ((msg = curl_multi_info_read(g->m, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			struct node *nd = NULL;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&nd);
			on_done(g, nd, msg->data.result);
		}
		double now = ts_mono();
		int phase = atomic_load(&G.phase), done = 0, idle = 0;
		for (int i = 0; i < g->n; i++) {
			struct node *nd = &g->nodes[i];
			if (nd->state == N_IDLE) {
				if (phase >= PH_DRAIN && nd->then != N_REPORT)
					nd->state = N_DONE; /* held units are still reported while draining */
				else if (nd->wake <= now && nd->then == N_REPORT)
					node_send(nd, N_REPORT, nd->tx);
				else if (nd->wake <= now)
					node_fetch(nd);
				else
					idle++;
			}
			done += nd->state == N_DONE;
		}
		if (done == g->n)
			break;
		if (phase == PH_STOP) {
			/* Drain time is over: abandon what is in flight. Reports whose answer never came
			 * may or may not be committed: their units are "in doubt" for the check. */
			for (int i = 0; i < g->n; i++) {
				struct node *nd = &g->nodes[i];
				if (nd->state == N_REPORT || (nd->state == N_IDLE && nd->then == N_REPORT))
					atomic_fetch_add(&g->in_doubt, (uint64_t)nd->held);
				if (nd->state != N_DONE && nd->state != N_IDLE)
					curl_multi_remove_handle(g->m, nd->e);
			}
			break;
		}
		curl_multi_poll(g->m, NULL, 0, idle ? 5 : 100, NULL);
	}
	return NULL;
}

static int gen_setup(struct gen *g, int idx, char **tokens, int first, int n)
{
	g->idx = idx;
	g->n = n;
	g->m = curl_multi_init();
	g->nodes = calloc((size_t)n, sizeof(*g->nodes));
	if (!g->m || !g->nodes)
		return -1;
	curl_multi_setopt(g->m, CURLMOPT_MAXCONNECTS, (long)n + 8);
	curl_multi_setopt(g->m, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
	for (int i = 0; i < n; i++) {
		struct node *nd = &g->nodes[i];
		char auth[256];
		nd->g = g;
		nd->e = curl_easy_init();
		if (!nd->e)
			return -1;
		nd->hdr = curl_slist_append(NULL, "Content-Type: application/json");
		nd->hdr = curl_slist_append(nd->hdr, "Expect:"); /* curl 7.x: no 100-continue wait */
		if (tokens) {
			snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tokens[first + i]);
			nd->hdr = curl_slist_append(nd->hdr, auth);
		}
		CURL *e = nd->e;
		curl_easy_setopt(e, CURLOPT_PRIVATE, nd);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, nd->hdr);
		curl_easy_setopt(e, CURLOPT_PINNEDPUBLICKEY, G.pin);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L); /* self-signed: the pin is the trust */
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
		curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
		curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
		curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(G.o.timeout * 1000));
		curl_easy_setopt(e, CURLOPT_USERAGENT, "tessera-bench-load/0.1");
		if (getenv("BENCH_LOAD_NO_GZIP") == NULL)
			curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); /* as tessera-client does */
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, nd);
	}
	return 0;
}

static void gen_free(struct gen *g)
{
	for (int i = 0; g->nodes && i < g->n; i++) {
		curl_easy_cleanup(g->nodes[i].e);
		curl_slist_free_all(g->nodes[i].hdr);
		free(g->nodes[i].rx);
		free(g->nodes[i].tx);
	}
	free(g->nodes);
	if (g->m)
		curl_multi_cleanup(g->m);
	free(g->fetch_lat.v);
	free(g->report_lat.v);
}

/* ---- results ------------------------------------------------------------------------------ */

struct snap {
	double t, gen_cpu;
	unsigned long long srv_ticks;
	long rss_kb;
	uint64_t accepted, requests, fetched;
};

static uint64_t sum_counter(size_t off)
{
	uint64_t s = 0;
	for (int i = 0; i < G.o.gen_threads; i++)
		s += atomic_load((_Atomic uint64_t *)((char *)&G.gens[i] + off));
	return s;
}
#define SUM(field) sum_counter(offsetof(struct gen, field))

static void snap_take(struct snap *s)
{
	s->t = ts_mono();
	s->gen_cpu = self_cpu_s();
	s->srv_ticks = 0;
	proc_cpu_ticks(G.server, &s->srv_ticks);
	s->rss_kb = proc_status_kb(G.server, "VmRSS:");
	s->accepted = SUM(accepted);
	s->requests = SUM(requests);
	s->fetched = SUM(fetched);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

struct pct {
	double p50, p99, max;
	size_t n;
};

static struct pct percentiles(size_t off)
{
	struct lat all = {0};
	for (int i = 0; i < G.o.gen_threads; i++) {
		struct lat *l = (struct lat *)((char *)&G.gens[i] + off);
		for (size_t k = 0; k < l->n; k++)
			lat_add(&all, l->v[k] / 1e6);
	}
	struct pct p = {0, 0, 0, all.n};
	if (all.n) {
		qsort(all.v, all.n, sizeof(uint32_t), cmp_u32);
		size_t i50 = (size_t)ceil(0.50 * (double)all.n) - 1, i99 = (size_t)ceil(0.99 * (double)all.n) - 1;
		p.p50 = all.v[i50] / 1e3;
		p.p99 = all.v[i99] / 1e3;
		p.max = all.v[all.n - 1] / 1e3;
	}
	free(all.v);
	return p;
}

/* ---- durability ------------------------------------------------------------------------- */

static int db_int(sqlite3 *db, const char *sql, int64_t a, int64_t *v)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (strchr(sql, '?'))
		sqlite3_bind_int64(st, 1, a);
	int rc = sqlite3_step(st) == SQLITE_ROW ? 0 : -1;
	if (!rc)
		*v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc;
}

static sqlite3 *db_open_ro(void)
{
	char path[PATH_MAX + 16];
	sqlite3 *db = NULL;
	snprintf(path, sizeof(path), "%s/tessera.db", G.data);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 10000);
	return db;
}

/* Checks the store against what the generator saw; returns the number of failed checks. */
static int durability_check(int64_t base_valid, uint64_t accepted, uint64_t in_doubt, json_t *report)
{
	int failed = 0;
	sqlite3 *db = db_open_ro();
	int64_t valid = -1;
	if (!db || db_int(db, "SELECT count(*) FROM units WHERE state = 2", 0, &valid)) {
		fprintf(out, "durability: cannot read %s/tessera.db\n", G.data);
		sqlite3_close(db);
		return 1;
	}
	int64_t got = valid - base_valid;
	int ok = in_doubt ? got >= (int64_t)accepted && got <= (int64_t)(accepted + in_doubt)
			  : got == (int64_t)accepted;
	failed += !ok;
	if (in_doubt)
		fprintf(out, "durability (after kill -9 of the server): %lld units valid in the store, %llu accepted "
			     "replies seen, %llu units in reports left unanswered: %s\n",
			(long long)got, (unsigned long long)accepted, (unsigned long long)in_doubt,
			ok ? "within bounds (not an exact check)" : "MISMATCH");
	else
		fprintf(out, "durability (after kill -9 of the server): %lld units valid in the store, %llu accepted "
			     "replies seen: %s\n",
			(long long)got, (unsigned long long)accepted, ok ? "equal, ok" : "MISMATCH");
	json_object_set_new(report, "in_doubt_units", json_integer((json_int_t)in_doubt));
	json_object_set_new(report, "db_valid_units", json_integer(valid - base_valid));
	json_object_set_new(report, "durable_ok", json_boolean(ok));
	int done = 0, exact = 0, acc_ok = 0;
	json_t *jobs = json_array();
	const kern *k = kern_find("montecarlo_pi");
	for (int i = 0; i < G.njobs; i++) {
		sqlite3_stmt *st;
		int64_t sum = 0;
		if (sqlite3_prepare_v2(db, "SELECT state, result, acc0, units_done FROM jobs WHERE id = ?1", -1, &st,
				       NULL) != SQLITE_OK)
			break;
		sqlite3_bind_int64(st, 1, G.jobs[i].id);
		if (sqlite3_step(st) != SQLITE_ROW) {
			sqlite3_finalize(st);
			failed++;
			continue;
		}
		char state[16];
		snprintf(state, sizeof(state), "%s", (const char *)sqlite3_column_text(st, 0));
		const char *res = (const char *)sqlite3_column_text(st, 1);
		json_t *result = res ? json_loads(res, 0, NULL) : NULL;
		uint64_t acc0 = (uint64_t)sqlite3_column_int64(st, 2);
		int64_t units_done = sqlite3_column_int64(st, 3);
		sqlite3_finalize(st);
		/* The job's accumulator is the sum of its valid units' results. */
		db_int(db, "SELECT coalesce(sum(res0), 0) FROM units WHERE job_id = ?1 AND state = 2", G.jobs[i].id, &sum);
		int acc_match = (uint64_t)sum == acc0;
		acc_ok += acc_match;
		failed += !acc_match;
		json_t *jj = json_pack("{s:I,s:s,s:I,s:f}", "id", (json_int_t)G.jobs[i].id, "state", state,
				       "units_done", (json_int_t)units_done, "submit_ms", G.jobs[i].submit_ms);
		if (strcmp(state, "done") == 0) {
			done++;
			kern_args args = {.seed = G.jobs[i].seed, .space = G.jobs[i].samples};
			kern_partial expect;
			uint64_t hits = (uint64_t)json_integer_value(json_object_get(result, "hits"));
			if (kern_run(k, &args, 0, G.jobs[i].samples, 0, &expect, NULL) == TS_OK &&
			    expect.v[0] == hits && hits == acc0) {
				exact++;
			} else {
				failed++;
				fprintf(out, "job %lld: result hits %llu, expected %llu: WRONG\n", (long long)G.jobs[i].id,
					(unsigned long long)hits, (unsigned long long)expect.v[0]);
			}
			json_object_set_new(jj, "hits", json_integer((json_int_t)hits));
			json_object_set_new(jj, "expected_hits", json_integer((json_int_t)expect.v[0]));
		}
		json_decref(result);
		json_array_append_new(jobs, jj);
	}
	sqlite3_close(db);
	fprintf(out, "jobs: %d submitted, %d done with exact results %d/%d; accumulators equal the sum of valid "
		     "units for %d/%d\n",
		G.njobs, done, exact, done, acc_ok, G.njobs);
	json_object_set_new(report, "jobs", jobs);
	json_object_set_new(report, "jobs_done", json_integer(done));
	json_object_set_new(report, "jobs_exact", json_integer(exact));
	return failed;
}

/* ---- main ------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bench_load [options]\n"
		"  --connections N   simulated nodes, one keep-alive TLS connection each (256)\n"
		"  --batch B         max_units per fetch, 1..64 (1)\n"
		"  --seconds S       measured time (20), after --warmup S (3)\n"
		"  --timeout S       a request's time limit (120); one that runs out is retried\n"
		"  --drain S         at most S seconds after the run for the units held to be reported (180)\n"
		"  --unit-size U     samples per unit (1000)\n"
		"  --job-units K     units per job, up to 10^6 (100000); more jobs are submitted as needed\n"
		"  --server PATH     tessera-server binary (default: next to this program's build dir)\n"
		"  --data DIR        the server's data dir (init if new, kept); default a temp dir, removed\n"
		"  --keep            keep the temp dir\n"
		"  --threads T       generator threads, 1..2 (1)\n"
		"  --split-cores     pin the server to CPU 0 and the generator to CPU 1\n"
		"  --rss-every S     sample the server's RSS every S seconds (off)\n"
		"  --report-fetch    each report carries the next fetch (one request per unit batch after\n"
		"                    the first fetch), as tessera-client does\n"
		"  --healthz         GET /healthz on the same connections (no jobs): the evhttp+TLS ceiling\n"
		"  --server-log      let the server log (default --quiet)\n"
		"  --server-env V=X  set an environment variable for the server only (e.g. LD_PRELOAD of\n"
		"                    bench/prof/sqlite_prof.c), up to 8 times\n"
		"  --json            print the figures as one JSON object on stdout (text goes to stderr)\n"
		"environment: TESSERA_ADMIN_PASSWORD (set for init when absent), BENCH_LOAD_NO_GZIP=1\n");
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{"connections", required_argument, NULL, 'c'}, {"batch", required_argument, NULL, 'b'},
		{"seconds", required_argument, NULL, 's'},     {"warmup", required_argument, NULL, 'w'},
		{"unit-size", required_argument, NULL, 'u'},   {"job-units", required_argument, NULL, 'k'},
		{"server", required_argument, NULL, 'S'},      {"data", required_argument, NULL, 'd'},
		{"keep", no_argument, NULL, 'K'},	       {"threads", required_argument, NULL, 't'},
		{"split-cores", no_argument, NULL, 'p'},       {"rss-every", required_argument, NULL, 'r'},
		{"healthz", no_argument, NULL, 'H'},	       {"server-log", no_argument, NULL, 'L'},
		{"json", no_argument, NULL, 'j'},	       {"help", no_argument, NULL, 'h'},
		{"server-env", required_argument, NULL, 'E'}, {"timeout", required_argument, NULL, 'T'},
		{"drain", required_argument, NULL, 'D'},      {"report-fetch", no_argument, NULL, 'F'},
		{NULL, 0, NULL, 0},
	};
	*o = (struct opts){.conns = 256, .batch = 1, .gen_threads = 1, .seconds = 20, .warmup = 3,
			   .drain = 180, .timeout = 120, .unit_size = 1000, .job_units = 100000};
	int c;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'c': o->conns = atoi(optarg); break;
		case 'b': o->batch = atoi(optarg); break;
		case 's': o->seconds = atof(optarg); break;
		case 'w': o->warmup = atof(optarg); break;
		case 'u': o->unit_size = strtoull(optarg, NULL, 10); break;
		case 'k': o->job_units = atoll(optarg); break;
		case 'S': o->server = optarg; break;
		case 'd': o->data = optarg; break;
		case 'K': o->keep = 1; break;
		case 't': o->gen_threads = atoi(optarg); break;
		case 'p': o->split = 1; break;
		case 'r': o->rss_every = atof(optarg); break;
		case 'H': o->healthz = 1; break;
		case 'F': o->report_fetch = 1; break;
		case 'L': o->server_log = 1; break;
		case 'j': o->json = 1; break;
		case 'T': o->timeout = atof(optarg); break;
		case 'D': o->drain = atof(optarg); break;
		case 'E':
			if (o->nenv == 8 || !strchr(optarg, '=')) {
				usage(stderr);
				return -1;
			}
			o->server_env[o->nenv++] = optarg;
			break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind < argc || o->conns < 1 || o->conns > 100000 || o->batch < 1 || o->batch > 64 ||
	    o->seconds <= 0 || o->seconds > 3600 || o->warmup < 0 || o->warmup > 600 || o->unit_size < 1 ||
	    o->job_units < 1 || o->job_units > JOB_MAX_UNITS || o->gen_threads < 1 ||
	    o->gen_threads > MAX_GEN_THREADS || o->gen_threads > o->conns || o->rss_every < 0 ||
	    o->timeout < 1 || o->timeout > 3600 || o->drain < 1 || o->drain > 3600 ||
	    o->unit_size > 1000000000000ull / (uint64_t)o->job_units) {
		usage(stderr);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	char srvbuf[PATH_MAX + 32], la0[128], la1[128];
	json_t *report = json_object(), *rss_series = json_array();
	int rc = 3;
	cl_http *admin = NULL;
	char **tokens = NULL;
	out = stdout;
	if (parse_args(argc, argv, &G.o))
		return 2;
	if (G.o.json)
		out = stderr;
	if (!G.o.server)
		G.o.server = default_server(srvbuf, sizeof(srvbuf));
	if (!getenv("TESSERA_ADMIN_PASSWORD"))
		setenv("TESSERA_ADMIN_PASSWORD", DEFAULT_PASSWORD, 1);
	atexit(cleanup);
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, on_alarm);
	alarm((unsigned)(G.o.warmup + G.o.seconds + G.o.drain + 1200));
	curl_global_init(CURL_GLOBAL_DEFAULT);

	if (G.o.data) {
		snprintf(G.data, sizeof(G.data), "%s", G.o.data);
		snprintf(G.log, sizeof(G.log), "%s/bench-server.log", G.data);
		if (ts_mkdirs(G.data, 0700)) {
			fprintf(stderr, "bench_load: cannot create %s\n", G.data);
			return 3;
		}
	} else {
		snprintf(G.dir, sizeof(G.dir), "/tmp/tessera-bench-XXXXXX");
		if (!mkdtemp(G.dir)) {
			perror("mkdtemp");
			return 3;
		}
		snprintf(G.data, sizeof(G.data), "%s/data", G.dir);
		snprintf(G.log, sizeof(G.log), "%s/server.log", G.dir);
	}
	int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (G.o.split && ncpu < 2)
		G.o.split = 0;
	loadavg(la0, sizeof(la0));
	if (server_start())
		goto out;
	if (G.o.split) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(1, &set);
		sched_setaffinity(0, sizeof(set), &set);
	}
	int64_t base_valid = 0;
	{
		sqlite3 *db = db_open_ro();
		if (db)
			db_int(db, "SELECT count(*) FROM units WHERE state = 2", 0, &base_valid);
		sqlite3_close(db);
	}

	/* Set-up through the API. */
	char why[256];
	cl_http *anon = NULL;
	cl_http_opts ho = {.url = G.url, .pin = G.pin};
	if (cl_http_open(&ho, &admin, why, sizeof(why)) || cl_http_open(&ho, &anon, why, sizeof(why))) {
		fprintf(stderr, "bench_load: %s\n", why);
		goto out;
	}
	double t_setup = ts_mono();
	if (!G.o.healthz) {
		json_t *login = api(admin, "POST", "/api/v1/login",
				    json_pack("{s:s,s:s}", "username", "admin", "password",
					      getenv("TESSERA_ADMIN_PASSWORD")),
				    200, NULL);
		if (!login)
			goto out;
		cl_http_set_token(admin, json_string_value(json_object_get(login, "token")));
		json_decref(login);
		tokens = calloc((size_t)G.o.conns, sizeof(*tokens));
		if (!tokens || enroll_nodes(admin, anon, G.o.conns, tokens)) {
			cl_http_close(anon);
			goto out;
		}
		/* Enough units for the start: two jobs, more come as they are used up. */
		if (submit_job(admin) || submit_job(admin)) {
			cl_http_close(anon);
			goto out;
		}
		fprintf(out, "set-up: %d nodes enrolled, 2 jobs of %lld units submitted in %.2f s "
			     "(POST /api/v1/jobs of %lld units: %.1f ms)\n",
			G.o.conns, (long long)G.o.job_units, ts_mono() - t_setup, (long long)G.o.job_units,
			G.jobs[0].submit_ms);
	}
	cl_http_close(anon);
	snprintf(G.fetch_body, sizeof(G.fetch_body), "{\"max_units\":%d}", G.o.batch);

	/* The nodes, split among the generator threads. */
	pthread_t th[MAX_GEN_THREADS];
	int first = 0;
	for (int i = 0; i < G.o.gen_threads; i++) {
		int n = G.o.conns / G.o.gen_threads + (i < G.o.conns % G.o.gen_threads);
		if (gen_setup(&G.gens[i], i, tokens, first, n))
			goto out;
		first += n;
	}
	long rss_setup = proc_status_kb(G.server, "VmRSS:");
	atomic_store(&G.phase, PH_WARMUP);
	double t_begin = ts_mono();
	for (int i = 0; i < G.o.gen_threads; i++)
		pthread_create(&th[i], NULL, gen_main, &G.gens[i]);

	struct snap s0, s1;
	double next_rss = 0;
	int measuring = 0;
	for (;;) {
		double now = ts_mono();
		if (G.interrupted)
			break;
		if (!measuring && now - t_begin >= G.o.warmup) {
			snap_take(&s0);
			atomic_store(&G.phase, PH_MEASURE);
			measuring = 1;
			next_rss = now;
		}
		if (measuring && now - s0.t >= G.o.seconds)
			break;
		if (measuring && G.o.rss_every > 0 && now >= next_rss) {
			next_rss += G.o.rss_every;
			json_array_append_new(rss_series,
					      json_pack("{s:f,s:I,s:I}", "t_s", now - s0.t, "rss_kb",
							(json_int_t)proc_status_kb(G.server, "VmRSS:"), "accepted",
							(json_int_t)SUM(accepted)));
		}
		/* Keep enough units queued: a new job when less than half a job is left. */
		if (!G.o.healthz && G.submitted_units - SUM(fetched) < (uint64_t)G.o.job_units / 2 + (uint64_t)G.o.conns * (uint64_t)G.o.batch) {
			if (submit_job(admin)) {
				fprintf(stderr, "bench_load: could not submit more work\n");
				break;
			}
		}
		sleep_s(0.005);
	}
	if (!measuring) {
		snap_take(&s0);
		atomic_store(&G.phase, PH_MEASURE);
	}
	snap_take(&s1);
	long hwm = proc_status_kb(G.server, "VmHWM:");
	atomic_store(&G.phase, PH_DRAIN);
	loadavg(la1, sizeof(la1));
	/* Drain: fetched units are reported; bounded by --drain. */
	double drain_end = ts_mono() + G.o.drain;
	for (;;) {
		int busy = 0;
		for (int i = 0; i < G.o.gen_threads; i++)
			for (int k = 0; k < G.gens[i].n; k++)
				busy += G.gens[i].nodes[k].state != N_DONE;
		if (!busy)
			break;
		if (ts_mono() > drain_end) {
			atomic_store(&G.phase, PH_STOP);
			break;
		}
		sleep_s(0.01);
	}
	for (int i = 0; i < G.o.gen_threads; i++)
		pthread_join(th[i], NULL);
	double t_end = ts_mono();

	double dt = s1.t - s0.t;
	uint64_t acc_win = s1.accepted - s0.accepted, req_win = s1.requests - s0.requests;
	double srv_cpu = (double)(s1.srv_ticks - s0.srv_ticks) / (double)sysconf(_SC_CLK_TCK) / dt * 100.0;
	double gen_cpu = (s1.gen_cpu - s0.gen_cpu) / dt * 100.0;
	struct pct pf = percentiles(offsetof(struct gen, fetch_lat));
	struct pct pr = percentiles(offsetof(struct gen, report_lat));
	uint64_t errors = SUM(errors), rejected = SUM(rejected), empty = SUM(empty), conns = SUM(conns);
	double compute = 0;
	for (int i = 0; i < G.o.gen_threads; i++)
		compute += G.gens[i].compute_s;

	fprintf(out, "machine: %d CPUs online; load average before %s, at the end %s\n", ncpu, la0, la1);
	fprintf(out, "cores: %s; generator: %d thread(s), single process\n",
		G.o.split ? "server pinned to CPU 0, generator to CPU 1"
			  : "server and generator unpinned, sharing all CPUs with each other and whatever else runs",
		G.o.gen_threads);
	fprintf(out, "mode: %s, %d connections, %.1f s measured after %.1f s warm-up%s\n",
		G.o.healthz ? "GET /healthz" : G.o.report_fetch ? (G.o.batch == 1 ? "report + fetch of 1 unit per request" : "batched report + fetch per request") : G.o.batch == 1 ? "fetch 1 unit -> compute -> report" : "batched fetch -> compute -> report",
		G.o.conns, dt, G.o.warmup, G.interrupted ? " (interrupted)" : "");
	if (!G.o.healthz) {
		fprintf(out, "batch: max_units %d, units of %llu samples\n", G.o.batch, (unsigned long long)G.o.unit_size);
		fprintf(out, "units/s completed (reports accepted): %.0f\n", (double)acc_win / dt);
	}
	fprintf(out, "requests/s: %.0f\n", (double)req_win / dt);
	fprintf(out, "%s latency ms: p50 %.2f  p99 %.2f  max %.2f  (%zu requests)\n",
		G.o.healthz ? "healthz" : "fetch", pf.p50, pf.p99, pf.max, pf.n);
	if (!G.o.healthz)
		fprintf(out, "report latency ms: p50 %.2f  p99 %.2f  max %.2f  (%zu requests)\n", pr.p50, pr.p99,
			pr.max, pr.n);
	fprintf(out, "server CPU: %.0f%% of one core; RSS %ld KiB after set-up, %ld KiB at start, %ld KiB at end "
		     "(peak %ld KiB)\n",
		srv_cpu, rss_setup, s0.rss_kb, s1.rss_kb, hwm);
	fprintf(out, "generator CPU: %.0f%% of one core (of which computing units: %.1f s over the whole run)\n",
		gen_cpu, compute);
	if (!G.o.healthz && srv_cpu > 0)
		fprintf(out, "units per server CPU-second: %.0f\n", (double)acc_win / dt / (srv_cpu / 100.0));
	if (!G.o.healthz)
		fprintf(out, "whole run: %llu units accepted in %.1f s (warm-up, measured time and %.1f s of drain): "
			     "%.0f units/s\n",
			(unsigned long long)SUM(accepted), t_end - t_begin, t_end - s1.t,
			(double)SUM(accepted) / (t_end - t_begin));
	fprintf(out, "connections opened: %llu; errors: %llu; rejected results: %llu; empty fetches: %llu\n",
		(unsigned long long)conns, (unsigned long long)errors, (unsigned long long)rejected,
		(unsigned long long)empty);
	for (int i = 0; i < G.o.gen_threads; i++)
		if (G.gens[i].first_error[0])
			fprintf(out, "first error (thread %d): %s\n", i, G.gens[i].first_error);

	json_object_set_new(report, "mode", json_string(G.o.healthz ? "healthz" : "work"));
	json_object_set_new(report, "connections", json_integer(G.o.conns));
	json_object_set_new(report, "batch", json_integer(G.o.batch));
	json_object_set_new(report, "report_fetch", json_boolean(G.o.report_fetch));
	json_object_set_new(report, "unit_size", json_integer((json_int_t)G.o.unit_size));
	json_object_set_new(report, "seconds", json_real(dt));
	json_object_set_new(report, "gen_threads", json_integer(G.o.gen_threads));
	json_object_set_new(report, "split_cores", json_boolean(G.o.split));
	json_object_set_new(report, "cpus", json_integer(ncpu));
	json_object_set_new(report, "loadavg_before", json_string(la0));
	json_object_set_new(report, "loadavg_after", json_string(la1));
	json_object_set_new(report, "units_per_s", json_real((double)acc_win / dt));
	json_object_set_new(report, "requests_per_s", json_real((double)req_win / dt));
	json_object_set_new(report, "fetch_ms", json_pack("{s:f,s:f,s:f,s:I}", "p50", pf.p50, "p99", pf.p99, "max", pf.max, "n", (json_int_t)pf.n));
	json_object_set_new(report, "report_ms", json_pack("{s:f,s:f,s:f,s:I}", "p50", pr.p50, "p99", pr.p99, "max", pr.max, "n", (json_int_t)pr.n));
	json_object_set_new(report, "server_cpu_pct", json_real(srv_cpu));
	json_object_set_new(report, "generator_cpu_pct", json_real(gen_cpu));
	json_object_set_new(report, "server_rss_kb", json_pack("{s:I,s:I,s:I,s:I}", "setup", (json_int_t)rss_setup, "start", (json_int_t)s0.rss_kb, "end", (json_int_t)s1.rss_kb, "peak", (json_int_t)hwm));
	json_object_set_new(report, "rss_series", rss_series);
	rss_series = NULL;
	json_object_set_new(report, "errors", json_integer((json_int_t)errors));
	json_object_set_new(report, "rejected", json_integer((json_int_t)rejected));
	json_object_set_new(report, "connections_opened", json_integer((json_int_t)conns));
	json_object_set_new(report, "accepted_total", json_integer((json_int_t)SUM(accepted)));
	json_object_set_new(report, "whole_run_s", json_real(t_end - t_begin));
	json_object_set_new(report, "drain_s", json_real(t_end - s1.t));

	/* Durability: kill -9, then read the store. */
	kill(G.server, SIGKILL);
	waitpid(G.server, NULL, 0);
	G.server = 0;
	rc = 0;
	if (!G.o.healthz) {
		int failed = durability_check(base_valid, SUM(accepted), SUM(in_doubt), report);
		if (rejected) {
			fprintf(out, "FAILED: %llu results were rejected\n", (unsigned long long)rejected);
			failed++;
		}
		rc = failed ? 1 : 0;
		json_object_set_new(report, "check_ok", json_boolean(!failed));
	}
	if (G.o.json) {
		char *text = json_dumps(report, JSON_INDENT(1));
		printf("%s\n", text ? text : "{}");
		free(text);
	}
	for (int i = 0; i < G.o.gen_threads; i++)
		gen_free(&G.gens[i]);
out:
	if (tokens)
		for (int i = 0; i < G.o.conns; i++)
			free(tokens[i]);
	free(tokens);
	cl_http_close(admin);
	json_decref(report);
	json_decref(rss_series);
	cleanup();
	curl_global_cleanup();
	return rc;
}
