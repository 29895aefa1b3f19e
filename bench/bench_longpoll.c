/* bench_longpoll: idle long-poll connections (issue 12).
 *
 * Starts a real tessera-server (pinned to --server-cpu, default 0; this program to --gen-cpu,
 * default 1), enrolls --conns (2000) nodes through the API and opens one keep-alive TLS
 * connection per node (libcurl multi, pinned to the server's key, as bench_load), each sending
 * POST /api/v1/work/fetch {"wait_s": W} to a server with no work. While they wait it reads the
 * server's RSS (/proc/PID/status) and CPU (/proc/PID/stat) for --measure seconds; then a
 * thread submits a job of --job-units units (default: one per connection) and the program
 * times, from just before that POST, the first waiting fetch answered with a unit, the median
 * and the last one.
 *
 * A server without long-poll answers {"wait_s": ...} with 400 (unknown field), or at once: the
 * program says so and exits 0 without the connection figures.
 *
 * Exit status: 0 ok (or no long-poll on the server), 1 fetches failed or did not wait,
 * 2 usage, 3 set-up failed. */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>

#include "bench_grid.h"

#define ENROLL_TOKEN_USES 10000

struct opts {
	int conns, job_units, server_cpu, gen_cpu;
	double wait_s, measure, settle, timeout;
	const char *bindir;
};

struct conn {
	CURL *e;
	struct curl_slist *hdr;
	char rx[4096];
	size_t rxn;
	int answered; /* a unit came back */
	double sent;  /* the request was handed to curl (its wait starts about then) */
	int written;  /* the whole request is on the wire (this round) */
};

static struct grid G;
static struct opts O;
static char fetch_url[192], fetch_body[64];

static struct {
	pthread_t th;
	double t0, t1; /* POST /api/v1/jobs sent, answered */
	int64_t id;
	_Atomic int done;
} Sub;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bench_longpoll [--conns N] [--wait-s W] [--measure S] [--settle S] [--job-units N]\n"
		"                      [--server-cpu C] [--gen-cpu C] [--timeout S] [--bindir DIR]\n"
		"  --conns N        waiting connections, one enrolled node each (2000)\n"
		"  --wait-s W       the fetches' wait_s (30)\n"
		"  --settle S       seconds after every connection is open before measuring (3)\n"
		"  --measure S      seconds of RSS and CPU readings while they wait (10)\n"
		"  --job-units N    units of the job submitted then (default: --conns)\n"
		"  --server-cpu C   pin the server to CPU C (0; -1: not pinned)\n"
		"  --gen-cpu C      pin this program to CPU C (1; -1: not pinned)\n"
		"  --timeout S      seconds to wait for the answers after the submission (20)\n"
		"  --bindir DIR     where tessera-server is (default: ../)\n");
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{"conns", required_argument, NULL, 'n'},      {"wait-s", required_argument, NULL, 'w'},
		{"measure", required_argument, NULL, 'm'},    {"settle", required_argument, NULL, 's'},
		{"job-units", required_argument, NULL, 'u'},  {"server-cpu", required_argument, NULL, 'C'},
		{"gen-cpu", required_argument, NULL, 'G'},    {"timeout", required_argument, NULL, 't'},
		{"bindir", required_argument, NULL, 'b'},     {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	*o = (struct opts){.conns = 2000, .job_units = 0, .server_cpu = 0, .gen_cpu = 1, .wait_s = 30,
			   .measure = 10, .settle = 3, .timeout = 20};
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'n': o->conns = atoi(optarg); break;
		case 'w': o->wait_s = atof(optarg); break;
		case 'm': o->measure = atof(optarg); break;
		case 's': o->settle = atof(optarg); break;
		case 'u': o->job_units = atoi(optarg); break;
		case 'C': o->server_cpu = atoi(optarg); break;
		case 'G': o->gen_cpu = atoi(optarg); break;
		case 't': o->timeout = atof(optarg); break;
		case 'b': o->bindir = optarg; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (o->job_units == 0)
		o->job_units = o->conns;
	if (optind != argc || o->conns < 1 || o->conns > 100000 || o->wait_s <= 0 || o->measure <= 0 ||
	    o->settle < 0 || o->job_units < 1 || o->job_units > 1000000 || o->timeout <= 0) {
		usage(stderr);
		return -1;
	}
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (o->server_cpu >= ncpu || o->gen_cpu >= ncpu)
		o->server_cpu = o->gen_cpu = -1;
	return 0;
}

