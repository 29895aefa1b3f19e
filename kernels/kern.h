/* kern: compute kernels as rows of a table (DESIGN.md "Kernels").
 *
 * A kernel maps an index space [0, space) to a partial result; partials of disjoint ranges
 * combine exactly, so the job's answer is the same for any split, thread count or CPU.
 * Kernels are pure: no I/O, no globals but read-only tables. */
#ifndef KERN_H
#define KERN_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ts_err.h"

/* A kernel's parsed parameters. */
typedef struct kern_args {
	uint64_t seed;  /* montecarlo_pi */
	uint64_t from;  /* prime_count, collatz: index i stands for the number from + i */
	uint64_t space; /* size of the index space */
} kern_args;

/* A partial result; its meaning is the kernel's (pi: v[0] = hits). */
typedef struct kern_partial {
	uint64_t v[2];
} kern_partial;

typedef struct kern {
	const char *name;
	/* Parses and range-checks params; on error writes a human reason into why. */
	ts_err (*parse)(const json_t *params, kern_args *args, char *why, size_t whylen);
	/* The identity of combine. */
	kern_partial (*zero)(void);
	/* Computes [start, start+count). Checks *cancel now and then and returns TS_ERR_UNAVAILABLE
	 * when it was set; cancel may be NULL. */
	ts_err (*compute)(const kern_args *args, uint64_t start, uint64_t count, kern_partial *out,
			  const volatile int *cancel);
	/* acc = combine(acc, p); associative and commutative. */
	void (*combine)(kern_partial *acc, const kern_partial *p);
	/* The wire form of a partial ({"hits": H}) and back (TS_ERR_BAD_REQUEST if malformed). */
	json_t *(*partial_to_json)(const kern_partial *p);
	ts_err (*partial_from_json)(const json_t *j, kern_partial *p);
	/* Checks a reported partial is possible for a range (pi: hits <= count). */
	int (*partial_plausible)(const kern_partial *p, uint64_t count);
	/* The job's result JSON from the combined partial of the whole space. */
	json_t *(*finalize)(const kern_args *args, const kern_partial *total);
	uint64_t default_unit; /* indices per unit when the user gives no size */
	double ns_per_index;   /* rough single-core cost, to size fetches before a node benchmarks */
} kern;

/* The kernel of that name, or NULL. */
const kern *kern_find(const char *name);
/* The table: kernel pointers ending with NULL; for listings and tests. */
const kern *const *kern_table(void);

/* Computes [start, start+count) on `threads` threads (0: all online CPUs) and combines. */
ts_err kern_run(const kern *k, const kern_args *args, uint64_t start, uint64_t count, int threads,
		kern_partial *out, const volatile int *cancel);

/* The montecarlo_pi sample mixer of DESIGN.md, exposed for tests. */
uint64_t kern_pi_mix64(uint64_t z);
/* Hits of montecarlo_pi for seed over [start, start+count), scalar reference path. */
uint64_t kern_pi_hits_scalar(uint64_t seed, uint64_t start, uint64_t count);

#endif
