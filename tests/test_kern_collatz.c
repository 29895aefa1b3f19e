/* collatz: the records of DESIGN.md, steps against the plain map (in 128 bits, as paths leave
 * 64 bits from n = 12327829503 on), ties to the smaller n in any split, and a path past 2^128
 * reported as an error, never as a count. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "kern.h"
#include "th_kern.h"

#define ULL(x) ((unsigned long long)(x))
#define THIRD 0x5555555555555555ULL /* (2^64 - 1) / 3: odd, and 3n + 1 = 2^64 */

typedef unsigned __int128 u128;

static const kern *cz_kern(void)
{
	return th_kern("collatz");
}

static ts_err parse_text(const char *text, kern_args *args, char *why, size_t len)
{
	return th_kern_parse(cz_kern(), text, args, why, len);
}

static kern_args cz_args(uint64_t from, uint64_t to)
{
	return th_kern_range(cz_kern(), from, to);
}

/* The plain map on a 128-bit number, one checked step at a time: 1 if it passes 2^128 - 1. */
static int plain_steps(u128 n, uint64_t *steps)
{
	uint64_t s = 0;
	while (n != 1) {
		if (n & 1) {
			if (n > (~(u128)0 - 1) / 3)
				return 1;
			n = 3 * n + 1;
		} else {
			n >>= 1;
		}
		s++;
	}
	*steps = s;
	return 0;
}

static void expect_record(uint64_t from, uint64_t to, int threads, uint64_t n, uint64_t steps)
{
	kern_args args = cz_args(from, to);
	kern_partial p;
	cr_assert_eq(kern_run(cz_kern(), &args, 0, args.space, threads, &p, NULL), TS_OK);
	cr_expect_eq(p.v[0], n, "[%llu, %llu) on %d threads: n %llu", ULL(from), ULL(to), threads,
		     ULL(p.v[0]));
	cr_expect_eq(p.v[1], steps, "[%llu, %llu): steps %llu", ULL(from), ULL(to), ULL(p.v[1]));
}

Test(kern_collatz, design_records)
{
	expect_record(1, 1000000, 0, 837799, 524);
	expect_record(1, 10000000, 0, 8400511, 685);
}

Test(kern_collatz, steps_match_the_plain_map)
{
	for (uint64_t n = 1; n < 300000; n++) {
		uint64_t want, got;
		cr_assert_eq(plain_steps(n, &want), 0);
		cr_assert_eq(kern_collatz_steps(n, &got), TS_OK);
		cr_assert_eq(got, want, "n %llu: %llu steps, want %llu", ULL(n), ULL(got), ULL(want));
	}
	srand(5);
	for (int t = 0; t < 20000; t++) {
		/* Magnitudes from 2^20 to 2^64, across the jump table's 2^53 limit. */
		uint64_t n = ((uint64_t)rand() << 42 ^ (uint64_t)rand() << 21 ^ (uint64_t)rand()) >>
			     (rand() % 44);
		uint64_t want = 0, got = 0;
		if (n == 0)
			continue;
		cr_assert_eq(plain_steps(n, &want), 0);
		cr_assert_eq(kern_collatz_steps(n, &got), TS_OK, "n %llu", ULL(n));
		cr_assert_eq(got, want, "n %llu: %llu steps, want %llu", ULL(n), ULL(got), ULL(want));
	}
	/* Paths that leave 64 bits (from Python's big integers): 12327829503 peaks at 2^64.17. */
	static const uint64_t known[][2] = {
		{1, 0},
		{8528817511ULL, 726},  /* peaks just under 2^64 */
		{12327829503ULL, 543}, /* the first past 2^64 */
		{23035537407ULL, 836},
		{THIRD, 65},
		{9223372036854775807ULL, 862}, /* peaks near 2^100.9 */
		{1ULL << 63, 63},
	};
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		uint64_t s = 0;
		cr_expect_eq(kern_collatz_steps(known[i][0], &s), TS_OK);
		cr_expect_eq(s, known[i][1], "n %llu: %llu steps", ULL(known[i][0]), ULL(s));
	}
	uint64_t s;
	cr_expect_eq(kern_collatz_steps(0, &s), TS_ERR_BAD_REQUEST);
}

