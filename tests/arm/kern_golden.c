/* kern_golden: the kernels' golden values, checked on the machine this is built for.
 *
 * scripts/cross-arm.sh cross-builds this with the kernels for aarch64 (and armhf) and runs it
 * under qemu-user; ctest runs that as test_kern_aarch64. Plain C, no Criterion (there is none for
 * arm64): it prints one line per check and ends with "N passed, M failed", exiting 1 on any
 * failure. The values are those of tests/test_kern*.c (DESIGN.md's vectors, trial division,
 * primesieve's counts, the collatz records); every montecarlo_pi path this CPU runs is checked,
 * and on ARM the NEON path must be one of them and the one chosen automatically.
 *
 * Usage: kern_golden [--small] [--no-neon]
 *   --small    leave out the long checks (10^9 samples per path, pi(10^8), the primesieve
 *              range, the collatz record below 10^7): for slow emulated targets
 *   --no-neon  the CPU is known to lack NEON (an armhf CPU without it): demand that NEON is
 *              not offered instead of demanding that it is. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__arm__) || defined(__aarch64__)
#include <sys/auxv.h>
#endif

#include "kern.h"

#define ULL(x) ((unsigned long long)(x))
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define THIRD 0x5555555555555555ULL /* (2^64 - 1) / 3: odd, and 3n + 1 = 2^64 */

static int passed, failed;
static double t_check; /* when the current check started */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void begin(void)
{
	t_check = now();
}

/* Records one check: "ok   what [time]" or "FAIL what [time]". */
__attribute__((format(printf, 2, 3))) static int check(int ok, const char *fmt, ...)
{
	va_list ap;
	printf("%s ", ok ? "ok  " : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" [%.2f s]\n", now() - t_check);
	fflush(stdout);
	if (ok)
		passed++;
	else
		failed++;
	begin();
	return ok;
}

/* A small deterministic generator (splitmix64), so every target draws the same cases. */
static uint64_t rng_state;

static uint64_t rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* The kernel's args from params given as JSON text, through its own parser (jansson). */
static int parse_args(const char *name, const char *text, kern_args *args)
{
	const kern *k = kern_find(name);
	char why[200] = "";
	json_error_t jerr;
	json_t *params = json_loads(text, JSON_DECODE_ANY, &jerr);
	if (!k || !params) {
		json_decref(params);
		return -1;
	}
	ts_err e = k->parse(params, args, why, sizeof(why));
	json_decref(params);
	return e == TS_OK ? 0 : -1;
}

/* kern_run of [start, start+count) of a kernel: its partial, all ones if it did not set it. */
static kern_partial run(const char *name, const kern_args *args, uint64_t start, uint64_t count,
			int threads, ts_err *err)
{
	kern_partial p = {{~0ULL, ~0ULL}};
	*err = kern_run(kern_find(name), args, start, count, threads, &p, NULL);
	return p;
}

/* ---- montecarlo_pi ---------------------------------------------------------------------- */

static const uint64_t pi_vectors[][3] = {
	{0, 10, 9},
	{1, 1000, 795},
	{42, 1000000, 785192},
	{7, 1000000000, 785390488},
};

/* Whether this CPU has NEON by the OS's own word (AT_HWCAP), independently of kern_pi_simd.c;
 * -1 where NEON is not a question (x86). */
static int cpu_has_neon(void)
{
#if defined(__aarch64__)
	return 1; /* AArch64 has Advanced SIMD by definition (HWCAP_ASIMD says so too) */
#elif defined(__arm__)
	return (getauxval(AT_HWCAP) & (1UL << 12)) != 0; /* HWCAP_NEON */
#else
	return -1;
#endif
}

static int has_path(const char *const *names, int n, const char *want)
{
	for (int i = 0; i < n; i++)
		if (strcmp(names[i], want) == 0)
			return 1;
	return 0;
}

