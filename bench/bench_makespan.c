/* bench_makespan: makespan of one job on a fast and a slow node (issue 12, target ≤ 1.15 × ideal).
 *
 * Starts a real tessera-server and two real `tessera-client run` nodes on 127.0.0.1 in a temp
 * dir. The fast node runs with --fast-args (default "--threads 1"), the slow one with
 * --slow-args (default "--threads 1") and --max-rate set to --slow-share (0.25) of the fast
 * node's rate (measured alone, below): on a 2-core machine
 * --cpu-share cannot make a node slower than one thread, --max-rate can.
 *
 * 1. Calibration: each node alone (a node of its own, run the same way, disabled after) computes
 *    a job of about --calib-s seconds of its work; its
 *    rate is samples / (first poll that sees a unit leased -> done). The fast node goes first:
 *    its rate sets the slow node's --max-rate and the main job's unit size.
 * 2. Both nodes run, idle for --idle s; a --units (40) unit montecarlo_pi job sized so that
 *    the ideal makespan is about --target-s (15) s is submitted and polled every --poll-ms.
 * The ideal is total samples / (sum of the two calibrated rates); also printed: the best split
 * into whole units (the bound that unit granularity leaves) and the split the grid made.
 *
 * Exit status: 0 all jobs finished with the right sample count, 1 one did not, 2 usage,
 * 3 set-up failed. */
#include <getopt.h>

#include "bench_grid.h"

struct opts {
	int units, fast_cpu, slow_cpu, server_cpu;
	double target_s, slow_share, calib_s, idle, poll_ms, timeout;
	char *fast_args, *slow_args;
	const char *bindir;
};

static struct grid G;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bench_makespan [--units N] [--target-s S] [--slow-share F] [--calib-s S] [--idle S]\n"
		"                      [--fast-args \"...\"] [--slow-args \"...\"] [--fast-cpu C] [--slow-cpu C]\n"
		"                      [--server-cpu C] [--poll-ms MS] [--timeout S] [--bindir DIR]\n"
		"  --units N        units of the job (40)\n"
		"  --target-s S     size the job so that its ideal makespan is about S seconds (15)\n"
		"  --slow-share F   the slow node's --max-rate as a fraction of one thread's rate (0.25);\n"
		"                   0: no --max-rate\n"
		"  --calib-s S      seconds of each node's work in its calibration job (4)\n"
		"  --idle S         idle time of the grid before the job (3)\n"
		"  --fast-args A    options of the fast node's tessera-client run (\"--threads 1\")\n"
		"  --slow-args A    options of the slow node's (\"--threads 1\", plus --max-rate)\n"
		"  --fast-cpu C     pin the fast node to CPU C (1; -1: not pinned)\n"
		"  --slow-cpu C     pin the slow node to CPU C (0; -1: not pinned)\n"
		"  --server-cpu C   pin the server to CPU C (0; -1: not pinned)\n"
		"  --poll-ms MS     GET /api/v1/jobs/ID interval (5)\n"
		"  --timeout S      a job not done after S seconds fails the run (300)\n"
		"  --bindir DIR     where tessera-server and tessera-client are (default: ../)\n");
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{"units", required_argument, NULL, 'u'},      {"target-s", required_argument, NULL, 'T'},
		{"slow-share", required_argument, NULL, 'S'}, {"calib-s", required_argument, NULL, 'c'},
		{"idle", required_argument, NULL, 'i'},	      {"fast-args", required_argument, NULL, 'f'},
		{"slow-args", required_argument, NULL, 's'},  {"fast-cpu", required_argument, NULL, 'F'},
		{"slow-cpu", required_argument, NULL, 'L'},   {"server-cpu", required_argument, NULL, 'C'},
		{"poll-ms", required_argument, NULL, 'p'},    {"timeout", required_argument, NULL, 't'},
		{"bindir", required_argument, NULL, 'b'},     {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	*o = (struct opts){.units = 40, .fast_cpu = 1, .slow_cpu = 0, .server_cpu = 0, .target_s = 15,
			   .slow_share = 0.25, .calib_s = 4, .idle = 3, .poll_ms = 5, .timeout = 300,
			   .fast_args = strdup("--threads 1"), .slow_args = strdup("--threads 1")};
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'u': o->units = atoi(optarg); break;
		case 'T': o->target_s = atof(optarg); break;
		case 'S': o->slow_share = atof(optarg); break;
		case 'c': o->calib_s = atof(optarg); break;
		case 'i': o->idle = atof(optarg); break;
		case 'f': o->fast_args = strdup(optarg); break;
		case 's': o->slow_args = strdup(optarg); break;
		case 'F': o->fast_cpu = atoi(optarg); break;
		case 'L': o->slow_cpu = atoi(optarg); break;
		case 'C': o->server_cpu = atoi(optarg); break;
		case 'p': o->poll_ms = atof(optarg); break;
		case 't': o->timeout = atof(optarg); break;
		case 'b': o->bindir = optarg; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind != argc || o->units < 2 || o->units > 100000 || o->target_s <= 0 || o->slow_share < 0 ||
	    o->slow_share > 1 || o->calib_s <= 0 || o->idle < 0 || o->poll_ms < 0.1 || o->timeout <= 0) {
		usage(stderr);
		return -1;
	}
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (o->fast_cpu >= ncpu || o->slow_cpu >= ncpu || o->server_cpu >= ncpu)
		o->fast_cpu = o->slow_cpu = o->server_cpu = -1;
	return 0;
}

