/* cl_bench: how fast this machine runs each kernel (tessera-client bench). */
#ifndef CL_BENCH_H
#define CL_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "kern.h"
#include "ts_err.h"

typedef struct cl_bench_result {
	const char *kernel;
	const char *unit; /* what the rate counts: "samples/s", "numbers/s", "indices/s" */
	int threads;      /* the thread count actually used */
	double rate;      /* indices per second of the final, longest run */
	uint64_t indices; /* indices computed in that run */
	double seconds;   /* its wall time */
} cl_bench_result;

/* Times kern_run on growing ranges for about `seconds` in all (threads 0: all online CPUs).
 * TS_ERR_NOT_FOUND when there are no benchmark parameters for the kernel. */
ts_err cl_bench_kernel(const kern *k, int threads, double seconds, cl_bench_result *out,
		       char *why, size_t whylen);

/* The node's rates as the API takes them: {"kernel": indices/s} for every kernel of the table
 * that has benchmark parameters, each timed for about seconds_per_kernel on threads threads.
 * On failure *rates is NULL and why says why. */
ts_err cl_bench_rates(int threads, double seconds_per_kernel, json_t **rates, char *why,
		      size_t whylen);

/* rates.json: rates measured for threads x ranks at time now, and whether a saved record still
 * holds for a run (same threads, ranks and kernel table, measured less than
 * CL_BENCH_CACHE_S ago). A restart then skips the benchmark. fresh returns a borrowed
 * reference to the rates, or NULL. */
#define CL_BENCH_CACHE_S 3600
json_t *cl_bench_cache_record(const json_t *rates, int threads, int ranks, int64_t now);
const json_t *cl_bench_cache_fresh(const json_t *record, int threads, int ranks, int64_t now);

#endif
