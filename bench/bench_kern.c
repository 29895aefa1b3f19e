/* bench_kern: kernel throughput on this machine, per kernel, CPU path and thread count, and
 * prime_count against the primesieve program (Debian's primesieve-bin) on the same range and
 * threads. Each figure is the best of --reps runs of about --seconds each: on a shared machine
 * the best run is the one least disturbed.
 *
 *   bench_kern [--kernel K] [--seconds S] [--reps R] [--threads N] [--quick]
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kern.h"

struct bench_opts {
	double seconds; /* target length of one run */
	int reps;
	int quick;
	int max_threads;    /* thread counts 1, 2, ..., up to this */
	const char *kernel; /* only this one; NULL: all */
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static kern_args parse_or_die(const kern *k, const char *text)
{
	char why[256];
	kern_args args;
	json_t *params = json_loads(text, 0, NULL);
	if (!params || k->parse(params, &args, why, sizeof(why)) != TS_OK) {
		fprintf(stderr, "bench_kern: %s rejects %s\n", k->name, text);
		exit(2);
	}
	json_decref(params);
	return args;
}

/* Seconds of the best of reps runs of [start, start+count); the partial of the last. */
static double time_run(const kern *k, const kern_args *args, uint64_t start, uint64_t count,
		       int threads, int reps, kern_partial *out)
{
	double best = 0;
	for (int r = 0; r < reps; r++) {
		double t0 = now_s();
		ts_err e = kern_run(k, args, start, count, threads, out, NULL);
		double dt = now_s() - t0;
		if (e != TS_OK) {
			fprintf(stderr, "bench_kern: %s failed: %s\n", k->name, ts_strerror(e));
			exit(1);
		}
		if (r == 0 || dt < best)
			best = dt;
	}
	return best;
}

/* Indices that take about opts->seconds on `threads` threads, from a short trial run. */
static uint64_t size_run(const kern *k, const kern_args *args, uint64_t start, int threads,
			 const struct bench_opts *opts)
{
	kern_partial p;
	uint64_t n = (uint64_t)(0.05 / (k->ns_per_index * 1e-9));
	for (;;) {
		if (n > args->space - start)
			n = args->space - start;
		double dt = time_run(k, args, start, n, threads, 1, &p);
		if (dt >= 0.05 || n == args->space - start) {
			double want = (double)n / dt * opts->seconds;
			return want < (double)(args->space - start) ? (uint64_t)want : args->space - start;
		}
		n *= 4;
	}
}

static void bench_pi(const struct bench_opts *opts)
{
	const kern *k = kern_find("montecarlo_pi");
	kern_args args = parse_or_die(k, "{\"samples\": 1000000000000000000, \"seed\": 1}");
	const char *paths[16];
	int np = kern_pi_paths(paths, 16);
	printf("montecarlo_pi (automatic path: %s)\n", kern_pi_path());
	for (int i = 0; i < np && i < 16; i++) {
		double rate1 = 0;
		if (kern_pi_set_path(paths[i]) != TS_OK)
			continue;
		for (int t = 1; t <= opts->max_threads; t++) {
			kern_partial p;
			uint64_t n = size_run(k, &args, 0, t, opts);
			double dt = time_run(k, &args, 0, n, t, opts->reps, &p);
			double rate = (double)n / dt;
			if (t == 1)
				rate1 = rate;
			printf("  %-9s %2d thread%s %10.3e samples/s  %7.3e per thread", paths[i], t,
			       t > 1 ? "s" : " ", rate, rate / t);
			if (t > 1)
				printf("  scaling x%.2f", rate / rate1);
			printf("\n");
		}
	}
	kern_pi_set_path(NULL);
}

/* Runs primesieve on [from, to) with threads; its wall time (process start included) and count.
 * Returns 0 when it could not run. */
static int primesieve_time(uint64_t from, uint64_t to, int threads, double *seconds,
			   uint64_t *count)
{
	char cmd[256], line[128];
	/* primesieve counts [start, stop], both included. */
	snprintf(cmd, sizeof(cmd), "primesieve %" PRIu64 " %" PRIu64 " -c -q -t %d 2>/dev/null", from,
		 to - 1, threads);
	double t0 = now_s();
	FILE *f = popen(cmd, "r");
	if (!f)
		return 0;
	int got = fgets(line, sizeof(line), f) != NULL;
	char rest[128];
	while (fgets(rest, sizeof(rest), f))
		;
	int status = pclose(f);
	*seconds = now_s() - t0;
	if (!got || status != 0)
		return 0;
	*count = strtoull(line, NULL, 10);
	return 1;
}

static int primesieve_found(void)
{
	FILE *f = popen("primesieve --version 2>/dev/null", "r");
	char line[128], rest[128];
	if (!f)
		return 0;
	int ok = fgets(line, sizeof(line), f) != NULL;
	while (fgets(rest, sizeof(rest), f)) /* read to the end: an early close kills it by SIGPIPE */
		;
	if (pclose(f) != 0)
		ok = 0;
	if (ok)
		printf("  reference: %s", line);
	return ok;
}

