/* Kernels: the table, the threaded runner, and montecarlo_pi on every CPU path (DESIGN.md). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "kern.h"
#include "th_kern.h"

#define ULL(x) ((unsigned long long)(x))

static const kern *pi_kern(void)
{
	return th_kern("montecarlo_pi");
}

static kern_args pi_args(uint64_t seed, uint64_t samples)
{
	char text[128], why[200];
	kern_args args;
	snprintf(text, sizeof(text), "{\"samples\": %llu, \"seed\": %llu}", ULL(samples), ULL(seed));
	cr_assert_eq(th_kern_parse(pi_kern(), text, &args, why, sizeof(why)), TS_OK, "%s", why);
	return args;
}

/* Hits of [start, start+count) through kern_run. */
static uint64_t pi_run(const kern_args *args, uint64_t start, uint64_t count, int threads)
{
	kern_partial p;
	cr_assert_eq(kern_run(pi_kern(), args, start, count, threads, &p, NULL), TS_OK);
	return p.v[0];
}

static const uint64_t pi_vectors[][3] = {
	{0, 10, 9},
	{1, 1000, 795},
	{42, 1000000, 785192},
	{7, 1000000000, 785390488},
};

Test(kern_table, rows_are_complete_and_unique)
{
	static const char *const expected[] = {"montecarlo_pi", "prime_count", "collatz"};
	size_t rows = 0;
	for (const kern *const *row = kern_table(); *row; row++, rows++) {
		const kern *k = *row;
		cr_assert_not_null(k->name);
		cr_expect(k->parse && k->zero && (k->compute || !strcmp(k->name, "program")) && k->combine &&
				  k->partial_to_json && k->params && k->alias && k->title &&
				  k->partial_from_json && k->partial_plausible && k->finalize,
			  "%s lacks a function", k->name);
		cr_expect_gt(k->default_unit, 0, "%s", k->name);
		cr_expect_gt(k->ns_per_index, 0.0, "%s", k->name);
		cr_expect_eq(kern_find(k->name), k, "%s is shadowed by an earlier row", k->name);
	}
	cr_expect_geq(rows, 3);
	for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++)
		cr_expect_not_null(kern_find(expected[i]), "no kernel %s", expected[i]);
	cr_expect_null(kern_find("nope"));
	cr_expect_null(kern_find(NULL));
}

Test(kern_pi, design_vectors)
{
	for (size_t i = 0; i < sizeof(pi_vectors) / sizeof(pi_vectors[0]); i++) {
		const uint64_t seed = pi_vectors[i][0], samples = pi_vectors[i][1];
		kern_args args = pi_args(seed, samples);
		cr_expect_eq(pi_run(&args, 0, args.space, 0), pi_vectors[i][2],
			     "seed %llu, %llu samples", ULL(seed), ULL(samples));
		/* The scalar reference on its own: whole where that is quick; of the 10^9 vector the
		 * last 10^6 samples against the current path (every_path_gives_the_design_vectors
		 * runs the whole of it on the scalar path, threaded). */
		if (samples <= 1000000) {
			cr_expect_eq(kern_pi_hits_scalar(seed, 0, samples), pi_vectors[i][2],
				     "scalar: seed %llu, %llu samples", ULL(seed), ULL(samples));
		} else {
			const uint64_t tail = samples - 1000000;
			uint64_t scalar = kern_pi_hits_scalar(seed, tail, 1000000);
			cr_expect_eq(scalar, pi_run(&args, tail, 1000000, 1), "seed %llu, samples from %llu",
				     ULL(seed), ULL(tail));
			cr_expect(scalar > 780000 && scalar < 791000, "%llu hits in 10^6 samples",
				  ULL(scalar));
		}
	}
}

