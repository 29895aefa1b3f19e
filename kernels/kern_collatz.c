/* collatz: the n in [from, to) with the longest total stopping time (DESIGN.md): the number of
 * steps n -> n/2 (even) or 3n+1 (odd) until 1; the smallest n on ties.
 *
 * Speed comes from two read-only tables built once: the steps of every n below 2^20, and a
 * jump over 16 steps of T(n) = n/2 or (3n+1)/2: for n = h*2^16 + l, T^16(n) = 3^c(l)*h + d(l),
 * which is 16 + c(l) steps of the plain map. From 2^53 on a jump could overflow in between, so
 * there the plain map runs one checked step at a time. Paths leave 64 bits from n = 12327829503
 * on (its path peaks near 2^64.2), so a 3n+1 that overflows 64 bits carries on in 128 bits; only
 * a path past 2^128 is an error, never a wrong count. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "kern.h"

#define CZ_JUMP_BITS 16
#define CZ_SMALL_BITS 20
/* Below it no value inside one jump reaches 2^64: they stay under 3 * 1.5^15 * (v + 1). */
#define CZ_JUMP_SAFE (1ULL << 53)
#define CZ_CHUNK (1u << 16) /* numbers between cancellation checks */
#define CZ_MAX_STEPS 100000 /* far above any known record; a bigger report is rejected */

static uint8_t cz_odd[1u << CZ_JUMP_BITS];   /* c(l): odd steps among the 16 */
static uint32_t cz_rest[1u << CZ_JUMP_BITS]; /* d(l) = T^16(l) */
static uint64_t cz_pow3[CZ_JUMP_BITS + 1];
static uint16_t cz_small[1u << CZ_SMALL_BITS]; /* steps of n, cz_small[0] unused */
static pthread_once_t cz_once = PTHREAD_ONCE_INIT;

static void cz_init(void)
{
	cz_pow3[0] = 1;
	for (int i = 1; i <= CZ_JUMP_BITS; i++)
		cz_pow3[i] = 3 * cz_pow3[i - 1];
	for (uint64_t l = 0; l < (1u << CZ_JUMP_BITS); l++) {
		uint64_t v = l;
		uint8_t odd = 0;
		for (int i = 0; i < CZ_JUMP_BITS; i++) {
			if (v & 1) {
				v = (3 * v + 1) / 2;
				odd++;
			} else {
				v /= 2;
			}
		}
		cz_odd[l] = odd;
		cz_rest[l] = (uint32_t)v;
	}
	/* Below 2^20 trajectories stay far below 2^64 (the peak is under 2^40). */
	cz_small[1] = 0;
	for (uint64_t n = 2; n < (1u << CZ_SMALL_BITS); n++) {
		uint64_t v = n, steps = 0;
		while (v >= n) {
			v = v & 1 ? 3 * v + 1 : v / 2;
			steps++;
		}
		cz_small[n] = (uint16_t)(steps + cz_small[v]);
	}
}

/* hi:lo = 3 * hi:lo + 1 in 128 bits; -1 if that overflows. */
static int cz_wide_odd(uint64_t *hi, uint64_t *lo)
{
	const uint64_t h = *hi, l = *lo;
	uint64_t nh, nl;
	if (h >> 63)
		return -1;
	/* x + 2x + 1; the two low carries cannot both happen. */
	uint64_t carry = __builtin_add_overflow(l, l << 1, &nl);
	carry += __builtin_add_overflow(nl, 1, &nl);
	if (__builtin_add_overflow(h, h << 1 | l >> 63, &nh) || __builtin_add_overflow(nh, carry, &nh))
		return -1;
	*hi = nh;
	*lo = nl;
	return 0;
}

/* Total stopping time of hi*2^64 + lo >= 1; TS_ERR_BAD_REQUEST if its path passes 2^128 - 1. */
static inline ts_err cz_steps(uint64_t hi, uint64_t v, uint64_t *out)
{
	uint64_t steps = 0;
	for (;;) {
		if (hi) {
			if (v & 1) {
				if (cz_wide_odd(&hi, &v))
					return TS_ERR_BAD_REQUEST;
			} else {
				v = v >> 1 | hi << 63;
				hi >>= 1;
			}
			steps++;
		} else if (v < (1u << CZ_SMALL_BITS)) {
			break;
		} else if (v < CZ_JUMP_SAFE) {
			const uint64_t l = v & ((1u << CZ_JUMP_BITS) - 1);
			v = cz_pow3[cz_odd[l]] * (v >> CZ_JUMP_BITS) + cz_rest[l];
			steps += CZ_JUMP_BITS + cz_odd[l];
		} else {
			if (v & 1)
				cz_wide_odd(&hi, &v); /* hi was 0: cannot overflow 128 bits */
			else
				v >>= 1;
			steps++;
		}
	}
	*out = steps + cz_small[v];
	return TS_OK;
}

ts_err kern_collatz_steps_wide(uint64_t hi, uint64_t lo, uint64_t *steps)
{
	if (hi == 0 && lo == 0)
		return TS_ERR_BAD_REQUEST;
	pthread_once(&cz_once, cz_init);
	return cz_steps(hi, lo, steps);
}