Test(kern_collatz, ties_go_to_the_smaller_n)
{
	/* 12 and 13 both take 9 steps; 1 takes 0, and the identity must not beat it. */
	expect_record(12, 14, 1, 12, 9);
	expect_record(12, 14, 2, 12, 9);
	expect_record(1, 2, 1, 1, 0);
	expect_record(1, 2, 4, 1, 0);
	expect_record(1, 3, 2, 2, 1);

	const kern *k = cz_kern();
	kern_partial a = {{12, 9}}, b = {{13, 9}}, one = {{1, 0}}, acc;
	acc = b;
	k->combine(&acc, &a);
	cr_expect_eq(acc.v[0], 12);
	acc = a;
	k->combine(&acc, &b);
	cr_expect_eq(acc.v[0], 12);
	acc = k->zero();
	k->combine(&acc, &one);
	cr_expect(acc.v[0] == 1 && acc.v[1] == 0, "identity won against n = 1");
	acc = one;
	kern_partial z = k->zero();
	k->combine(&acc, &z);
	cr_expect(acc.v[0] == 1 && acc.v[1] == 0, "identity replaced n = 1");
}

Test(kern_collatz, any_split_gives_the_same_record)
{
	static const uint64_t froms[] = {1, 999999, 1000000000000ULL};
	const uint64_t span = 2000003;
	const kern *k = cz_kern();
	srand(11);
	for (size_t f = 0; f < sizeof(froms) / sizeof(froms[0]); f++) {
		kern_args args = cz_args(froms[f], froms[f] + span);
		kern_partial whole;
		cr_assert_eq(k->compute(&args, 0, span, &whole, NULL), TS_OK);
		cr_assert_neq(whole.v[0], 0);
		static const int threads[] = {2, 3, 7};
		for (size_t t = 0; t < sizeof(threads) / sizeof(threads[0]); t++) {
			kern_partial p;
			cr_assert_eq(kern_run(k, &args, 0, span, threads[t], &p, NULL), TS_OK);
			cr_expect(p.v[0] == whole.v[0] && p.v[1] == whole.v[1],
				  "from %llu, %d threads", ULL(froms[f]), threads[t]);
		}
		/* Random pieces combined in reverse order: order must not matter either. */
		kern_partial parts[64];
		int np = 0;
		for (uint64_t at = 0; at < span; np++) {
			uint64_t n = 1 + (uint64_t)rand() % 100000;
			if (n > span - at || np == 63)
				n = span - at;
			cr_assert_eq(k->compute(&args, at, n, &parts[np], NULL), TS_OK);
			at += n;
		}
		kern_partial acc = k->zero();
		while (np-- > 0)
			k->combine(&acc, &parts[np]);
		cr_expect(acc.v[0] == whole.v[0] && acc.v[1] == whole.v[1], "split from %llu",
			  ULL(froms[f]));
	}
}

Test(kern_collatz, paths_past_64_bits_count_exactly)
{
	/* 3 * THIRD + 1 = 2^64 at the first step; 12327829503 is the first n whose path leaves
	 * 64 bits. Both ranges compute, and agree with the plain map. */
	static const uint64_t froms[] = {THIRD - 4, 12327829503ULL - 5};
	for (size_t f = 0; f < sizeof(froms) / sizeof(froms[0]); f++) {
		kern_partial want = {{0, 0}}, p;
		for (uint64_t n = froms[f]; n < froms[f] + 10; n++) {
			uint64_t s;
			cr_assert_eq(plain_steps(n, &s), 0);
			if (want.v[0] == 0 || s > want.v[1])
				want = (kern_partial){{n, s}};
		}
		kern_args args = cz_args(froms[f], froms[f] + 10);
		cr_assert_eq(kern_run(cz_kern(), &args, 0, args.space, 2, &p, NULL), TS_OK);
		cr_expect(p.v[0] == want.v[0] && p.v[1] == want.v[1], "from %llu: n %llu, %llu steps",
			  ULL(froms[f]), ULL(p.v[0]), ULL(p.v[1]));
	}
}