Test(kern_pi, machine_paths_are_offered)
{
	const char *names[16];
	int n = kern_pi_paths(names, 16);
	int seen_scalar = 0, seen_generic8 = 0, seen_current = 0;
	cr_assert_gt(n, 0);
	cr_assert_leq(n, 16);
	for (int i = 0; i < n; i++) {
		seen_scalar |= strcmp(names[i], "scalar") == 0;
		seen_generic8 |= strcmp(names[i], "generic8") == 0;
		seen_current |= strcmp(names[i], kern_pi_path()) == 0;
	}
	cr_expect(seen_scalar && seen_generic8 && seen_current);
	/* A test that silently skipped the vector paths would prove nothing: demand what the CPU has. */
#if defined(__x86_64__)
	__builtin_cpu_init();
	const char *best = "scalar";
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq"))
		best = "avx512";
	else if (__builtin_cpu_supports("avx2"))
		best = "avx2";
	cr_expect_str_eq(names[0], best);
	cr_expect_str_eq(kern_pi_path(), best);
#elif defined(__aarch64__)
	cr_expect_str_eq(names[0], "neon");
#endif
	cr_expect_eq(kern_pi_paths(names, 1), n, "the count does not depend on max");
}

Test(kern_pi, every_path_gives_the_design_vectors)
{
	const char *names[16];
	int n = kern_pi_paths(names, 16);
	for (int p = 0; p < n; p++) {
		cr_assert_eq(kern_pi_set_path(names[p]), TS_OK);
		cr_assert_str_eq(kern_pi_path(), names[p]);
		for (size_t i = 0; i < sizeof(pi_vectors) / sizeof(pi_vectors[0]); i++) {
			uint64_t hits = 0;
			if (i < 3) {
				cr_assert_eq(kern_pi_hits_path(names[p], pi_vectors[i][0], 0,
							       pi_vectors[i][1], &hits),
					     TS_OK);
			} else {
				kern_args args = pi_args(pi_vectors[i][0], pi_vectors[i][1]);
				hits = pi_run(&args, 0, args.space, 0);
			}
			cr_expect_eq(hits, pi_vectors[i][2], "path %s, vector %zu: %llu", names[p], i,
				     ULL(hits));
		}
	}
}

Test(kern_pi, every_path_matches_scalar_on_odd_ranges)
{
	const char *names[16];
	int n = kern_pi_paths(names, 16);
	static const uint64_t starts[] = {0, 1, 2, 3, 5, 7, 13, 1000003, 4294967295ULL,
					  4294967297ULL, 999999999999999000ULL};
	srand(20240611);
	for (int p = 0; p < n; p++) {
		for (size_t s = 0; s < sizeof(starts) / sizeof(starts[0]); s++) {
			/* Every count up to a few vector blocks, so every tail length shows up. */
			for (uint64_t count = 0; count < 70; count++) {
				uint64_t seed = (uint64_t)rand() * 2654435761u + count, hits;
				cr_assert_eq(kern_pi_hits_path(names[p], seed, starts[s], count, &hits),
					     TS_OK);
				cr_assert_eq(hits, kern_pi_hits_scalar(seed, starts[s], count),
					     "path %s seed %llu start %llu count %llu", names[p],
					     ULL(seed), ULL(starts[s]), ULL(count));
			}
		}
		for (int t = 0; t < 20; t++) {
			uint64_t seed = (uint64_t)rand() << 31 ^ (uint64_t)rand();
			uint64_t start = ((uint64_t)rand() << 31 ^ (uint64_t)rand()) % 1000000000000000ULL;
			uint64_t count = 100000 + (uint64_t)(rand() % 1000), hits;
			cr_assert_eq(kern_pi_hits_path(names[p], seed, start, count, &hits), TS_OK);
			cr_assert_eq(hits, kern_pi_hits_scalar(seed, start, count),
				     "path %s seed %llu start %llu count %llu", names[p], ULL(seed),
				     ULL(start), ULL(count));
		}
	}
}

Test(kern_pi, forcing_a_path)
{
	const char *before = kern_pi_path();
	uint64_t hits = 1;
	cr_expect_eq(kern_pi_set_path("scalar"), TS_OK);
	cr_expect_str_eq(kern_pi_path(), "scalar");
	cr_expect_eq(kern_pi_set_path("no-such-path"), TS_ERR_NOT_FOUND);
	cr_expect_str_eq(kern_pi_path(), "scalar", "a refused path changes nothing");
	cr_expect_eq(kern_pi_hits_path("no-such-path", 0, 0, 10, &hits), TS_ERR_NOT_FOUND);
	cr_expect_eq(hits, 1);
	cr_expect_eq(kern_pi_set_path("auto"), TS_OK);
	cr_expect_str_eq(kern_pi_path(), before);
	cr_expect_eq(kern_pi_set_path("scalar"), TS_OK);
	cr_expect_eq(kern_pi_set_path(NULL), TS_OK);
	cr_expect_str_eq(kern_pi_path(), before);
#if defined(__x86_64__)
	__builtin_cpu_init();
	if (!__builtin_cpu_supports("avx512f"))
		cr_expect_eq(kern_pi_set_path("avx512"), TS_ERR_NOT_FOUND, "this CPU has no AVX-512");
#else
	cr_expect_eq(kern_pi_set_path("avx2"), TS_ERR_NOT_FOUND, "not an x86 build");
#endif
}