static void on_signal(int sig)
{
	grid_cleanup(&G);
	_exit(3);
}

/* Established TCP connections to the server's port (/proc/net/tcp, state 01): the server's
 * side of each client connection. */
static int server_conns(void)
{
	int port = atoi(strrchr(G.url, ':') + 1), n = 0;
	char line[512];
	FILE *f = fopen("/proc/net/tcp", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned lport = 0, st = 0;
		char *colon = strchr(line, ':'); /* after "sl" */
		if (!colon || sscanf(colon + 1, " %*x:%x %*x:%*x %x", &lport, &st) != 2)
			continue;
		n += (int)lport == port && st == 1;
	}
	fclose(f);
	return n;
}

/* Enrolls n nodes through the API; tokens[i] gets node i's token. */
static int enroll_nodes(int n, char **tokens)
{
	char enroll[512] = "", why[256];
	int left = 0;
	cl_http *anon = NULL;
	cl_http_opts ho = {.url = G.url, .pin = G.pin};
	if (cl_http_open(&ho, &anon, why, sizeof(why))) {
		fprintf(stderr, "bench_longpoll: %s\n", why);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		if (left == 0) {
			left = n - i < ENROLL_TOKEN_USES ? n - i : ENROLL_TOKEN_USES;
			if (grid_enroll_token(&G, left, enroll, sizeof(enroll)))
				goto fail;
		}
		char name[32];
		snprintf(name, sizeof(name), "poll-%05d", i);
		json_t *r = grid_api(&G, anon, "POST", "/api/v1/nodes/enroll",
				     json_pack("{s:s,s:s,s:s,s:i}", "token", enroll, "name", name, "platform",
					       "bench", "cores", 1),
				     201, NULL);
		if (!r)
			goto fail;
		tokens[i] = strdup(json_string_value(json_object_get(r, "node_token")));
		json_decref(r);
		left--;
	}
	cl_http_close(anon);
	return 0;
fail:
	cl_http_close(anon);
	return -1;
}

/* One fetch with wait_s = 1 from node 0: 1 when the server waited, 0 when not (printed why). */
static int probe_longpoll(const char *token)
{
	char why[256];
	cl_http *h = NULL;
	cl_http_opts ho = {.url = G.url, .pin = G.pin, .token = token};
	if (cl_http_open(&ho, &h, why, sizeof(why)))
		return 0;
	int status = 0;
	json_t *reply = NULL, *body = json_pack("{s:f}", "wait_s", 1.0);
	double t0 = ts_mono();
	ts_err e = cl_http_request(h, "POST", "/api/v1/work/fetch", body, &status, &reply, why, sizeof(why));
	double dt = ts_mono() - t0;
	json_decref(body);
	json_decref(reply);
	cl_http_close(h);
	if (e) {
		printf("long-poll: NOT SUPPORTED by this server: POST /api/v1/work/fetch {\"wait_s\":1} answered "
		       "HTTP %d: %s\n", status, why);
		return 0;
	}
	if (dt < 0.5) {
		printf("long-poll: NOT SUPPORTED by this server: a fetch with wait_s 1 on an empty grid was "
		       "answered in %.1f ms, without waiting\n", dt * 1e3);
		return 0;
	}
	printf("long-poll: supported (a fetch with wait_s 1 on an empty grid was answered after %.3f s)\n", dt);
	fflush(stdout);
	return 1;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct conn *c = arg;
	size_t add = size * n, room = sizeof(c->rx) - 1 - c->rxn;
	memcpy(c->rx + c->rxn, p, add < room ? add : room);
	c->rxn += add < room ? add : room;
	c->rx[c->rxn] = '\0';
	return add;
}

