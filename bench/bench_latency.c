/* bench_latency: tiny-job latency on an idle grid (issue 12, target < 0.3 s).
 *
 * Starts a real tessera-server and --nodes real `tessera-client run` processes on 127.0.0.1
 * in a temp dir, lets the grid sit idle for --idle seconds, then submits a one-unit
 * montecarlo_pi job of --samples samples through the API and polls it every --poll-ms until it
 * is done. Repeats --repeat times, with the idle gap before each. Prints each run and
 * min / median / max of submit -> done (from just before the POST to the poll that saw the job
 * done) and of reply -> done (from the POST's answer).
 *
 * Exit status: 0 every job finished with the right sample count, 1 one did not, 2 usage,
 * 3 set-up failed. */
#include <getopt.h>

#include "bench_grid.h"

#define MAX_REPEAT 1000

struct opts {
	double idle, jitter, poll_ms, timeout;
	int repeat, nodes, server_cpu, json;
	long long samples;
	char *client_args, *enroll_args;
	const char *bindir;
};

static struct grid G;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bench_latency [--idle S] [--jitter S] [--repeat N] [--nodes N] [--samples N] [--poll-ms MS]\n"
		"                     [--client-args \"...\"] [--enroll-args \"...\"] [--server-cpu C]\n"
		"                     [--timeout S] [--bindir DIR] [--json]\n"
		"  --idle S         idle time before each job (60), plus a random 0..--jitter s\n"
		"  --jitter S       so that jobs arrive at random points of the nodes' poll cycles (2)\n"
		"  --repeat N       jobs, one after another (10)\n"
		"  --nodes N        tessera-client run processes (2)\n"
		"  --samples N      montecarlo_pi samples of the one-unit job (1000)\n"
		"  --poll-ms MS     GET /api/v1/jobs/ID interval (5)\n"
		"  --client-args A  extra options of tessera-client run (\"\")\n"
		"  --enroll-args A  extra options of tessera-client enroll (\"\")\n"
		"  --server-cpu C   pin the server to CPU C (default: not pinned)\n"
		"  --timeout S      a job not done after S seconds fails the run (60)\n"
		"  --bindir DIR     where tessera-server and tessera-client are (default: ../)\n"
		"  --json           also print the figures as one JSON object on the last line\n");
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{"idle", required_argument, NULL, 'i'},	       {"repeat", required_argument, NULL, 'r'},
		{"nodes", required_argument, NULL, 'n'},       {"samples", required_argument, NULL, 's'},
		{"poll-ms", required_argument, NULL, 'p'},     {"client-args", required_argument, NULL, 'c'},
		{"enroll-args", required_argument, NULL, 'e'}, {"server-cpu", required_argument, NULL, 'C'},
		{"timeout", required_argument, NULL, 't'},     {"bindir", required_argument, NULL, 'b'},
		{"json", no_argument, NULL, 'j'},	       {"help", no_argument, NULL, 'h'},
		{"jitter", required_argument, NULL, 'J'},
		{NULL, 0, NULL, 0},
	};
	*o = (struct opts){.idle = 60, .jitter = 2, .poll_ms = 5, .timeout = 60, .repeat = 10, .nodes = 2,
			   .server_cpu = -1, .samples = 1000, .client_args = "", .enroll_args = ""};
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'i': o->idle = atof(optarg); break;
		case 'J': o->jitter = atof(optarg); break;
		case 'r': o->repeat = atoi(optarg); break;
		case 'n': o->nodes = atoi(optarg); break;
		case 's': o->samples = atoll(optarg); break;
		case 'p': o->poll_ms = atof(optarg); break;
		case 'c': o->client_args = strdup(optarg); break;
		case 'e': o->enroll_args = strdup(optarg); break;
		case 'C': o->server_cpu = atoi(optarg); break;
		case 't': o->timeout = atof(optarg); break;
		case 'b': o->bindir = optarg; break;
		case 'j': o->json = 1; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind != argc || o->idle < 0 || o->jitter < 0 || o->repeat < 1 || o->repeat > MAX_REPEAT || o->nodes < 1 ||
	    o->nodes > GRID_MAX_CLIENTS || o->samples < 1 || o->poll_ms < 0.1 || o->timeout <= 0) {
		usage(stderr);
		return -1;
	}
	return 0;
}

static void on_signal(int sig)
{
	grid_cleanup(&G);
	_exit(3);
}

