/* prime_count: exact counts (DESIGN.md values, trial division, primesieve's counts near the cap)
 * for any split of the range, and what the kernel refuses. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kern.h"
#include "th_kern.h"

#define ULL(x) ((unsigned long long)(x))

static const kern *pc_kern(void)
{
	return th_kern("prime_count");
}

static ts_err parse_text(const char *text, kern_args *args, char *why, size_t len)
{
	return th_kern_parse(pc_kern(), text, args, why, len);
}

static kern_args pc_args(uint64_t from, uint64_t to)
{
	return th_kern_range(pc_kern(), from, to);
}

/* Primes in [from, to) through kern_run. */
static uint64_t pc_run(uint64_t from, uint64_t to, int threads)
{
	kern_args args = pc_args(from, to);
	kern_partial p;
	cr_assert_eq(kern_run(pc_kern(), &args, 0, args.space, threads, &p, NULL), TS_OK);
	return p.v[0];
}

static int is_prime(uint64_t n)
{
	if (n < 2)
		return 0;
	if (n % 2 == 0)
		return n == 2;
	for (uint64_t d = 3; d * d <= n; d += 2)
		if (n % d == 0)
			return 0;
	return 1;
}

static uint64_t trial_count(uint64_t from, uint64_t to)
{
	uint64_t c = 0;
	for (uint64_t n = from; n < to; n++)
		c += (uint64_t)is_prime(n);
	return c;
}

Test(kern_prime, pi_of_1e9)
{
	cr_expect_eq(pc_run(0, 1000000000, 0), 50847534);
}

Test(kern_prime, pi_of_1e10_on_two_threads)
{
	cr_expect_eq(pc_run(0, 10000000000ULL, 2), 455052511);
}

Test(kern_prime, every_small_range_matches_trial_division)
{
	/* All ranges in [0, 160): every edge byte and small-prime case of the wheel. */
	for (uint64_t a = 0; a < 160; a++)
		for (uint64_t b = a + 1; b <= 160; b++) {
			uint64_t c;
			cr_assert_eq(kern_prime_count_range(a, b, &c), TS_OK);
			cr_assert_eq(c, trial_count(a, b), "[%llu, %llu): %llu", ULL(a), ULL(b), ULL(c));
		}
}

Test(kern_prime, random_ranges_match_trial_division)
{
	static const uint64_t bases[] = {0, 1000000, 1000000000, 4294967296ULL, 1000000000000ULL,
					 99999999000000ULL};
	srand(1234);
	for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		for (int t = 0; t < (bases[i] > 1000000000000ULL ? 2 : 12); t++) {
			uint64_t a = bases[i] + (uint64_t)(rand() % 1000000);
			uint64_t b = a + 1 + (uint64_t)(rand() % (bases[i] > 1000000000ULL ? 400 : 5000));
			uint64_t c;
			cr_assert_eq(kern_prime_count_range(a, b, &c), TS_OK);
			cr_assert_eq(c, trial_count(a, b), "[%llu, %llu): %llu", ULL(a), ULL(b), ULL(c));
		}
	}
}

/* Independent counts from primesieve 11.0, over several segments and the large primes' buckets. */
Test(kern_prime, ranges_near_the_cap_match_primesieve)
{
	cr_expect_eq(pc_run(1000000000000ULL, 1000030000000ULL, 0), 1085227);
	cr_expect_eq(pc_run(9999000000000ULL, 9999100000000ULL, 0), 3340362);
	cr_expect_eq(pc_run(99999900000000ULL, 100000000000000ULL, 0), 3100778);
}

Test(kern_prime, any_split_gives_the_same_count)
{
	static const uint64_t froms[] = {0, 999999937, 1000000000000ULL};
	const uint64_t span = 40000007;
	const kern *k = pc_kern();
	srand(99);
	for (size_t f = 0; f < sizeof(froms) / sizeof(froms[0]); f++) {
		kern_args args = pc_args(froms[f], froms[f] + span);
		kern_partial whole;
		cr_assert_eq(k->compute(&args, 0, span, &whole, NULL), TS_OK);
		static const int threads[] = {2, 3, 7};
		for (size_t t = 0; t < sizeof(threads) / sizeof(threads[0]); t++) {
			kern_partial p;
			cr_assert_eq(kern_run(k, &args, 0, span, threads[t], &p, NULL), TS_OK);
			cr_expect_eq(p.v[0], whole.v[0], "from %llu, %d threads", ULL(froms[f]),
				     threads[t]);
		}
		kern_partial acc = k->zero();
		for (uint64_t at = 0; at < span;) {
			uint64_t n = 1 + (uint64_t)rand() % 9000000;
			if (n > span - at)
				n = span - at;
			kern_partial part;
			cr_assert_eq(k->compute(&args, at, n, &part, NULL), TS_OK);
			k->combine(&acc, &part);
			at += n;
		}
		cr_expect_eq(acc.v[0], whole.v[0], "random split from %llu", ULL(froms[f]));
	}
}