static int n_written; /* connections whose request is on the wire */

/* The upload is done once ulnow reaches ultotal: the request is sent and waits on the server. */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	struct conn *c = arg;
	if (!c->written && ultotal > 0 && ulnow >= ultotal) {
		c->written = 1;
		n_written++;
	}
	return 0;
}

static void conn_send(CURLM *m, struct conn *c)
{
	c->rxn = 0;
	c->written = 0;
	c->sent = ts_mono();
	curl_multi_add_handle(m, c->e);
}

static int conn_setup(struct conn *c, const char *token)
{
	char auth[300];
	c->e = curl_easy_init();
	if (!c->e)
		return -1;
	c->hdr = curl_slist_append(NULL, "Content-Type: application/json");
	c->hdr = curl_slist_append(c->hdr, "Expect:");
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	c->hdr = curl_slist_append(c->hdr, auth);
	CURL *e = c->e;
	curl_easy_setopt(e, CURLOPT_PRIVATE, c);
	curl_easy_setopt(e, CURLOPT_URL, fetch_url);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, fetch_body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(fetch_body));
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->hdr);
	curl_easy_setopt(e, CURLOPT_PINNEDPUBLICKEY, G.pin);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L); /* self-signed: the pin is the trust */
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)((O.wait_s + 60) * 1000));
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 60000L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "tessera-bench-longpoll/0.1");
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(e, CURLOPT_XFERINFODATA, c);
	return 0;
}

static void *submit_main(void *arg)
{
	Sub.t0 = ts_mono();
	Sub.id = grid_submit_pi(&G, (uint64_t)O.job_units * 1000, 1, O.job_units, NULL);
	Sub.t1 = ts_mono();
	atomic_store(&Sub.done, 1);
	return NULL;
}