static void bench_prime(const struct bench_opts *opts)
{
	const kern *k = kern_find("prime_count");
	static const uint64_t ranges[][2] = {
		{0, 10000000000ULL},
		{1000000000000ULL, 1010000000000ULL},
		{99990000000000ULL, 100000000000000ULL},
	};
	const int nranges = opts->quick ? 1 : 3;
	printf("prime_count against primesieve, same range and threads (ratio = our time / its "
	       "time; the target is under 3)\n");
	int have_ps = primesieve_found();
	if (!have_ps)
		printf("  NOTE: the primesieve program was not found (Debian: apt-get install "
		       "primesieve-bin): no ratios\n");
	for (int r = 0; r < nranges; r++) {
		uint64_t from = ranges[r][0], to = ranges[r][1];
		if (opts->quick)
			to = from + (to - from) / 10;
		char params[128];
		snprintf(params, sizeof(params), "{\"from\": %" PRIu64 ", \"to\": %" PRIu64 "}", from,
			 to);
		kern_args args = parse_or_die(k, params);
		for (int t = 1; t <= opts->max_threads; t++) {
			kern_partial p;
			double dt = time_run(k, &args, 0, args.space, t, opts->reps, &p);
			printf("  [%" PRIu64 ", %" PRIu64 ") %2d thread%s %10.3e numbers/s  %6.3f s  "
			       "count %" PRIu64,
			       from, to, t, t > 1 ? "s" : " ", (double)args.space / dt, dt, p.v[0]);
			double ps_best = 0, ps;
			uint64_t ps_count = 0;
			int ran = 0;
			for (int i = 0; have_ps && i < opts->reps; i++) {
				if (!primesieve_time(from, to, t, &ps, &ps_count))
					break;
				if (!ran++ || ps < ps_best)
					ps_best = ps;
			}
			if (ran) {
				printf("  primesieve %6.3f s  ratio %.2f", ps_best, dt / ps_best);
				if (ps_count != p.v[0])
					printf("  COUNT MISMATCH: primesieve says %" PRIu64, ps_count);
			} else if (have_ps) {
				printf("  primesieve failed to run");
			}
			printf("\n");
		}
	}
}

static void bench_collatz(const struct bench_opts *opts)
{
	const kern *k = kern_find("collatz");
	static const char *const params[] = {"{\"from\": 1, \"to\": 1000000000}",
					     "{\"from\": 1000000000000, \"to\": 2000000000000}"};
	printf("collatz\n");
	for (size_t r = 0; r < sizeof(params) / sizeof(params[0]); r++) {
		kern_args args = parse_or_die(k, params[r]);
		double rate1 = 0;
		for (int t = 1; t <= opts->max_threads; t++) {
			kern_partial p;
			uint64_t n = size_run(k, &args, 0, t, opts);
			double dt = time_run(k, &args, 0, n, t, opts->reps, &p);
			double rate = (double)n / dt;
			if (t == 1)
				rate1 = rate;
			printf("  from %-14" PRIu64 " %2d thread%s %10.3e numbers/s", args.from, t,
			       t > 1 ? "s" : " ", rate);
			if (t > 1)
				printf("  scaling x%.2f", rate / rate1);
			printf("\n");
		}
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_kern [--kernel montecarlo_pi|prime_count|collatz] "
			"[--seconds S] [--reps R] [--threads N] [--quick]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	struct bench_opts opts = {1.0, 3, 0, cpus >= 2 ? 2 : 1, NULL};
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			opts.seconds = atof(argv[++i]);
		else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
			opts.reps = atoi(argv[++i]);
		else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
			opts.max_threads = atoi(argv[++i]);
		else if (strcmp(argv[i], "--kernel") == 0 && i + 1 < argc)
			opts.kernel = argv[++i];
		else if (strcmp(argv[i], "--quick") == 0)
			opts.quick = 1;
		else
			usage();
	}
	if (opts.quick) {
		opts.seconds = 0.3;
		opts.reps = 1;
	}
	if (opts.seconds <= 0 || opts.reps < 1 || opts.max_threads < 1 || opts.max_threads > 256)
		usage();
	printf("bench_kern: %ld online CPUs, runs of ~%.1f s, best of %d\n", cpus, opts.seconds,
	       opts.reps);
	static const struct {
		const char *name;
		void (*run)(const struct bench_opts *opts);
	} benches[] = {
		{"montecarlo_pi", bench_pi},
		{"prime_count", bench_prime},
		{"collatz", bench_collatz},
	};
	int ran = 0;
	for (size_t i = 0; i < sizeof(benches) / sizeof(benches[0]); i++) {
		if (opts.kernel && strcmp(opts.kernel, benches[i].name) != 0)
			continue;
		benches[i].run(&opts);
		ran++;
	}
	if (!ran)
		usage();
	return 0;
}