static void on_signal(int sig)
{
	grid_cleanup(&G);
	_exit(3);
}

/* `tessera-client bench --kernel montecarlo_pi --threads 1` pinned like the fast node. */
static double rough_rate(int cpu)
{
	char client[PATH_MAX + 32], text[4096];
	snprintf(client, sizeof(client), "%s/tessera-client", G.bindir);
	char *argv[] = {client, "bench", "--kernel", "montecarlo_pi", "--threads", "1", "--seconds", "1", "--json", NULL};
	cpu_set_t old;
	sched_getaffinity(0, sizeof(old), &old);
	grid_pin_self(cpu); /* the child inherits it */
	int st = grid_run_capture(argv, text, sizeof(text), 60, NULL);
	sched_setaffinity(0, sizeof(old), &old);
	json_t *j = st == 0 ? json_loads(text, 0, NULL) : NULL;
	double r = json_number_value(json_object_get(json_array_get(j, 0), "rate"));
	json_decref(j);
	if (r <= 0)
		fprintf(stderr, "bench_makespan: tessera-client bench failed:\n%s", text);
	return r;
}

/* Submits a job of `units` units of unit_size samples and waits for it. *makespan: submit ->
 * done; *busy: first lease seen -> done. Returns the job or NULL. */
static json_t *run_job(uint64_t unit_size, int units, uint64_t seed, const struct opts *o, double *makespan,
		       double *busy)
{
	double t_done = 0, t_run = 0, t0 = ts_mono();
	uint64_t samples = unit_size * (uint64_t)units;
	int64_t id = grid_submit_pi(&G, samples, seed, units, NULL);
	if (id < 0)
		return NULL;
	json_t *job = grid_wait_job(&G, id, o->poll_ms / 1e3, o->timeout, &t_done, &t_run);
	if (!job)
		return NULL;
	long long got = json_integer_value(json_object_get(json_object_get(job, "result"), "samples"));
	if (strcmp(json_string_value(json_object_get(job, "state")) ?: "", "done") != 0 ||
	    got != (long long)samples) {
		fprintf(stderr, "bench_makespan: job %lld: %s, %lld samples of %llu\n", (long long)id,
			json_string_value(json_object_get(job, "state")), got, (unsigned long long)samples);
		json_decref(job);
		return NULL;
	}
	*makespan = t_done - t0;
	*busy = t_done - (t_run > 0 ? t_run : t0);
	return job;
}