static void pi_paths_offered(const char *const *names, int n, int no_neon)
{
	char list[256] = "";
	for (int i = 0; i < n; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? " " : "",
			 names[i]);
	printf("# montecarlo_pi paths this CPU runs: %s; automatic choice: %s\n", list,
	       kern_pi_path());
	check(has_path(names, n, "scalar") && has_path(names, n, "generic8"),
	      "montecarlo_pi: scalar and generic8 are offered (%s)", list);
	int neon = cpu_has_neon();
	if (neon < 0) {
		check(1, "montecarlo_pi: not an ARM build, NEON is not a question here");
	} else if (no_neon) {
		check(neon == 0,
		      "montecarlo_pi: the CPU reports no NEON (AT_HWCAP), as --no-neon says");
		check(!has_path(names, n, "neon") && strcmp(kern_pi_path(), "scalar") == 0,
		      "montecarlo_pi: a CPU without NEON is not offered neon, and scalar is chosen "
		      "(chosen: %s)",
		      kern_pi_path());
	} else {
		/* A test that quietly fell back to scalar would prove nothing about NEON. */
		check(neon == 1, "montecarlo_pi: the CPU reports NEON (AT_HWCAP)");
		check(n > 0 && strcmp(names[0], "neon") == 0 && strcmp(kern_pi_path(), "neon") == 0,
		      "montecarlo_pi: neon is offered first and chosen automatically (chosen: %s)",
		      kern_pi_path());
	}
#if defined(__x86_64__)
	check(kern_pi_set_path("neon") == TS_ERR_NOT_FOUND,
	      "montecarlo_pi: neon, a path of another architecture, is refused");
#else
	check(kern_pi_set_path("avx2") == TS_ERR_NOT_FOUND &&
		      kern_pi_set_path("avx512") == TS_ERR_NOT_FOUND,
	      "montecarlo_pi: avx2 and avx512, paths of another architecture, are refused");
#endif
	check(strcmp(kern_pi_path(), n > 0 ? names[0] : "") == 0,
	      "montecarlo_pi: a refused path changes nothing (still %s)", kern_pi_path());
}

/* DESIGN.md's vectors on one path. The 10^9 one goes through kern_run on `threads` threads
 * with the path forced, so the threaded runner is on the path too. */
static void pi_design_vectors(const char *path, int threads, int big)
{
	for (size_t i = 0; i < NELEM(pi_vectors); i++) {
		const uint64_t seed = pi_vectors[i][0], samples = pi_vectors[i][1];
		uint64_t hits = ~0ULL;
		if (i < 3) {
			ts_err e = kern_pi_hits_path(path, seed, 0, samples, &hits);
			check(e == TS_OK && hits == pi_vectors[i][2],
			      "montecarlo_pi %s: seed %llu, %llu samples -> %llu hits (want %llu)",
			      path, ULL(seed), ULL(samples), ULL(hits), ULL(pi_vectors[i][2]));
		} else if (big) {
			char text[128];
			kern_args args;
			ts_err e = TS_ERR_INTERNAL;
			snprintf(text, sizeof(text), "{\"samples\": %llu, \"seed\": %llu}",
				 ULL(samples), ULL(seed));
			int forced = kern_pi_set_path(path) == TS_OK &&
				     strcmp(kern_pi_path(), path) == 0;
			if (forced && parse_args("montecarlo_pi", text, &args) == 0)
				hits = run("montecarlo_pi", &args, 0, args.space, threads, &e).v[0];
			check(forced && e == TS_OK && hits == pi_vectors[i][2],
			      "montecarlo_pi %s: seed %llu, %llu samples on %d threads -> %llu "
			      "hits "
			      "(want %llu)",
			      path, ULL(seed), ULL(samples), threads, ULL(hits),
			      ULL(pi_vectors[i][2]));
			kern_pi_set_path("auto");
		}
	}
}