ts_err kern_collatz_steps(uint64_t n, uint64_t *steps)
{
	return kern_collatz_steps_wide(0, n, steps);
}

static const kern_param cz_params[] = {
	{"from", "integer", 1, 1, 9223372036854775807.0, NULL, NULL, "the first starting number"},
	{"to", "integer", 1, 2, 9223372036854775807.0, NULL, NULL, "the end of the range (not included)"},
	{NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

static ts_err cz_parse(const json_t *params, kern_args *args, char *why, size_t whylen)
{
	return kern_parse_range(params, "collatz", 1, INT64_MAX, args, why, whylen);
}

/* v[0] = n (0: no n yet, the identity), v[1] = its steps. */
static kern_partial cz_zero(void)
{
	return (kern_partial){{0, 0}};
}

static ts_err cz_compute(const kern_args *args, uint64_t start, uint64_t count, kern_partial *out,
			 const volatile int *cancel)
{
	kern_partial best = cz_zero();
	uint64_t n = args->from + start;
	pthread_once(&cz_once, cz_init);
	for (uint64_t done = 0; done < count;) {
		if (cancel && *cancel) {
			*out = cz_zero();
			return TS_ERR_UNAVAILABLE;
		}
		const uint64_t end = done + (count - done < CZ_CHUNK ? count - done : CZ_CHUNK);
		for (; done < end; done++, n++) {
			uint64_t steps;
			if (cz_steps(0, n, &steps)) {
				*out = cz_zero();
				return TS_ERR_BAD_REQUEST;
			}
			/* Strictly longer: n grows, so ties keep the smaller n. */
			if (steps > best.v[1] || best.v[0] == 0)
				best = (kern_partial){{n, steps}};
		}
	}
	*out = best;
	return TS_OK;
}

static void cz_combine(kern_partial *acc, const kern_partial *p)
{
	if (p->v[0] == 0)
		return;
	if (acc->v[0] == 0 || p->v[1] > acc->v[1] || (p->v[1] == acc->v[1] && p->v[0] < acc->v[0]))
		*acc = *p;
}

static json_t *cz_partial_to_json(const kern_partial *p)
{
	return json_pack("{s:I,s:I}", "n", (json_int_t)p->v[0], "steps", (json_int_t)p->v[1]);
}

static ts_err cz_partial_from_json(const json_t *j, kern_partial *p)
{
	json_t *n = json_object_get(j, "n");
	json_t *steps = json_object_get(j, "steps");
	if (!json_is_object(j) || json_object_size(j) != 2 || !json_is_integer(n) ||
	    json_integer_value(n) < 1 || !json_is_integer(steps) || json_integer_value(steps) < 0 ||
	    json_integer_value(steps) > CZ_MAX_STEPS)
		return TS_ERR_BAD_REQUEST;
	*p = (kern_partial){{(uint64_t)json_integer_value(n), (uint64_t)json_integer_value(steps)}};
	return TS_OK;
}

/* Whether n (with `steps`) beats x as a record: more steps, or as many and n <= x. */
static int cz_beats(uint64_t n, uint64_t steps, uint64_t x)
{
	uint64_t s;
	return kern_collatz_steps(x, &s) == TS_OK && (steps > s || (steps == s && n <= x));
}

static int cz_plausible(const kern_args *args, uint64_t start, uint64_t count,
			const kern_partial *p)
{
	/* The record holder is a number of the unit, with its own step count, and it beats the
	 * unit's first and last numbers. Three paths of a few hundred steps each. */
	const uint64_t lo = args->from + start, hi = lo + count, n = p->v[0], steps = p->v[1];
	uint64_t s;
	if (count == 0 || n < lo || n >= hi || steps > CZ_MAX_STEPS)
		return 0;
	if (kern_collatz_steps(n, &s) != TS_OK || s != steps)
		return 0;
	return cz_beats(n, steps, lo) && cz_beats(n, steps, hi - 1);
}

static json_t *cz_finalize(const kern_args *args, const kern_partial *total)
{
	return json_pack("{s:I,s:I,s:I,s:I}", "from", (json_int_t)args->from, "to",
			 (json_int_t)(args->from + args->space), "n", (json_int_t)total->v[0],
			 "steps", (json_int_t)total->v[1]);
}

const kern kern_collatz = {
	.name = "collatz",
	.alias = "collatz",
	.title = "Collatz record",
	.params = cz_params,
	.example = "{\"from\": 1, \"to\": 100000000}",
	.result_help = "n: the starting number in the range with the most steps, and its steps",
	.parse = cz_parse,
	.zero = cz_zero,
	.compute = cz_compute,
	.combine = cz_combine,
	.partial_to_json = cz_partial_to_json,
	.partial_from_json = cz_partial_from_json,
	.partial_plausible = cz_plausible,
	.finalize = cz_finalize,
	.default_unit = 100000000ULL,
	.ns_per_index = 20.0,
};