/* Units the job's node `name` computed. */
static int job_node_units(json_t *job, const char *name)
{
	size_t i;
	json_t *nd;
	json_array_foreach(json_object_get(job, "nodes"), i, nd)
		if (strcmp(json_string_value(json_object_get(nd, "name")) ?: "", name) == 0)
			return (int)json_integer_value(json_object_get(nd, "units"));
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	int rc = 3;
	char la0[128], la1[128], slow_args[1024], maxrate[64];
	if (parse_args(argc, argv, &o))
		return 2;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	if (grid_init(&G, "bench_makespan", o.bindir))
		return 3;
	grid_loadavg(la0, sizeof(la0));
	double rough = rough_rate(o.fast_cpu);
	if (rough <= 0)
		goto out;
	char *srv_extra[] = {"--rate-limit", "0", "--login-rate", "0", NULL};
	if (grid_server_start(&G, srv_extra, o.server_cpu))
		goto out;
	char fast_copy[1024], slow_copy[1024], enroll_copy[] = "--threads 1";
	char *fast_argv[24], *slow_argv[24], *enroll_argv[4];
	snprintf(fast_copy, sizeof(fast_copy), "%s", o.fast_args);
	grid_split_args(fast_copy, fast_argv, 24);
	grid_split_args(enroll_copy, enroll_argv, 4);
	char *const *node_argv[2] = {fast_argv, slow_argv};
	int node_cpu[2] = {o.fast_cpu, o.slow_cpu};
	const char *node_name[2] = {"bench-0", "bench-1"};
	/* bench-0 and bench-1 run the job; bench-2 and bench-3, the same, calibrate alone. */
	for (int i = 0; i < 4; i++)
		if (grid_client_enroll(&G, i, enroll_argv))
			goto out;
	grid_print_machine(stdout);
	printf("pinning: server CPU %d, fast node CPU %d, slow node CPU %d (-1: not pinned)\n", o.server_cpu,
	       o.fast_cpu, o.slow_cpu);
	printf("one thread (tessera-client bench): %.3g samples/s\n", rough);
	fflush(stdout);

	/* 1. Each node alone: the fast one first, whose rate sets the slow one's cap and the job's
	 * size (a machine shared with others makes the 1 s bench a poor guide). */
	double rate[2], slow_cap = 0;
	uint64_t unit_size = (uint64_t)(o.target_s * rough * (1 + o.slow_share) / o.units);
	for (int i = 0; i < 2; i++) {
		if (i == 1) {
			slow_cap = o.slow_share * rate[0];
			snprintf(maxrate, sizeof(maxrate), "%.0f", slow_cap);
			snprintf(slow_args, sizeof(slow_args), "%s%s%s", o.slow_args,
				 o.slow_share > 0 ? " --max-rate " : "", o.slow_share > 0 ? maxrate : "");
			snprintf(slow_copy, sizeof(slow_copy), "%s", slow_args);
			grid_split_args(slow_copy, slow_argv, 24);
			double sum = rate[0] + (o.slow_share > 0 ? slow_cap : rate[0]);
			unit_size = (uint64_t)(o.target_s * sum / o.units);
		}
		double r0 = i == 0 ? rough : o.slow_share > 0 ? slow_cap : rate[0];
		int cu = (int)lround(o.calib_s * r0 / (double)unit_size);
		cu = cu < 2 ? 2 : cu;
		char calib_name[32];
		snprintf(calib_name, sizeof(calib_name), "bench-%d", 2 + i);
		if (grid_client_start(&G, 2 + i, node_argv[i], node_cpu[i]))
			goto out;
		grid_sleep(1.0);
		double ms = 0, busy = 0;
		json_t *job = run_job(unit_size, cu, 100 + (uint64_t)i, &o, &ms, &busy);
		grid_kill(&G.client[2 + i]);
		/* A stopped client's long-poll fetch may still wait on the server (it took work for
		 * a node that was gone in an earlier version of this program): its node is
		 * disabled before the next job. */
		if (grid_node_disable(&G, calib_name))
			goto out;
		if (!job) {
			rc = 1;
			goto out;
		}
		rate[i] = (double)unit_size * cu / busy;
		printf("%s node alone (tessera-client run %s): %d units of %llu in %.3f s from the first lease "
		       "(%.3f s from submit): %.3g samples/s\n",
		       i == 0 ? "fast" : "slow", i == 0 ? o.fast_args : slow_args, cu, (unsigned long long)unit_size,
		       busy, ms, rate[i]);
		fflush(stdout);
		json_decref(job);
	}
	printf("job: %d units of %llu samples\n", o.units, (unsigned long long)unit_size);

	/* 2. Both. */
	for (int i = 0; i < 2; i++)
		if (grid_client_start(&G, i, node_argv[i], node_cpu[i]))
			goto out;
	grid_sleep(o.idle);
	double total = (double)unit_size * o.units, makespan = 0, busy = 0;
	json_t *job = run_job(unit_size, o.units, 1, &o, &makespan, &busy);
	if (!job) {
		rc = 1;
		goto out;
	}
	double ideal = total / (rate[0] + rate[1]);
	/* The best split into whole units: k to the fast node, the rest to the slow one. */
	double best = INFINITY;
	int best_k = 0;
	for (int k = 0; k <= o.units; k++) {
		double a = (double)unit_size * k / rate[0], b = (double)unit_size * (o.units - k) / rate[1];
		double t = a > b ? a : b;
		if (t < best) {
			best = t;
			best_k = k;
		}
	}
	int uf = job_node_units(job, node_name[0]), us = job_node_units(job, node_name[1]);
	json_t *nodes = grid_api(&G, G.admin, "GET", "/api/v1/nodes", NULL, 200, NULL);
	size_t i;
	json_t *nd;
	printf("rates the nodes sent (GET /api/v1/nodes):");
	json_array_foreach(json_object_get(nodes, "nodes"), i, nd)
		printf(" %s %.3g", json_string_value(json_object_get(nd, "name")) ?: "?",
		       json_number_value(json_object_get(json_object_get(nd, "rates"), "montecarlo_pi")));
	printf("\n");
	json_decref(nodes);
	grid_loadavg(la1, sizeof(la1));
	printf("split: fast node %d units, slow node %d units (best whole-unit split %d / %d: %.3f s)\n", uf, us,
	       best_k, o.units - best_k, best);
	printf("makespan: %.3f s from submit, %.3f s from the first lease; ideal %.3f s\n", makespan, busy, ideal);
	printf("makespan / ideal: %.3f (target <= 1.15); from the first lease: %.3f\n", makespan / ideal,
	       busy / ideal);
	printf("load average before %s, after %s\n", la0, la1);
	json_decref(job);
	rc = 0;
out:
	grid_cleanup(&G);
	return rc;
}