Test(kern_collatz, path_past_128_bits_is_an_error)
{
	const u128 third128 = ~(u128)0 / 3; /* odd, and 3n + 1 = 2^128 */
	uint64_t s = 7;
	cr_expect_eq(kern_collatz_steps_wide((uint64_t)(third128 >> 64), (uint64_t)third128, &s),
		     TS_ERR_BAD_REQUEST);
	cr_expect_eq(s, 7, "no count on error");
	cr_expect_eq(kern_collatz_steps_wide(1ULL << 63, 1, &s), TS_ERR_BAD_REQUEST);
	cr_expect_eq(kern_collatz_steps_wide(1ULL << 36, 0, &s), TS_OK);
	cr_expect_eq(s, 100, "2^100 halves 100 times");
	cr_expect_eq(kern_collatz_steps_wide(0, 0, &s), TS_ERR_BAD_REQUEST);
	/* Just below, some paths pass 2^128 later and some do not: the kernel agrees with the
	 * plain map on each. */
	int overflows = 0, fine = 0;
	for (u128 n = third128 - 3000; n < third128; n++) {
		uint64_t want = 0, got = 0;
		int overflow = plain_steps(n, &want);
		overflows += overflow;
		fine += !overflow;
		cr_assert_eq(kern_collatz_steps_wide((uint64_t)(n >> 64), (uint64_t)n, &got),
			     overflow ? TS_ERR_BAD_REQUEST : TS_OK);
		if (!overflow)
			cr_assert_eq(got, want);
	}
	cr_expect(overflows > 0 && fine > 0, "the window tests both cases (%d, %d)", overflows, fine);
}

Test(kern_collatz, bad_params_are_refused_with_a_reason)
{
	static const char *const bad[] = {
		"{}",
		"{\"from\": 1}",
		"{\"to\": 10}",
		"{\"from\": 0, \"to\": 10}",
		"{\"from\": -3, \"to\": 10}",
		"{\"from\": 10, \"to\": 10}",
		"{\"from\": 10, \"to\": 2}",
		"{\"from\": 1, \"to\": 10.5}",
		"{\"from\": \"1\", \"to\": 10}",
		"{\"from\": 1, \"to\": 10, \"max\": 3}",
		"[1, 10]",
		"\"collatz\"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		kern_args args;
		char why[200];
		cr_expect_eq(parse_text(bad[i], &args, why, sizeof(why)), TS_ERR_BAD_REQUEST,
			     "accepted %s", bad[i]);
		cr_expect_gt(strlen(why), 0, "no reason for %s", bad[i]);
	}
	kern_args args = cz_args(1, 9223372036854775807ULL);
	cr_expect_eq(args.from, 1);
	cr_expect_eq(args.space, 9223372036854775806ULL);
}

Test(kern_collatz, partial_json_and_result)
{
	const kern *k = cz_kern();
	kern_partial p = {{8400511, 685}}, back = {{0, 0}};
	json_t *j = k->partial_to_json(&p);
	cr_assert_not_null(j);
	cr_expect_eq(k->partial_from_json(j, &back), TS_OK);
	cr_expect(back.v[0] == 8400511 && back.v[1] == 685);
	json_decref(j);
	static const char *const bad[] = {"null",
					  "{}",
					  "{\"n\": 5}",
					  "{\"steps\": 5}",
					  "{\"n\": 0, \"steps\": 0}",
					  "{\"n\": -5, \"steps\": 3}",
					  "{\"n\": 5, \"steps\": -1}",
					  "{\"n\": 5, \"steps\": 100000000}",
					  "{\"n\": \"5\", \"steps\": 5}",
					  "{\"n\": 5, \"steps\": 5, \"x\": 0}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *b = json_loads(bad[i], JSON_DECODE_ANY, NULL);
		cr_assert_not_null(b);
		cr_expect_eq(k->partial_from_json(b, &back), TS_ERR_BAD_REQUEST, "accepted %s", bad[i]);
		json_decref(b);
	}

	kern_args args = cz_args(1, 1000000);
	kern_partial total = {{837799, 524}};
	json_t *r = k->finalize(&args, &total);
	cr_assert_not_null(r);
	cr_expect_eq(json_integer_value(json_object_get(r, "n")), 837799);
	cr_expect_eq(json_integer_value(json_object_get(r, "steps")), 524);
	cr_expect_eq(json_integer_value(json_object_get(r, "from")), 1);
	cr_expect_eq(json_integer_value(json_object_get(r, "to")), 1000000);
	json_decref(r);
}

/* The check of a reported record (n, steps) for the unit [start, start+count) of the job
 * [from, to). */
static int cz_plausible(uint64_t from, uint64_t to, uint64_t start, uint64_t count, uint64_t n,
			uint64_t steps)
{
	kern_args args = cz_args(from, to);
	kern_partial p = {{n, steps}};
	return cz_kern()->partial_plausible(&args, start, count, &p);
}

