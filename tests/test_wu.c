/* Work units: splits cover the index space exactly once; aggregation is exact in any order. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "kern.h"
#include "wu.h"

/* Checks that units tile [0, space) with no gap and no overlap. */
static void expect_tiles(const wu_split *s)
{
	uint64_t next = 0;
	for (uint64_t seq = 0; seq < s->n_units; seq++) {
		uint64_t start, count;
		wu_unit_range(s, seq, &start, &count);
		cr_assert_eq(start, next, "unit %llu starts at %llu, want %llu", (unsigned long long)seq,
			     (unsigned long long)start, (unsigned long long)next);
		cr_assert_gt(count, 0);
		cr_assert_leq(count, s->unit_size);
		next = start + count;
	}
	cr_assert_eq(next, s->space, "units cover %llu of %llu", (unsigned long long)next,
		     (unsigned long long)s->space);
}

Test(wu, split_by_units_covers_once)
{
	static const uint64_t spaces[] = {1, 2, 7, 1000, 1001, 999999937, 20000000000ULL,
					  1000000000000000000ULL};
	static const uint64_t units[] = {1, 2, 3, 7, 200, 1000, 999983};
	char why[200];
	for (size_t i = 0; i < sizeof(spaces) / sizeof(spaces[0]); i++) {
		for (size_t k = 0; k < sizeof(units) / sizeof(units[0]); k++) {
			wu_split s;
			cr_assert_eq(wu_split_make(spaces[i], 0, units[k], 100, &s, why, sizeof(why)), TS_OK, "%s", why);
			cr_assert_leq(s.n_units, units[k]);
			cr_assert_leq(s.n_units, WU_MAX_UNITS);
			if (units[k] <= spaces[i] && spaces[i] % units[k] == 0)
				cr_expect_eq(s.n_units, units[k]);
			if (s.n_units < 5000)
				expect_tiles(&s);
		}
	}
}

Test(wu, split_by_size_and_default)
{
	char why[200];
	wu_split s;
	cr_assert_eq(wu_split_make(2000000000, 100000000, 0, 1, &s, why, sizeof(why)), TS_OK);
	cr_expect_eq(s.n_units, 20);
	expect_tiles(&s);
	cr_assert_eq(wu_split_make(20000000000ULL, 0, 200, 1, &s, why, sizeof(why)), TS_OK);
	cr_expect_eq(s.n_units, 200);
	cr_expect_eq(s.unit_size, 100000000);
	/* A default size that would make too many units grows instead. */
	cr_assert_eq(wu_split_make(1000000000000000000ULL, 0, 0, 100000000, &s, why, sizeof(why)), TS_OK);
	cr_expect_leq(s.n_units, WU_MAX_UNITS);
	/* The last unit is the short one. */
	cr_assert_eq(wu_split_make(10, 4, 0, 1, &s, why, sizeof(why)), TS_OK);
	uint64_t start, count;
	wu_unit_range(&s, 2, &start, &count);
	cr_expect_eq(start, 8);
	cr_expect_eq(count, 2);
}

Test(wu, split_refuses_bad_sizes)
{
	char why[200] = "";
	wu_split s;
	cr_expect_eq(wu_split_make(0, 0, 0, 1, &s, why, sizeof(why)), TS_ERR_BAD_REQUEST);
	cr_expect_eq(wu_split_make(100, 5, 5, 1, &s, why, sizeof(why)), TS_ERR_BAD_REQUEST);
	cr_expect_eq(wu_split_make(10000000, 0, WU_MAX_UNITS + 1, 1, &s, why, sizeof(why)), TS_ERR_BAD_REQUEST);
	cr_expect_eq(wu_split_make(10000000, 1, 0, 1, &s, why, sizeof(why)), TS_ERR_BAD_REQUEST);
	cr_expect(why[0] != '\0', "no reason given");
}

Test(wu, aggregation_is_exact_in_any_order)
{
	const kern *k = kern_find("montecarlo_pi");
	cr_assert(k);
	kern_args args = {.seed = 42, .space = 1000000};
	char why[200];
	wu_split s;
	cr_assert_eq(wu_split_make(args.space, 0, 37, 1, &s, why, sizeof(why)), TS_OK);
	kern_partial parts[64];
	for (uint64_t seq = 0; seq < s.n_units; seq++) {
		uint64_t start, count;
		wu_unit_range(&s, seq, &start, &count);
		cr_assert_eq(k->compute(&args, start, count, &parts[seq], NULL), TS_OK);
	}
	/* Combine in several shuffled orders: always DESIGN.md's 785192. */
	srand(7);
	for (int round = 0; round < 5; round++) {
		for (uint64_t i = s.n_units - 1; i > 0; i--) {
			uint64_t j = (uint64_t)rand() % (i + 1);
			kern_partial t = parts[i];
			parts[i] = parts[j];
			parts[j] = t;
		}
		kern_partial acc = k->zero();
		for (uint64_t i = 0; i < s.n_units; i++)
			k->combine(&acc, &parts[i]);
		cr_expect_eq(acc.v[0], 785192, "round %d: %llu hits", round, (unsigned long long)acc.v[0]);
	}
}

Test(wu, report_verdicts)
{
	cr_expect_eq(wu_report_verdict(WU_LEASED, 3, 3), WU_ACCEPT);
	cr_expect_eq(wu_report_verdict(WU_DONE, 3, 3), WU_DUPLICATE);
	cr_expect_eq(wu_report_verdict(WU_LEASED, 3, 4), WU_REJECT_OWNER);
	cr_expect_eq(wu_report_verdict(WU_DONE, 3, 4), WU_REJECT_OWNER);
	cr_expect_eq(wu_report_verdict(WU_DROPPED, 3, 3), WU_REJECT_STATE);
	cr_expect(wu_lease_expired(WU_LEASED, 100, 100));
	cr_expect(!wu_lease_expired(WU_LEASED, 101, 100));
	cr_expect(!wu_lease_expired(WU_DONE, 1, 100));
}