Test(kern_prime, bad_params_are_refused_with_a_reason)
{
	static const char *const bad[] = {
		"{}",
		"{\"from\": 0}",
		"{\"to\": 10}",
		"{\"from\": -1, \"to\": 10}",
		"{\"from\": 10, \"to\": 10}",
		"{\"from\": 10, \"to\": 9}",
		"{\"from\": 0, \"to\": 100000000000001}",
		"{\"from\": 0, \"to\": 9223372036854775807}",
		"{\"from\": 0, \"to\": 1e9}",
		"{\"from\": \"0\", \"to\": 10}",
		"{\"from\": 0, \"to\": 10, \"step\": 1}",
		"[0, 10]",
		"null",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		kern_args args;
		char why[200];
		cr_expect_eq(parse_text(bad[i], &args, why, sizeof(why)), TS_ERR_BAD_REQUEST,
			     "accepted %s", bad[i]);
		cr_expect_gt(strlen(why), 0, "no reason for %s", bad[i]);
	}
	kern_args args = pc_args(0, 100000000000000ULL);
	cr_expect_eq(args.space, 100000000000000ULL, "the cap itself is allowed");
	args = pc_args(5, 6);
	cr_expect_eq(args.from, 5);
	cr_expect_eq(args.space, 1);
	uint64_t c;
	cr_expect_eq(kern_prime_count_range(0, 100000000000001ULL, &c), TS_ERR_BAD_REQUEST);
}

Test(kern_prime, partial_json_and_result)
{
	const kern *k = pc_kern();
	kern_partial p = {{455052511, 0}}, back = {{0, 0}};
	json_t *j = k->partial_to_json(&p);
	cr_assert_not_null(j);
	cr_expect_eq(k->partial_from_json(j, &back), TS_OK);
	cr_expect_eq(back.v[0], 455052511);
	json_decref(j);
	static const char *const bad[] = {"null", "{}", "{\"count\": -1}", "{\"count\": \"3\"}",
					  "{\"count\": 3, \"x\": 1}", "{\"hits\": 3}", "[3]"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *b = json_loads(bad[i], JSON_DECODE_ANY, NULL);
		cr_assert_not_null(b);
		cr_expect_eq(k->partial_from_json(b, &back), TS_ERR_BAD_REQUEST, "accepted %s", bad[i]);
		json_decref(b);
	}

	kern_args args = pc_args(100, 200);
	kern_partial total = {{21, 0}};
	json_t *r = k->finalize(&args, &total);
	cr_assert_not_null(r);
	cr_expect_eq(json_integer_value(json_object_get(r, "from")), 100);
	cr_expect_eq(json_integer_value(json_object_get(r, "to")), 200);
	cr_expect_eq(json_integer_value(json_object_get(r, "count")), 21);
	json_decref(r);
	cr_expect_eq(pc_run(100, 200, 1), 21);
}

/* The check of a reported count for the unit [start, start+count) of a job from `from`. */
static int pc_plausible(uint64_t from, uint64_t to, uint64_t start, uint64_t count, uint64_t primes)
{
	kern_args args = pc_args(from, to);
	kern_partial p = {{primes, 0}};
	return pc_kern()->partial_plausible(&args, start, count, &p);
}

