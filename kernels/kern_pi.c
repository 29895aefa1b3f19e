/* montecarlo_pi: sample i of seed S is a hit iff x*x + y*y < 2^62 (DESIGN.md). Parameters,
 * partials and the result live here; the hit counting paths (scalar, AVX2, AVX-512, NEON) and
 * the choice among them are in kern_pi_simd.c. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kern.h"

extern const kern kern_montecarlo_pi;

#define PI_CHUNK (1u << 22)                    /* samples between cancellation checks */

static const kern_param pi_params[] = {
	{"samples", "integer", 1, 1, 1e18, NULL, NULL, "samples to draw"},
	{"seed", "integer", 0, 0, 9223372036854775807.0, "0", NULL, "random seed"},
	{NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

static ts_err pi_parse(const json_t *params, kern_args *args, char *why, size_t whylen)
{
	ts_err result = kern_params_check(&kern_montecarlo_pi, params, why, whylen);
	if (result)
		return result;
	args->seed = kern_param_u64(params, "seed", 0);
	args->from = 0;
	args->space = kern_param_u64(params, "samples", 0);
	return TS_OK;
}

static ts_err pi_compute(const kern_args *args, uint64_t start, uint64_t count, kern_partial *out,
			 const volatile int *cancel)
{
	uint64_t key = kern_pi_key(args->seed), hits = 0;
	while (count > 0) {
		if (cancel && *cancel)
			return TS_ERR_UNAVAILABLE;
		uint64_t n = count < PI_CHUNK ? count : PI_CHUNK;
		hits += kern_pi_hits_key(key, start, n);
		start += n;
		count -= n;
	}
	*out = (kern_partial){{hits, 0}};
	return TS_OK;
}

static json_t *pi_partial_to_json(const kern_partial *p)
{
	return kern_count_to_json("hits", p);
}

static ts_err pi_partial_from_json(const json_t *j, kern_partial *p)
{
	return kern_count_from_json("hits", j, p);
}

static int pi_plausible(const kern_args *args, uint64_t start, uint64_t count,
			const kern_partial *p)
{
	/* Any number of hits from 0 to count can happen. */
	return p->v[0] <= count;
}

static json_t *pi_finalize(const kern_args *args, const kern_partial *total)
{
	double n = (double)args->space, h = (double)total->v[0];
	double p = h / n;
	double est = 4.0 * p;
	/* Binomial standard error of 4*H/N. */
	double se = 4.0 * sqrt(p * (1.0 - p) / n);
	return json_pack("{s:I,s:I,s:f,s:f,s:f}", "samples", (json_int_t)args->space, "hits",
			 (json_int_t)total->v[0], "pi", est, "stderr", se, "error", est - M_PI);
}

const kern kern_montecarlo_pi = {
	.name = "montecarlo_pi",
	.alias = "pi",
	.title = "Monte Carlo pi",
	.params = pi_params, /* samples <= 1e18: keeps 4H/N exact enough and i+1 < 2^64 */
	.example = "{\"samples\": 1000000000, \"seed\": 1}",
	.result_help = "pi: the estimate 4 hits / samples, with its standard error and its error",
	.parse = pi_parse,
	.zero = kern_count_zero,
	.compute = pi_compute,
	.combine = kern_count_combine,
	.partial_to_json = pi_partial_to_json,
	.partial_from_json = pi_partial_from_json,
	.partial_plausible = pi_plausible,
	.finalize = pi_finalize,
	.default_unit = 100000000ULL,
	.ns_per_index = 1.0,
};
