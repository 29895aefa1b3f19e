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

#endif