/* One range on a path against the scalar reference; the first mismatch goes into bad. */
static void pi_compare(const char *path, uint64_t seed, uint64_t start, uint64_t count, char *bad,
		       size_t badlen)
{
	uint64_t hits = ~0ULL, want = kern_pi_hits_scalar(seed, start, count);
	if ((kern_pi_hits_path(path, seed, start, count, &hits) != TS_OK || hits != want) &&
	    !bad[0])
		snprintf(bad, badlen,
			 "; first mismatch: seed %llu start %llu count %llu: %llu, scalar %llu",
			 ULL(seed), ULL(start), ULL(count), ULL(hits), ULL(want));
}

/* Every path against the scalar reference: every count below a few vector blocks (so every
 * tail length) from odd starts, including ones that cross 2^32, then longer random ranges. */
static void pi_matches_scalar(const char *path)
{
	static const uint64_t starts[] = {
		0, 1, 2, 3, 5, 7, 13, 1000003, 4294967295ULL, 4294967297ULL, 999999999999999000ULL};
	unsigned ranges = 0;
	char bad[160] = "";
	rng_state = 20240611;
	for (size_t s = 0; s < NELEM(starts); s++)
		for (uint64_t count = 0; count < 70; count++, ranges++)
			pi_compare(path, rng(), starts[s], count, bad, sizeof(bad));
	for (int t = 0; t < 12; t++, ranges++) {
		uint64_t seed = rng(), start = rng() % 1000000000000000ULL;
		pi_compare(path, seed, start, 100000 + rng() % 1000, bad, sizeof(bad));
	}
	check(!bad[0], "montecarlo_pi %s: equals scalar on %u odd ranges%s", path, ranges, bad);
}

/* One range, any split: thread counts through kern_run and random pieces through compute. */
static void pi_decomposition(void)
{
	const uint64_t start = 12345, count = 3000017;
	kern_args args;
	const kern *k = kern_find("montecarlo_pi");
	const uint64_t want = kern_pi_hits_scalar(99, start, count);
	if (!check(parse_args("montecarlo_pi", "{\"samples\": 3012362, \"seed\": 99}", &args) == 0,
		   "montecarlo_pi: params parse (jansson on this target)"))
		return;
	static const int threads[] = {1, 2, 3, 7, 0};
	for (size_t t = 0; t < NELEM(threads); t++) {
		ts_err e;
		uint64_t hits = run("montecarlo_pi", &args, start, count, threads[t], &e).v[0];
		check(e == TS_OK && hits == want,
		      "montecarlo_pi: [%llu, +%llu) on %d threads -> %llu (scalar %llu)",
		      ULL(start), ULL(count), threads[t], ULL(hits), ULL(want));
	}
	rng_state = 7;
	for (int trial = 0; trial < 3; trial++) {
		kern_partial acc = k->zero();
		unsigned pieces = 0;
		ts_err e = TS_OK;
		for (uint64_t at = start, end = start + count; at < end && !e; pieces++) {
			uint64_t n = 1 + rng() % (trial == 0 ? 97 : 1000001);
			kern_partial part;
			if (n > end - at)
				n = end - at;
			e = k->compute(&args, at, n, &part, NULL);
			k->combine(&acc, &part);
			at += n;
		}
		check(!e && acc.v[0] == want,
		      "montecarlo_pi: %u random pieces combine to %llu (want %llu)", pieces,
		      ULL(acc.v[0]), ULL(want));
	}
	volatile int cancel = 1;
	kern_partial p;
	check(kern_run(k, &args, 0, args.space, 2, &p, &cancel) == TS_ERR_UNAVAILABLE,
	      "montecarlo_pi: a set cancel flag stops kern_run");
	kern_partial total = {{785192, 0}};
	json_t *r = NULL;
	if (parse_args("montecarlo_pi", "{\"samples\": 1000000, \"seed\": 42}", &args) == 0)
		r = k->finalize(&args, &total);
	double pi = json_real_value(json_object_get(r, "pi"));
	check(r && json_integer_value(json_object_get(r, "hits")) == 785192 && pi > 3.1407679 &&
		      pi < 3.1407681,
	      "montecarlo_pi: finalize gives pi = 4 * 785192 / 10^6 (%.7f)", pi);
	json_decref(r);
}