/* Criterion runs each test in its own process, so the path is chosen after .init ran. */
static void env_scalar(void)
{
	setenv("TESSERA_KERNEL_PATH", "scalar", 1);
}

static void env_bogus(void)
{
	setenv("TESSERA_KERNEL_PATH", "avx1024", 1);
}

Test(kern_pi, env_forces_a_path, .init = env_scalar)
{
	cr_expect_str_eq(kern_pi_path(), "scalar");
	kern_args args = pi_args(42, 1000000);
	cr_expect_eq(pi_run(&args, 0, args.space, 2), 785192);
}

Test(kern_pi, env_naming_no_path_falls_back_to_the_best, .init = env_bogus)
{
	const char *names[16];
	kern_pi_paths(names, 16);
	cr_expect_str_eq(kern_pi_path(), names[0]);
}

Test(kern_pi, any_split_gives_the_same_hits)
{
	const uint64_t start = 12345, count = 10000019;
	kern_args args = pi_args(99, start + count);
	const uint64_t want = kern_pi_hits_scalar(99, start, count);
	static const int threads[] = {1, 2, 3, 7, 0};
	for (size_t t = 0; t < sizeof(threads) / sizeof(threads[0]); t++)
		cr_expect_eq(pi_run(&args, start, count, threads[t]), want, "%d threads", threads[t]);

	const kern *k = pi_kern();
	srand(7);
	for (int trial = 0; trial < 5; trial++) {
		kern_partial acc = k->zero();
		uint64_t at = start, end = start + count;
		while (at < end) {
			uint64_t n = 1 + (uint64_t)rand() % (trial < 2 ? 97 : 3000001);
			if (n > end - at)
				n = end - at;
			kern_partial part;
			cr_assert_eq(k->compute(&args, at, n, &part, NULL), TS_OK);
			k->combine(&acc, &part);
			at += n;
		}
		cr_expect_eq(acc.v[0], want, "random split %d", trial);
	}
}

Test(kern_run, empty_range_is_the_identity)
{
	kern_args args = pi_args(1, 100);
	kern_partial p = {{77, 77}};
	cr_expect_eq(kern_run(pi_kern(), &args, 0, 0, 4, &p, NULL), TS_OK);
	cr_expect_eq(p.v[0], 0);
}

Test(kern_pi, bad_params_are_refused_with_a_reason)
{
	static const char *const bad[] = {
		"{}",
		"{\"samples\": 0}",
		"{\"samples\": -5}",
		"{\"samples\": 1000000000000000001}",
		"{\"samples\": 9223372036854775807}",
		"{\"samples\": \"1000\"}",
		"{\"samples\": 1.5}",
		"{\"samples\": null}",
		"{\"samples\": 10, \"bogus\": 1}",
		"{\"samples\": 10, \"seed\": -1}",
		"{\"samples\": 10, \"seed\": \"7\"}",
		"{\"samples\": 10, \"seed\": 2.0}",
		"[10]",
		"10",
		"null",
		"\"samples\"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		kern_args args;
		char why[200];
		cr_expect_eq(th_kern_parse(pi_kern(), bad[i], &args, why, sizeof(why)),
			     TS_ERR_BAD_REQUEST, "accepted %s", bad[i]);
		cr_expect_gt(strlen(why), 0, "no reason for %s", bad[i]);
	}
}

