/* bench_bare: the bare montecarlo_pi kernel over a whole job, no server, no network:
 * kern_run over [0, samples) on T threads, timed. The baseline of bench/scale.py's end-to-end
 * efficiency (the same samples and seed as the job run through the grid) and the exact hits
 * that job must return.
 *
 *   bench_bare --samples N [--seed S] [--threads T] [--repeat R]
 * prints one JSON object: {"samples","seed","threads","hits","wall_s","rate","path","runs"}
 * (wall_s: the best of R runs). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "kern.h"
#include "ts_util.h"

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"samples", required_argument, NULL, 'n'}, {"seed", required_argument, NULL, 's'},
		{"threads", required_argument, NULL, 't'}, {"repeat", required_argument, NULL, 'r'},
		{NULL, 0, NULL, 0},
	};
	uint64_t samples = 0, seed = 0;
	int threads = 1, repeat = 1, c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (ts_parse_u64(optarg, &samples))
				samples = 0;
			break;
		case 's':
			if (ts_parse_u64(optarg, &seed))
				return 2;
			break;
		case 't': threads = atoi(optarg); break;
		case 'r': repeat = atoi(optarg); break;
		default: goto usage;
		}
	}
	if (optind < argc || samples == 0 || threads < 1 || threads > 1024 || repeat < 1 || repeat > 100)
		goto usage;
	const kern *k = kern_find("montecarlo_pi");
	kern_args args = {.seed = seed, .space = samples};
	kern_partial p = {{0, 0}};
	double best = 1e300;
	for (int i = 0; i < repeat; i++) {
		double t0 = ts_mono();
		if (!k || kern_run(k, &args, 0, samples, threads, &p, NULL) != TS_OK) {
			fprintf(stderr, "bench_bare: kern_run failed\n");
			return 1;
		}
		double t = ts_mono() - t0;
		if (t < best)
			best = t;
	}
	json_t *o = json_pack("{s:I,s:I,s:i,s:I,s:f,s:f,s:s,s:i}", "samples", (json_int_t)samples, "seed",
			      (json_int_t)seed, "threads", threads, "hits", (json_int_t)p.v[0], "wall_s", best,
			      "rate", (double)samples / best, "path", kern_pi_path(), "runs", repeat);
	char *text = json_dumps(o, JSON_COMPACT);
	printf("%s\n", text ? text : "{}");
	free(text);
	json_decref(o);
	return 0;
usage:
	fprintf(stderr, "usage: bench_bare --samples N [--seed S] [--threads T] [--repeat R]\n");
	return 2;
}