Test(kern_prime, plausible_counts_depend_on_the_unit_range)
{
	cr_expect(pc_plausible(0, 100, 2, 6, 4), "2, 3, 5, 7 in [2, 8)");
	cr_expect_not(pc_plausible(0, 100, 2, 6, 5), "5 primes in [2, 8)");
	/* Ranges with no room for a prime: nothing coprime to 6, or only 1. */
	cr_expect_not(pc_plausible(0, 100, 24, 1, 1), "a prime in [24, 25)");
	cr_expect_not(pc_plausible(0, 100, 8, 3, 1), "a prime in [8, 11)");
	cr_expect_not(pc_plausible(0, 100, 0, 2, 1), "a prime in [0, 2)");
	cr_expect(pc_plausible(0, 100, 24, 1, 0));
	/* The unit's numbers count, not only its size: 2 primes in 3 numbers fit [1, 4), but of
	 * [10^12, 10^12 + 3) (10^12 = 6k + 4) only 10^12 + 1 can be prime. */
	cr_expect(pc_plausible(1, 100, 0, 3, 2), "2 and 3 in [1, 4)");
	cr_expect_not(pc_plausible(1000000000000ULL, 1000000001000ULL, 0, 3, 2),
		      "2 primes in [10^12, 10^12 + 3)");
	/* Bertrand: (n, 2n) holds a prime for n >= 2, so [n, 2n) has one. */
	cr_expect_not(pc_plausible(0, 1000, 0, 3, 0), "no prime in [0, 3)");
	cr_expect_not(pc_plausible(0, 1000, 0, 100, 0), "no prime below 100");
	cr_expect_not(pc_plausible(0, 1000, 100, 100, 0), "no prime in [100, 200)");
	cr_expect_not(pc_plausible(1000, 2000, 0, 1000, 0), "no prime in [1000, 2000)");
	cr_expect(pc_plausible(0, 1000, 100, 100, 21));
}

Test(kern_prime, true_counts_are_always_plausible)
{
	/* Every range in [0, 200), and random ones up to the cap: the bounds never refuse an honest
	 * node; one more than the truth is refused where the truth is the bound. */
	int tight = 0;
	for (uint64_t lo = 0; lo < 200; lo++)
		for (uint64_t hi = lo + 1; hi <= 200; hi++) {
			uint64_t truth = trial_count(lo, hi);
			cr_assert(pc_plausible(0, 200, lo, hi - lo, truth), "[%llu, %llu): %llu", ULL(lo),
				  ULL(hi), ULL(truth));
			tight += !pc_plausible(0, 200, lo, hi - lo, truth + 1);
		}
	cr_expect_gt(tight, 1000, "the upper bound is rarely tight (%d of 20100 ranges)", tight);
	fprintf(stderr, "prime_count: the upper bound is exact for %d of 20100 ranges\n", tight);
	srand(1234);
	for (int t = 0; t < 20; t++) {
		uint64_t from = ((uint64_t)rand() << 31 ^ (uint64_t)rand()) % 99999999000000ULL;
		uint64_t start = (uint64_t)rand() % 1000000, count = 1 + (uint64_t)rand() % 100000;
		kern_args args = pc_args(from, from + 2000000);
		kern_partial p;
		cr_assert_eq(pc_kern()->compute(&args, start, count, &p, NULL), TS_OK);
		cr_expect(pc_plausible(from, from + 2000000, start, count, p.v[0]), "from %llu [%llu, +%llu)",
			  ULL(from), ULL(start), ULL(count));
	}
}

Test(kern_prime, the_server_check_takes_the_job_params)
{
	const kern *k = pc_kern();
	json_t *params = json_pack("{s:I,s:I}", "from", (json_int_t)100, "to", (json_int_t)200);
	kern_partial p = {{21, 0}};
	cr_expect(kern_partial_plausible(k, params, 0, 100, &p), "21 primes in [100, 200)");
	cr_expect_not(kern_partial_plausible(k, params, 50, 100, &p), "a unit past the job's end");
	cr_expect_not(kern_partial_plausible(k, params, UINT64_MAX, 2, &p), "start + count wraps");
	p.v[0] = 0;
	cr_expect_not(kern_partial_plausible(k, params, 0, 100, &p), "[100, 200) has primes");
	json_object_set_new(params, "to", json_integer(50));
	cr_expect_not(kern_partial_plausible(k, params, 0, 10, &p), "params that do not parse");
	json_decref(params);
}

Test(kern_prime, cancel_stops_compute)
{
	kern_args args = pc_args(0, 10000000000ULL);
	volatile int cancel = 1;
	kern_partial p;
	cr_expect_eq(pc_kern()->compute(&args, 0, args.space, &p, &cancel), TS_ERR_UNAVAILABLE);
	cr_expect_eq(kern_run(pc_kern(), &args, 0, args.space, 2, &p, &cancel), TS_ERR_UNAVAILABLE);
}
