/* montecarlo_pi: sample i of seed S is a hit iff x*x + y*y < 2^62 (DESIGN.md). Parameters,
 * partials and the result live here; the hit counting paths (scalar, AVX2, AVX-512, NEON) and
 * the choice among them are in kern_pi_simd.c. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kern.h"

#define PI_MAX_SAMPLES 1000000000000000000ULL /* 1e18: keeps 4H/N exact enough and i+1 < 2^64 */
#define PI_CHUNK (1u << 22)                    /* samples between cancellation checks */

static ts_err pi_parse(const json_t *params, kern_args *args, char *why, size_t whylen)
{
	json_t *samples = json_object_get(params, "samples");
	json_t *seed = json_object_get(params, "seed");
	const char *key;
	json_t *val;
	if (!json_is_object(params)) {
		snprintf(why, whylen, "params must be an object");
		return TS_ERR_BAD_REQUEST;
	}
	json_object_foreach((json_t *)params, key, val) {
		if (strcmp(key, "samples") != 0 && strcmp(key, "seed") != 0) {
			snprintf(why, whylen, "unknown parameter '%s' for montecarlo_pi", key);
			return TS_ERR_BAD_REQUEST;
		}
	}
	if (!json_is_integer(samples) || json_integer_value(samples) <= 0 ||
	    (uint64_t)json_integer_value(samples) > PI_MAX_SAMPLES) {
		snprintf(why, whylen, "samples must be an integer from 1 to 10^18");
		return TS_ERR_BAD_REQUEST;
	}
	if (seed && (!json_is_integer(seed) || json_integer_value(seed) < 0)) {
		snprintf(why, whylen, "seed must be a non-negative integer");
		return TS_ERR_BAD_REQUEST;
	}
	args->seed = seed ? (uint64_t)json_integer_value(seed) : 0;
	args->from = 0;
	args->space = (uint64_t)json_integer_value(samples);
	return TS_OK;
}

static kern_partial pi_zero(void)
{
	return (kern_partial){{0, 0}};
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

static void pi_combine(kern_partial *acc, const kern_partial *p)
{
	acc->v[0] += p->v[0];
}

static json_t *pi_partial_to_json(const kern_partial *p)
{
	return json_pack("{s:I}", "hits", (json_int_t)p->v[0]);
}

static ts_err pi_partial_from_json(const json_t *j, kern_partial *p)
{
	json_t *hits = json_object_get(j, "hits");
	if (!json_is_object(j) || json_object_size(j) != 1 || !json_is_integer(hits) ||
	    json_integer_value(hits) < 0)
		return TS_ERR_BAD_REQUEST;
	*p = (kern_partial){{(uint64_t)json_integer_value(hits), 0}};
	return TS_OK;
}

static int pi_plausible(const kern_partial *p, uint64_t count)
{
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
	.parse = pi_parse,
	.zero = pi_zero,
	.compute = pi_compute,
	.combine = pi_combine,
	.partial_to_json = pi_partial_to_json,
	.partial_from_json = pi_partial_from_json,
	.partial_plausible = pi_plausible,
	.finalize = pi_finalize,
	.default_unit = 100000000ULL,
	.ns_per_index = 1.0,
};