int main(int argc, char **argv)
{
	struct opts o;
	int rc = 3, failed = 0, n = 0;
	static double submit_done[MAX_REPEAT], reply_done[MAX_REPEAT], post_s[MAX_REPEAT], leased[MAX_REPEAT];
	char la0[128], la1[128];
	if (parse_args(argc, argv, &o))
		return 2;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	if (grid_init(&G, "bench_latency", o.bindir))
		return 3;
	grid_loadavg(la0, sizeof(la0));
	char *srv_extra[] = {"--rate-limit", "0", "--login-rate", "0", NULL};
	if (grid_server_start(&G, srv_extra, o.server_cpu))
		goto out;
	char *enroll_argv[16], *run_argv[16];
	grid_split_args(o.enroll_args, enroll_argv, 16);
	grid_split_args(o.client_args, run_argv, 16);
	for (int i = 0; i < o.nodes; i++)
		if (grid_client_enroll(&G, i, enroll_argv))
			goto out;
	for (int i = 0; i < o.nodes; i++)
		if (grid_client_start(&G, i, run_argv, -1))
			goto out;
	if (grid_wait_nodes(&G, o.nodes, 30))
		goto out;
	grid_print_machine(stdout);
	printf("grid: server %s, %d tessera-client run nodes (extra options \"%s\"), idle %.1f s + 0..%.1f s "
	       "before each job, poll every %.1f ms\n",
	       G.url, o.nodes, o.client_args, o.idle, o.jitter, o.poll_ms);
	fflush(stdout);
	for (int r = 0; r < o.repeat; r++) {
		unsigned char rnd[4];
		ts_random(rnd, sizeof(rnd));
		uint32_t u = (uint32_t)rnd[0] | (uint32_t)rnd[1] << 8 | (uint32_t)rnd[2] << 16 | (uint32_t)rnd[3] << 24;
		grid_sleep(o.idle + o.jitter * (u / 4294967296.0));
		double reply = 0, t_done = 0, t_lease = 0, t0 = ts_mono();
		int64_t id = grid_submit_pi(&G, (uint64_t)o.samples, (uint64_t)r + 1, 1, &reply);
		if (id < 0) {
			failed++;
			break;
		}
		json_t *job = grid_wait_job(&G, id, o.poll_ms / 1e3, o.timeout, &t_done, &t_lease);
		const char *st = job ? json_string_value(json_object_get(job, "state")) : "timed out";
		json_t *res = json_object_get(job, "result");
		long long got = json_integer_value(json_object_get(res, "samples"));
		json_t *who = json_array_get(json_object_get(job, "nodes"), 0);
		int ok = job && strcmp(st, "done") == 0 && got == o.samples;
		if (t_lease <= 0)
			t_lease = t_done; /* leased and done between two polls */
		printf("job %lld: %s, submit -> done %.1f ms, reply -> done %.1f ms, POST %.1f ms, submit -> "
		       "unit leased %.1f ms, node %s\n",
		       (long long)id, ok ? "done" : st, (t_done - t0) * 1e3, (t_done - t0 - reply) * 1e3,
		       reply * 1e3, (t_lease - t0) * 1e3, json_string_value(json_object_get(who, "name")) ?: "?");
		fflush(stdout);
		if (ok) {
			submit_done[n] = t_done - t0;
			reply_done[n] = t_done - t0 - reply;
			post_s[n] = reply;
			leased[n] = t_lease - t0;
			n++;
		} else {
			failed++;
		}
		json_decref(job);
	}
	grid_loadavg(la1, sizeof(la1));
	if (n > 0) {
		double med = grid_median(submit_done, n), medr = grid_median(reply_done, n), medp = grid_median(post_s, n);
		printf("submit -> done ms: min %.1f  median %.1f  max %.1f  (%d jobs; target < 300)\n",
		       submit_done[0] * 1e3, med * 1e3, submit_done[n - 1] * 1e3, n);
		printf("reply -> done ms:  min %.1f  median %.1f  max %.1f\n", reply_done[0] * 1e3, medr * 1e3,
		       reply_done[n - 1] * 1e3);
		double medl = grid_median(leased, n);
		printf("submit -> unit leased ms: min %.1f  median %.1f  max %.1f (the first poll that saw it)\n",
		       leased[0] * 1e3, medl * 1e3, leased[n - 1] * 1e3);
		printf("POST /api/v1/jobs ms: median %.1f\n", medp * 1e3);
		printf("load average before %s, after %s\n", la0, la1);
		if (o.json)
			printf("{\"jobs\":%d,\"failed\":%d,\"idle_s\":%g,\"submit_done_ms\":{\"min\":%.2f,\"median\":%.2f,"
			       "\"max\":%.2f},\"reply_done_ms\":{\"min\":%.2f,\"median\":%.2f,\"max\":%.2f},"
			       "\"loadavg_before\":\"%s\",\"loadavg_after\":\"%s\"}\n",
			       n, failed, o.idle, submit_done[0] * 1e3, med * 1e3, submit_done[n - 1] * 1e3,
			       reply_done[0] * 1e3, medr * 1e3, reply_done[n - 1] * 1e3, la0, la1);
	}
	if (failed)
		printf("FAILED: %d of %d jobs did not finish right\n", failed, o.repeat);
	rc = failed ? 1 : 0;
out:
	grid_cleanup(&G);
	return rc;
}