Test(kern_collatz, plausible_records_lie_in_the_unit)
{
	/* The unit [1, 1000) of the job [1, 10^6): its record is 871, 178 steps. */
	cr_expect(cz_plausible(1, 1000000, 0, 999, 871, 178));
	cr_expect_not(cz_plausible(1, 1000000, 0, 999, 9000000000000000000ULL, 178),
		      "n = 9*10^18 for a unit in [1, 1000)");
	cr_expect_not(cz_plausible(1, 1000000, 0, 999, 837799, 524), "the job's record, not the unit's");
	cr_expect_not(cz_plausible(1, 1000000, 0, 999, 1000, 111), "n = to of the unit");
	cr_expect_not(cz_plausible(1, 1000000, 1, 999, 1, 0), "n below the unit");
	cr_expect_not(cz_plausible(1, 1000000, 0, 999, 0, 0), "no record");
	cr_expect_not(cz_plausible(1, 1000000, 0, 0, 1, 0), "an empty unit has no record");
	/* n's steps are n's own. */
	cr_expect_not(cz_plausible(1, 1000000, 0, 999, 871, 179), "871 takes 178 steps");
	cr_expect_not(cz_plausible(1, 1000000, 0, 999, 871, 99999), "871 takes 178 steps");
	/* A record beats the unit's first and last numbers: 27 (111 steps) beats 32 (5). */
	cr_expect_not(cz_plausible(1, 1000000, 26, 6, 32, 5), "32 is no record in [27, 33)");
	cr_expect(cz_plausible(1, 1000000, 26, 6, 27, 111));
	/* Ties go to the smaller n: 12 and 13 both take 9 steps. */
	cr_expect(cz_plausible(1, 1000000, 11, 2, 12, 9));
	cr_expect_not(cz_plausible(1, 1000000, 11, 2, 13, 9), "13 ties with 12, which is smaller");
	/* The job's from shifts the unit: index 0 of [1000, ...) is 1000. */
	cr_expect_not(cz_plausible(1000, 2000, 0, 10, 5, 5), "5 is not in [1000, 1010)");
}

Test(kern_collatz, true_records_are_always_plausible)
{
	/* Units of several sizes and places, paths past 64 bits included. */
	static const uint64_t froms[] = {1, 2, 27, 837790, 12327829503ULL - 50, 1ULL << 40};
	srand(99);
	for (size_t f = 0; f < sizeof(froms) / sizeof(froms[0]); f++) {
		kern_args args = cz_args(froms[f], froms[f] + 100000);
		for (int t = 0; t < 20; t++) {
			uint64_t count = 1 + (uint64_t)rand() % (t < 10 ? 5 : 2000);
			uint64_t start = (uint64_t)rand() % (args.space - count);
			kern_partial p;
			cr_assert_eq(cz_kern()->compute(&args, start, count, &p, NULL), TS_OK);
			cr_expect(cz_plausible(froms[f], froms[f] + 100000, start, count, p.v[0], p.v[1]),
				  "from %llu [%llu, +%llu): n %llu, %llu steps", ULL(froms[f]), ULL(start),
				  ULL(count), ULL(p.v[0]), ULL(p.v[1]));
		}
	}
}

Test(kern_collatz, the_server_check_takes_the_job_params)
{
	const kern *k = cz_kern();
	json_t *params = json_pack("{s:I,s:I}", "from", (json_int_t)1, "to", (json_int_t)1000);
	kern_partial p = {{871, 178}};
	cr_expect(kern_partial_plausible(k, params, 0, 999, &p));
	cr_expect_not(kern_partial_plausible(k, params, 0, 1000, &p), "a unit past the job's end");
	cr_expect_not(kern_partial_plausible(k, params, UINT64_MAX, 2, &p), "start + count wraps");
	p.v[0] = 9000000000000000000ULL;
	cr_expect_not(kern_partial_plausible(k, params, 0, 999, &p), "the issue's n = 9*10^18");
	json_decref(params);
	cr_expect_not(kern_partial_plausible(k, NULL, 0, 999, &p), "no params");
}

Test(kern_collatz, cancel_stops_compute)
{
	kern_args args = cz_args(1, 1000000000);
	volatile int cancel = 1;
	kern_partial p;
	cr_expect_eq(cz_kern()->compute(&args, 0, args.space, &p, &cancel), TS_ERR_UNAVAILABLE);
	cr_expect_eq(kern_run(cz_kern(), &args, 0, args.space, 2, &p, &cancel), TS_ERR_UNAVAILABLE);
}