/* ---- prime_count ------------------------------------------------------------------------ */

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

static void pc_known(uint64_t from, uint64_t to, int threads, uint64_t want, const char *source)
{
	char text[128];
	kern_args args;
	ts_err e = TS_ERR_INTERNAL;
	uint64_t got = ~0ULL;
	snprintf(text, sizeof(text), "{\"from\": %llu, \"to\": %llu}", ULL(from), ULL(to));
	if (parse_args("prime_count", text, &args) == 0)
		got = run("prime_count", &args, 0, args.space, threads, &e).v[0];
	check(e == TS_OK && got == want,
	      "prime_count [%llu, %llu) on %d threads -> %llu (%s: %llu)", ULL(from), ULL(to),
	      threads, ULL(got), source, ULL(want));
}

static void prime_checks(int big)
{
	pc_known(0, 1000000, 1, 78498, "pi(10^6)");
	pc_known(0, 1000000, 2, 78498, "pi(10^6)");
	if (big)
		pc_known(0, 100000000, 2, 5761455, "pi(10^8)");
	/* Independent counts from primesieve 11.0 (tests/test_kern_prime.c): the large primes'
	 * buckets. */
	if (big)
		pc_known(1000000000000ULL, 1000030000000ULL, 2, 1085227, "primesieve");

	char bad[128] = "";
	for (uint64_t a = 0; a < 160; a++)
		for (uint64_t b = a + 1; b <= 160; b++) {
			uint64_t c = ~0ULL;
			if ((kern_prime_count_range(a, b, &c) || c != trial_count(a, b)) && !bad[0])
				snprintf(bad, sizeof(bad), "; [%llu, %llu) gave %llu", ULL(a),
					 ULL(b), ULL(c));
		}
	check(!bad[0], "prime_count: every range in [0, 160) matches trial division%s", bad);

	static const uint64_t bases[] = {
		0, 1000000, 1000000000, 4294967296ULL, 1000000000000ULL, 99999999000000ULL};
	unsigned ranges = 0;
	rng_state = 1234;
	for (size_t i = 0; i < NELEM(bases); i++)
		for (int t = 0; t < (bases[i] > 1000000000000ULL ? 2 : 6); t++, ranges++) {
			uint64_t a = bases[i] + rng() % 1000000;
			uint64_t b = a + 1 + rng() % (bases[i] > 1000000000ULL ? 400 : 5000),
				 c = ~0ULL;
			if ((kern_prime_count_range(a, b, &c) || c != trial_count(a, b)) && !bad[0])
				snprintf(bad, sizeof(bad), "; [%llu, %llu) gave %llu", ULL(a),
					 ULL(b), ULL(c));
		}
	check(!bad[0], "prime_count: %u random ranges up to 10^14 match trial division%s", ranges,
	      bad);

	/* Any split of a range past 2^32 gives the same count. */
	const kern *k = kern_find("prime_count");
	kern_args args;
	kern_partial whole = {{~0ULL, 0}};
	if (parse_args("prime_count", "{\"from\": 4294000000, \"to\": 4299000007}", &args) == 0 &&
	    k->compute(&args, 0, args.space, &whole, NULL) == TS_OK) {
		static const int threads[] = {2, 3, 7};
		for (size_t t = 0; t < NELEM(threads); t++) {
			ts_err e;
			uint64_t got =
				run("prime_count", &args, 0, args.space, threads[t], &e).v[0];
			check(e == TS_OK && got == whole.v[0],
			      "prime_count [4294000000, 4299000007) on %d threads -> %llu (one "
			      "piece %llu)",
			      threads[t], ULL(got), ULL(whole.v[0]));
		}
		kern_partial acc = k->zero();
		rng_state = 99;
		for (uint64_t at = 0; at < args.space;) {
			uint64_t n = 1 + rng() % 900000;
			kern_partial part;
			if (n > args.space - at)
				n = args.space - at;
			if (k->compute(&args, at, n, &part, NULL) != TS_OK)
				break;
			k->combine(&acc, &part);
			at += n;
		}
		check(acc.v[0] == whole.v[0],
		      "prime_count: random pieces combine to %llu (want %llu)", ULL(acc.v[0]),
		      ULL(whole.v[0]));
	} else {
		check(0, "prime_count: [4294000000, 4299000007) in one piece");
	}
	uint64_t c;
	check(kern_prime_count_range(0, 100000000000001ULL, &c) == TS_ERR_BAD_REQUEST,
	      "prime_count: past the cap of 10^14 is refused");
}