static double cpu_s_self(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
	int rc = 3;
	char la0[128], la1[128];
	char **tokens = NULL;
	struct conn *conns = NULL;
	CURLM *m = NULL;
	double *answer_t = NULL;
	if (parse_args(argc, argv, &O))
		return 2;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	/* Room for every connection here and in the server, which inherits the limit. */
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rlim_t want = (rlim_t)O.conns * 2 + 256;
	if (rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < (rlim_t)O.conns + 64) {
		fprintf(stderr, "bench_longpoll: the fd limit is %llu, too low for %d connections\n",
			(unsigned long long)rl.rlim_cur, O.conns);
		return 3;
	}
	if (grid_init(&G, "bench_longpoll", O.bindir))
		return 3;
	grid_loadavg(la0, sizeof(la0));
	char maxc[32];
	snprintf(maxc, sizeof(maxc), "%d", O.conns * 2 + 1000);
	char *srv_extra[] = {"--rate-limit", "0", "--login-rate", "0", "--max-connections-per-address", maxc,
			     "--max-connections", maxc, NULL};
	if (grid_server_start(&G, srv_extra, O.server_cpu))
		goto out;
	grid_pin_self(O.gen_cpu);
	grid_print_machine(stdout);
	printf("pinning: server CPU %d, this program CPU %d (-1: not pinned); fd limit %llu\n", O.server_cpu,
	       O.gen_cpu, (unsigned long long)rl.rlim_cur);
	double t_enroll = ts_mono();
	tokens = calloc((size_t)O.conns, sizeof(*tokens));
	if (!tokens || enroll_nodes(O.conns, tokens))
		goto out;
	printf("set-up: %d nodes enrolled in %.1f s\n", O.conns, ts_mono() - t_enroll);
	fflush(stdout);
	if (!probe_longpoll(tokens[0])) {
		rc = 0;
		goto out;
	}

	/* The server at rest, before the connections. */
	unsigned long long k0, k1, k2, k3;
	long rss_rest = grid_status_kb(G.server, "VmRSS:");
	int fds_rest = server_conns();
	grid_cpu_ticks(G.server, &k0);
	grid_sleep(2);
	grid_cpu_ticks(G.server, &k1);
	double hz = (double)sysconf(_SC_CLK_TCK);
	double cpu_rest = (double)(k1 - k0) / hz / 2 * 100;

	snprintf(fetch_url, sizeof(fetch_url), "%s/api/v1/work/fetch", G.url);
	snprintf(fetch_body, sizeof(fetch_body), "{\"wait_s\":%g}", O.wait_s);
	m = curl_multi_init();
	conns = calloc((size_t)O.conns, sizeof(*conns));
	answer_t = calloc((size_t)O.conns, sizeof(*answer_t));
	if (!m || !conns || !answer_t)
		goto out;
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)O.conns + 8);
	curl_multi_setopt(m, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
	for (int i = 0; i < O.conns; i++)
		if (conn_setup(&conns[i], tokens[i]))
			goto out;
	double t_open = ts_mono(), t_all_open = 0, t_measure = 0, t_end_measure = 0, gen0 = 0, gen1 = 0;
	for (int i = 0; i < O.conns; i++)
		conn_send(m, &conns[i]);
	int target = O.job_units < O.conns ? O.job_units : O.conns;
	int phase = 0; /* 0 opening, 1 settling, 2 measuring, 3 submitted */
	int early = 0, expired = 0, errors = 0, answered = 0, empty_after = 0, samples = 0;
	long rss_max = 0, rss_min = 0;
	double rss_sum = 0, next_sample = 0, deadline = 0;
	char first_error[256] = "";
	int conns_open = 0;
	for (;;) {
		int running = 0, left;
		curl_multi_perform(m, &running);
		CURLMsg *msg;
		double now = ts_mono();
		while ((msg = curl_multi_info_read(m, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			struct conn *c = NULL;
			long status = 0;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
			curl_multi_remove_handle(m, c->e);
			if (c->written) {
				c->written = 0;
				n_written--;
			}
			if (msg->data.result != CURLE_OK || status != 200) {
				if (errors++ == 0)
					snprintf(first_error, sizeof(first_error), "%s, HTTP %ld: %.150s",
						 curl_easy_strerror(msg->data.result), status, c->rx);
				if (phase < 3)
					conn_send(m, c);
				continue;
			}
			json_t *r = json_loadb(c->rx, c->rxn, 0, NULL);
			size_t units = json_array_size(json_object_get(r, "units"));
			json_decref(r);
			if (phase < 3) {
				/* answered without work: its wait ran out, or it did not wait */
				if (now - c->sent < O.wait_s - 0.5)
					early++;
				else
					expired++;
				conn_send(m, c);
			} else if (units > 0) {
				answer_t[answered++] = now;
				c->answered = 1;
			} else {
				empty_after++;
			}
		}
		if (phase == 0 && n_written >= O.conns) {
			t_all_open = now;
			conns_open = server_conns() - fds_rest;
			phase = 1;
		}
		if (phase == 0 && now - t_open > 120) {
			fprintf(stderr, "bench_longpoll: only %d of %d requests sent after 120 s\n", n_written, O.conns);
			goto out;
		}
		if (phase == 1 && now - t_all_open >= O.settle) {
			phase = 2;
			t_measure = now;
			next_sample = now;
			gen0 = cpu_s_self();
			grid_cpu_ticks(G.server, &k2);
		}
		if (phase == 2 && now >= next_sample) {
			long rss = grid_status_kb(G.server, "VmRSS:");
			rss_sum += (double)rss;
			rss_max = rss > rss_max ? rss : rss_max;
			rss_min = samples == 0 || rss < rss_min ? rss : rss_min;
			samples++;
			next_sample += 1.0;
		}
		if (phase == 2 && now - t_measure >= O.measure) {
			grid_cpu_ticks(G.server, &k3);
			gen1 = cpu_s_self();
			t_end_measure = now;
			phase = 3;
			pthread_create(&Sub.th, NULL, submit_main, NULL);
			deadline = now + O.timeout;
		}
		if (phase == 3 && atomic_load(&Sub.done) && (answered >= target || now > deadline))
			break;
		if (phase == 3 && now > deadline + 30)
			break; /* the POST itself hangs */
		curl_multi_poll(m, NULL, 0, 50, NULL);
	}
	pthread_join(Sub.th, NULL);
	grid_loadavg(la1, sizeof(la1));
	double win = t_end_measure - t_measure;
	double cpu_wait = (double)(k3 - k2) / hz / win * 100, gen_cpu = (gen1 - gen0) / win * 100;
	long rss_avg = samples ? (long)(rss_sum / samples) : 0;
	printf("connections: %d TLS connections opened and their fetches sent in %.2f s (established to the "
	       "server's port: %d more than before); before the job: %d fetches answered "
	       "empty before their wait_s, %d when it ran out (sent again), %d errors%s%s\n",
	       O.conns, t_all_open - t_open, conns_open, early, expired, errors,
	       first_error[0] ? "; first: " : "", first_error);
	printf("server at rest (no connections): RSS %ld KiB, CPU %.1f%% of its core\n", rss_rest, cpu_rest);
	printf("server with %d waiting fetches (%.1f s from %.1f s after the last connection opened): RSS avg "
	       "%ld KiB (min %ld, max %ld; %.1f KiB per connection over rest), CPU %.2f%% of its core\n",
	       O.conns, win, O.settle, rss_avg, rss_min, rss_max,
	       (double)(rss_avg - rss_rest) / O.conns, cpu_wait);
	printf("this program: CPU %.1f%% of its core while they wait\n", gen_cpu);
	if (Sub.id < 0) {
		printf("FAILED: the job could not be submitted\n");
		rc = 1;
		goto out;
	}
	printf("job %lld of %d units submitted: POST answered in %.1f ms\n", (long long)Sub.id, O.job_units,
	       (Sub.t1 - Sub.t0) * 1e3);
	if (answered > 0) {
		/* answer_t is in arrival order, so already sorted */
		printf("waiting fetches answered with a unit: %d of %d; from before the POST: first %.1f ms, "
		       "median %.1f ms, last %.1f ms; %d answered empty after it\n",
		       answered, target, (answer_t[0] - Sub.t0) * 1e3, (answer_t[answered / 2] - Sub.t0) * 1e3,
		       (answer_t[answered - 1] - Sub.t0) * 1e3, empty_after);
		printf("from the POST's answer: first %.1f ms\n", (answer_t[0] - Sub.t1) * 1e3);
	} else {
		printf("FAILED: no waiting fetch was answered with a unit in %.0f s\n", O.timeout);
	}
	printf("server peak RSS (VmHWM) %ld KiB\n", grid_status_kb(G.server, "VmHWM:"));
	printf("load average before %s, after %s\n", la0, la1);
	rc = answered >= target && early == 0 && errors == 0 ? 0 : 1;
	if (rc)
		printf("FAILED: %d of %d answered, %d answered before their wait_s, %d errors\n", answered, target,
		       early, errors);
out:
	for (int i = 0; conns && i < O.conns; i++) {
		if (conns[i].e) {
			curl_multi_remove_handle(m, conns[i].e);
			curl_easy_cleanup(conns[i].e);
		}
		curl_slist_free_all(conns[i].hdr);
	}
	free(conns);
	free(answer_t);
	if (m)
		curl_multi_cleanup(m);
	for (int i = 0; tokens && i < O.conns; i++)
		free(tokens[i]);
	free(tokens);
	grid_cleanup(&G);
	return rc;
}