Test(kern_pi, good_params)
{
	kern_args args;
	char why[200];
	cr_assert_eq(th_kern_parse(pi_kern(), "{\"samples\": 10}", &args, why, sizeof(why)), TS_OK);
	cr_expect_eq(args.space, 10);
	cr_expect_eq(args.seed, 0, "seed defaults to 0");
	cr_assert_eq(th_kern_parse(pi_kern(),
				"{\"samples\": 1000000000000000000, \"seed\": 9223372036854775807}",
				&args, why, sizeof(why)),
		     TS_OK, "%s", why);
	cr_expect_eq(args.space, 1000000000000000000ULL);
	cr_expect_eq(args.seed, 9223372036854775807ULL);
}

Test(kern_pi, partial_json_round_trip_and_malformed)
{
	const kern *k = pi_kern();
	static const uint64_t values[] = {0, 1, 785390488, 1ULL << 62};
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		kern_partial p = {{values[i], 0}}, back = {{1, 1}};
		json_t *j = k->partial_to_json(&p);
		cr_assert_not_null(j);
		cr_expect_eq(k->partial_from_json(j, &back), TS_OK);
		cr_expect_eq(back.v[0], values[i]);
		json_decref(j);
	}
	static const char *const bad[] = {"null", "[]", "{}", "{\"hits\": -1}", "{\"hits\": \"5\"}",
					  "{\"hits\": 5.0}", "{\"hits\": 5, \"extra\": 1}",
					  "{\"count\": 5}", "5"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *j = json_loads(bad[i], JSON_DECODE_ANY, NULL);
		kern_partial p = {{42, 42}};
		cr_assert_not_null(j);
		cr_expect_eq(k->partial_from_json(j, &p), TS_ERR_BAD_REQUEST, "accepted %s", bad[i]);
		json_decref(j);
	}
}

Test(kern_pi, plausible_hits_are_at_most_the_unit_count)
{
	const kern *k = pi_kern();
	kern_args args = pi_args(1, 100);
	kern_partial p = {{10, 0}};
	cr_expect(k->partial_plausible(&args, 90, 10, &p));
	cr_expect_not(k->partial_plausible(&args, 90, 9, &p), "more hits than samples");
	p.v[0] = 0;
	cr_expect(k->partial_plausible(&args, 0, 10, &p), "no hits can happen");
	/* The server's check also needs the unit inside the job. */
	json_t *params = json_pack("{s:I,s:I}", "samples", (json_int_t)100, "seed", (json_int_t)1);
	p.v[0] = 5;
	cr_expect(kern_partial_plausible(k, params, 90, 10, &p));
	cr_expect_not(kern_partial_plausible(k, params, 95, 10, &p), "a unit past the job's end");
	cr_expect_not(kern_partial_plausible(k, params, UINT64_MAX - 1, 3, &p), "start + count wraps");
	cr_expect_not(kern_partial_plausible(k, params, 0, 101, &p), "more than the job's samples");
	json_decref(params);
	params = json_pack("{s:I,s:I}", "from", (json_int_t)1, "to", (json_int_t)100);
	cr_expect_not(kern_partial_plausible(k, params, 0, 10, &p), "another kernel's params");
	json_decref(params);
}

Test(kern_pi, finalize_gives_the_estimate)
{
	const kern *k = pi_kern();
	kern_args args = pi_args(42, 1000000);
	kern_partial total = {{785192, 0}};
	json_t *r = k->finalize(&args, &total);
	cr_assert_not_null(r);
	cr_expect_eq(json_integer_value(json_object_get(r, "samples")), 1000000);
	cr_expect_eq(json_integer_value(json_object_get(r, "hits")), 785192);
	cr_expect_float_eq(json_real_value(json_object_get(r, "pi")), 3.140768, 1e-9);
	double se = json_real_value(json_object_get(r, "stderr"));
	cr_expect(se > 0.001 && se < 0.002, "stderr %g", se);
	json_decref(r);
}

Test(kern_pi, cancel_stops_compute)
{
	const kern *k = pi_kern();
	kern_args args = pi_args(1, 1000000000);
	volatile int cancel = 1;
	kern_partial p;
	cr_expect_eq(k->compute(&args, 0, args.space, &p, &cancel), TS_ERR_UNAVAILABLE);
	cr_expect_eq(kern_run(k, &args, 0, args.space, 2, &p, &cancel), TS_ERR_UNAVAILABLE);
}