/* ---- collatz ---------------------------------------------------------------------------- */

/* The plain map on a 128-bit number in four 32-bit limbs (little end first), one checked step
 * at a time, written apart from the kernel's own 128-bit code: 1 if the path passes 2^128 - 1. */
static int plain_steps(uint64_t hi, uint64_t lo, uint64_t *steps)
{
	uint32_t l[4] = {(uint32_t)lo, (uint32_t)(lo >> 32), (uint32_t)hi, (uint32_t)(hi >> 32)};
	uint64_t s = 0;
	while (!(l[0] == 1 && l[1] == 0 && l[2] == 0 && l[3] == 0)) {
		if (l[0] & 1) {
			uint64_t carry = 1;
			for (int i = 0; i < 4; i++) {
				uint64_t t = (uint64_t)l[i] * 3 + carry;
				l[i] = (uint32_t)t;
				carry = t >> 32;
			}
			if (carry)
				return 1;
		} else {
			for (int i = 0; i < 4; i++)
				l[i] = l[i] >> 1 | (i < 3 ? l[i + 1] << 31 : 0);
		}
		s++;
	}
	*steps = s;
	return 0;
}

static void cz_record(uint64_t from, uint64_t to, int threads, uint64_t n, uint64_t steps)
{
	char text[128];
	kern_args args;
	ts_err e = TS_ERR_INTERNAL;
	kern_partial p = {{~0ULL, ~0ULL}};
	snprintf(text, sizeof(text), "{\"from\": %llu, \"to\": %llu}", ULL(from), ULL(to));
	if (parse_args("collatz", text, &args) == 0)
		p = run("collatz", &args, 0, args.space, threads, &e);
	check(e == TS_OK && p.v[0] == n && p.v[1] == steps,
	      "collatz [%llu, %llu) on %d threads -> n %llu, %llu steps (want %llu, %llu)",
	      ULL(from), ULL(to), threads, ULL(p.v[0]), ULL(p.v[1]), ULL(n), ULL(steps));
}

