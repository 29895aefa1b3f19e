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

/* One parameter of a kind, as GET /api/v1/kernels describes it to every surface (CLI options,
 * the dashboard's form, bench, tests). kern_params_check checks "integer" ones from it. */
typedef struct kern_param {
	const char *name;
	const char *type;    /* "integer", "number", "string", "strings", "file", "files", "choice" */
	int required;
	double min, max;     /* integer, number: the range; strings, files: the count */
	const char *def;     /* the default as JSON text, or NULL */
	const char *choices; /* choice: "a|b|c" */
	const char *help;
} kern_param;

typedef struct kern {
	const char *name;
	/* How every surface shows the kind: a short name users type, a title, its parameters
	 * (ending with a NULL name), example params (JSON text) and what its result says. */
	const char *alias, *title;
	const kern_param *params;
	const char *example, *result_help;
	/* Parses and range-checks params; on error writes a human reason into why. */
	ts_err (*parse)(const json_t *params, kern_args *args, char *why, size_t whylen);
	/* The identity of combine. */
	kern_partial (*zero)(void);
	/* Computes [start, start+count). NULL for a kind a node runs another way (program). Checks *cancel now and then and returns TS_ERR_UNAVAILABLE
	 * when it was set; cancel may be NULL. */
	ts_err (*compute)(const kern_args *args, uint64_t start, uint64_t count, kern_partial *out,
			  const volatile int *cancel);
	/* acc = combine(acc, p); associative and commutative. */
	void (*combine)(kern_partial *acc, const kern_partial *p);
	/* The wire form of a partial ({"hits": H}) and back (TS_ERR_BAD_REQUEST if malformed). */
	json_t *(*partial_to_json)(const kern_partial *p);
	ts_err (*partial_from_json)(const json_t *j, kern_partial *p);
	/* Whether a reported partial is possible for the unit [start, start+count) of a job with
	 * these args (pi: hits <= count; collatz: n inside the unit, with n's own steps). The unit
	 * lies inside [0, args->space) (kern_partial_plausible checks that). Cheap, a few
	 * microseconds: the server runs it on its event loop for every result. */
	int (*partial_plausible)(const kern_args *args, uint64_t start, uint64_t count,
				 const kern_partial *p);
	/* The job's result JSON from the combined partial of the whole space. */
	json_t *(*finalize)(const kern_args *args, const kern_partial *total);
	uint64_t default_unit; /* indices per unit when the user gives no size */
	double ns_per_index;   /* rough single-core cost, to size fetches before a node benchmarks */
} kern;

/* Building blocks for kernel rows, so each kernel writes only what is its own. */

/* Checks params against k->params: an object, no unknown key, required ones given, integers
 * integers inside their range; the reason names the parameter. */
ts_err kern_params_check(const kern *k, const json_t *params, char *why, size_t whylen);
/* An integer param (def when absent; call after kern_params_check). */
uint64_t kern_param_u64(const json_t *params, const char *name, uint64_t def);
/* The kind's description for GET /api/v1/kernels. */
json_t *kern_describe(const kern *k);

/* Refuses params that are not an object or have a key not in the NULL-terminated list. */
ts_err kern_params_only(const json_t *params, const char *kernel, const char *const *keys, char *why,
			size_t whylen);
/* Parses {"from": a, "to": b} with min_from <= a < b <= max_to into args (index i is a + i). */
ts_err kern_parse_range(const json_t *params, const char *kernel, uint64_t min_from, uint64_t max_to,
			kern_args *args, char *why, size_t whylen);
/* Partials that are one count (v[0]), summed: the identity, combine, and the wire form
 * {"<name>": N}. */
kern_partial kern_count_zero(void);
void kern_count_combine(kern_partial *acc, const kern_partial *p);
json_t *kern_count_to_json(const char *name, const kern_partial *p);
ts_err kern_count_from_json(const char *name, const json_t *j, kern_partial *p);

/* The server's check of a reported partial p for the unit [start, start+count) of a job of
 * kernel k with these params: 1 if the params parse, the unit lies inside the job's index space
 * and k's partial_plausible accepts p; else 0. */
int kern_partial_plausible(const kern *k, const json_t *params, uint64_t start, uint64_t count,
			   const kern_partial *p);

/* The kernel of that name, or NULL. */
const kern *kern_find(const char *name);
/* The table: kernel pointers ending with NULL; for listings and tests. */
const kern *const *kern_table(void);

/* Computes [start, start+count) on `threads` threads (0: all online CPUs) and combines. */
ts_err kern_run(const kern *k, const kern_args *args, uint64_t start, uint64_t count, int threads,
		kern_partial *out, const volatile int *cancel);

/* The montecarlo_pi sample mixer of DESIGN.md, exposed for tests. */
uint64_t kern_pi_mix64(uint64_t z);
/* key = mix64(seed + 0x632be59bd9b4e019), the per-seed constant of DESIGN.md. */
uint64_t kern_pi_key(uint64_t seed);
/* Hits of montecarlo_pi for seed over [start, start+count), scalar reference path. */
uint64_t kern_pi_hits_scalar(uint64_t seed, uint64_t start, uint64_t count);

/* montecarlo_pi CPU paths: "avx512", "avx2" (x86-64), "neon" (AArch64, and armhf CPUs with NEON),
 * "scalar", and "generic8" (portable C with the AVX-512 loop's 8 lanes; for tests, never chosen
 * automatically). All give identical hits. The path is chosen once per process: the one named by
 * $TESSERA_KERNEL_PATH if this CPU runs it, else the fastest this CPU runs. */
/* Hits over [start, start+count) with the current path, key from kern_pi_key. Thread-safe. */
uint64_t kern_pi_hits_key(uint64_t key, uint64_t start, uint64_t count);
/* The current path's name. */
const char *kern_pi_path(void);
/* Writes up to max names of the paths this CPU runs (best first) into names; returns how many
 * there are, which may exceed max. */
int kern_pi_paths(const char **names, int max);
/* Forces a path for the whole process (NULL or "auto": back to the automatic choice);
 * TS_ERR_NOT_FOUND, changing nothing, if this build or CPU has no such path. */
ts_err kern_pi_set_path(const char *name);
/* Hits with the named path, whatever the current one; TS_ERR_NOT_FOUND as above. */
ts_err kern_pi_hits_path(const char *name, uint64_t seed, uint64_t start, uint64_t count,
			 uint64_t *hits);

/* Primes p with lo <= p < hi, single-threaded (the prime_count kernel's core); TS_ERR_BAD_REQUEST
 * if hi is over the kernel's cap (10^14), TS_ERR_NOMEM. */
ts_err kern_prime_count_range(uint64_t lo, uint64_t hi, uint64_t *count);

/* Total stopping time of n >= 1 (the collatz kernel's core). Paths that leave 64 bits (the first
 * from n = 12327829503) go on in 128 bits; TS_ERR_BAD_REQUEST for n = 0 or a path past 2^128 - 1,
 * and the collatz kernel's compute fails the same way. */
ts_err kern_collatz_steps(uint64_t n, uint64_t *steps);
/* The same for the 128-bit number hi * 2^64 + lo (for tests of the overflow check). */
ts_err kern_collatz_steps_wide(uint64_t hi, uint64_t lo, uint64_t *steps);

#endif