static void collatz_checks(int big)
{
	cz_record(1, 1000000, 1, 837799, 524);
	cz_record(1, 1000000, 2, 837799, 524);
	if (big)
		cz_record(1, 10000000, 2, 8400511, 685);
	cz_record(12, 14, 2, 12, 9); /* ties go to the smaller n */

	static const uint64_t known[][2] = {
		{1, 0},
		{8528817511ULL, 726},  /* peaks just under 2^64 */
		{12327829503ULL, 543}, /* the first past 2^64 */
		{23035537407ULL, 836},
		{THIRD, 65},
		{9223372036854775807ULL, 862}, /* peaks near 2^100.9 */
		{1ULL << 63, 63},
	};
	for (size_t i = 0; i < NELEM(known); i++) {
		uint64_t s = ~0ULL;
		ts_err e = kern_collatz_steps(known[i][0], &s);
		check(e == TS_OK && s == known[i][1],
		      "collatz: n = %llu takes %llu steps (want %llu)", ULL(known[i][0]), ULL(s),
		      ULL(known[i][1]));
	}

	char bad[128] = "";
	for (uint64_t n = 1; n < 200000 && !bad[0]; n++) {
		uint64_t want = 0, got = ~0ULL;
		if (plain_steps(0, n, &want) || kern_collatz_steps(n, &got) || got != want)
			snprintf(bad, sizeof(bad), "; n %llu: %llu, plain map %llu", ULL(n),
				 ULL(got), ULL(want));
	}
	rng_state = 5;
	for (int t = 0; t < 3000 && !bad[0]; t++) {
		uint64_t n = 1 + rng() % 30000000000ULL, want = 0,
			 got = ~0ULL; /* past 12327829503 */
		if (plain_steps(0, n, &want) || kern_collatz_steps(n, &got) || got != want)
			snprintf(bad, sizeof(bad), "; n %llu: %llu, plain map %llu", ULL(n),
				 ULL(got), ULL(want));
	}
	check(!bad[0], "collatz: steps match the plain map for n < 200000 and 3000 n < 3*10^10%s",
	      bad);

	/* Just below (2^128 - 1) / 3 some paths pass 2^128 and some do not: the kernel reports
	 * exactly those as errors, and counts the others exactly. */
	int overflows = 0, fine = 0;
	bad[0] = '\0';
	for (uint64_t d = 1; d <= 3000; d++) {
		uint64_t lo = THIRD - d, want = 0,
			 got = 0; /* hi = THIRD: no borrow, THIRD > 3000 */
		int overflow = plain_steps(THIRD, lo, &want);
		ts_err e = kern_collatz_steps_wide(THIRD, lo, &got);
		overflows += overflow;
		fine += !overflow;
		if ((overflow ? e != TS_ERR_BAD_REQUEST : e != TS_OK || got != want) && !bad[0])
			snprintf(bad, sizeof(bad), "; THIRD128 - %llu: error %d, %llu steps",
				 ULL(d), (int)e, ULL(got));
	}
	uint64_t s = 7;
	check(!bad[0] && overflows > 0 && fine > 0 &&
		      kern_collatz_steps_wide(THIRD, THIRD, &s) == TS_ERR_BAD_REQUEST && s == 7,
	      "collatz: paths past 2^128 are errors, never counts (%d overflow, %d fine below "
	      "(2^128-1)/3)%s",
	      overflows, fine, bad);
}

int main(int argc, char **argv)
{
	int no_neon = 0, big = 1;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--no-neon") == 0) {
			no_neon = 1;
		} else if (strcmp(argv[i], "--small") == 0) {
			big = 0;
		} else {
			fprintf(stderr, "usage: kern_golden [--small] [--no-neon]\n");
			return 2;
		}
	}
	const double t0 = now();
#if defined(__aarch64__)
	const char *arch = "aarch64";
#elif defined(__arm__)
	const char *arch = "arm (32-bit)";
#elif defined(__x86_64__)
	const char *arch = "x86-64";
#else
	const char *arch = "unknown";
#endif
	printf("# kern_golden on %s, %zu-bit pointers\n", arch, sizeof(void *) * 8);
	begin();
	check(kern_find("montecarlo_pi") && kern_find("prime_count") && kern_find("collatz") &&
		      !kern_find("nope"),
	      "kernel table: montecarlo_pi, prime_count and collatz are there");

	const char *names[16];
	int n = kern_pi_paths(names, 16);
	if (n > 16)
		n = 16;
	pi_paths_offered(names, n, no_neon);
	/* 10^9 samples on each CPU path; generic8 (a test path, never chosen automatically) takes
	 * the short vectors and the comparison with scalar below, which exercise all its lanes. */
	for (int p = 0; p < n; p++)
		pi_design_vectors(names[p], 2, big && strcmp(names[p], "generic8") != 0);
	for (int p = 0; p < n; p++)
		pi_matches_scalar(names[p]);
	pi_decomposition();
	prime_checks(big);
	collatz_checks(big);

	printf("# %.1f s in all\n", now() - t0);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
