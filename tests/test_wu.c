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

/* Report verdicts: every (unit state, replica state) pair. */
Test(wu, report_verdicts)
{
	static const struct {
		int unit, replica;
		enum wu_verdict want;
	} rows[] = {
		{WU_OPEN, WU_R_LEASED, WU_ACCEPT},         /* the normal case, also after expiry */
		{WU_OPEN, WU_R_REPORTED, WU_DUPLICATE},    /* a retried report after a lost reply */
		{WU_VALID, WU_R_REPORTED, WU_DUPLICATE},
		{WU_VALID, WU_R_LEASED, WU_LATE},          /* settled by others: not counted */
		{WU_FAILED, WU_R_LEASED, WU_LATE},
		{WU_OPEN, 0, WU_REJECT_OWNER},             /* never leased to this node */
		{WU_VALID, 0, WU_REJECT_OWNER},
		{0, 0, WU_REJECT_OWNER},                   /* no such unit */
		{WU_DROPPED, WU_R_DROPPED, WU_REJECT_STATE}, /* cancelled job */
		{WU_OPEN, WU_R_DROPPED, WU_REJECT_STATE},
		{WU_DROPPED, WU_R_REPORTED, WU_DUPLICATE},
		{WU_OPEN, WU_R_EXPIRED, WU_ACCEPT},        /* late, but the unit still needs it */
		{WU_VALID, WU_R_EXPIRED, WU_LATE},         /* late and not needed */
		{WU_DROPPED, WU_R_EXPIRED, WU_REJECT_STATE},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		cr_expect_eq(wu_report_verdict(rows[i].unit, rows[i].replica), rows[i].want,
			     "unit %d replica %d", rows[i].unit, rows[i].replica);
	cr_expect_str_neq(wu_verdict_reason(WU_REJECT_OWNER), wu_verdict_reason(WU_REJECT_STATE));
}

Test(wu, lease_expiry)
{
	cr_expect(wu_lease_live(WU_R_LEASED, 101, 100));
	cr_expect(!wu_lease_live(WU_R_LEASED, 100, 100), "a lease ends at its deadline");
	cr_expect(!wu_lease_live(WU_R_REPORTED, 1000, 100));
	cr_expect(!wu_lease_live(WU_R_DROPPED, 1000, 100));
	cr_expect(!wu_lease_live(WU_R_EXPIRED, 1000, 100));
	cr_expect_eq(wu_missing_on_result(WU_R_LEASED), 0);
	cr_expect_eq(wu_missing_on_result(WU_R_EXPIRED), -1);
}

static enum wu_next next(int q, int max, int results, int largest, int inflight, int *more)
{
	wu_tally t = {q, max, results, largest, inflight};
	return wu_unit_next(&t, more);
}

Test(wu, quorum_and_disagreement)
{
	int more;
	/* R=1, Q=1: the first result settles it. */
	cr_expect_eq(next(1, 4, 1, 1, 0, &more), WU_NEXT_VALID);
	/* R=2, Q=2: one result in, one in flight: wait. */
	cr_expect_eq(next(2, 5, 1, 1, 1, &more), WU_NEXT_WAIT);
	/* ... its lease expired: one more replica. */
	cr_expect_eq(next(2, 5, 1, 1, 0, &more), WU_NEXT_MORE);
	cr_expect_eq(more, 1);
	/* Two agree: valid. */
	cr_expect_eq(next(2, 5, 2, 2, 0, &more), WU_NEXT_VALID);
	/* Two disagree: one more to break the tie. */
	cr_expect_eq(next(2, 5, 2, 1, 0, &more), WU_NEXT_MORE);
	cr_expect_eq(more, 1);
	/* R=3, Q=3 with a split 2/1 and nothing in flight: one more. */
	cr_expect_eq(next(3, 6, 3, 2, 0, &more), WU_NEXT_MORE);
	cr_expect_eq(more, 1);
	/* All different at the bound: quorum is out of reach. */
	cr_expect_eq(next(2, 5, 5, 1, 0, &more), WU_NEXT_FAIL);
	/* One short of the bound but two missing: fail now rather than burn replicas. */
	cr_expect_eq(next(3, 6, 5, 1, 0, &more), WU_NEXT_FAIL);
	/* Missing two, one in flight: ask for one more. */
	cr_expect_eq(next(3, 6, 1, 1, 1, &more), WU_NEXT_MORE);
	cr_expect_eq(more, 1);
}

Test(wu, adaptive_replication_and_spot_checks)
{
	/* Without adaptive replication, or for an untrusted node, the job's R and Q hold. */
	wu_plan p = wu_plan_unit(2, 2, 0, 1000, 0.9);
	cr_expect_eq(p.wanted, 2);
	cr_expect_eq(p.quorum, 2);
	cr_expect_eq(p.max_results, 2 + WU_EXTRA_RESULTS);
	p = wu_plan_unit(2, 2, 1, WU_TRUST_STREAK - 1, 0.9);
	cr_expect_eq(p.wanted, 2);
	/* A trusted node gets a single replica... */
	p = wu_plan_unit(2, 2, 1, WU_TRUST_STREAK, 0.9);
	cr_expect_eq(p.wanted, 1);
	cr_expect_eq(p.quorum, 1);
	/* ...except for spot checks. */
	p = wu_plan_unit(2, 2, 1, WU_TRUST_STREAK, WU_SPOT_CHECK / 2);
	cr_expect_eq(p.wanted, 2);
	cr_expect_eq(p.quorum, 2);
	/* About WU_SPOT_CHECK of a trusted node's units are spot-checked. */
	int checked = 0;
	for (int i = 0; i < 1000; i++)
		checked += wu_plan_unit(3, 2, 1, 50, (i + 0.5) / 1000.0).wanted > 1;
	cr_expect_eq(checked, (int)(WU_SPOT_CHECK * 1000));
}

Test(wu, reliability)
{
	cr_expect_float_eq(wu_reliability(0, 0), 0.5, 1e-12);
	cr_expect_gt(wu_reliability(10, 0), wu_reliability(10, 1));
	cr_expect_lt(wu_reliability(5, 5), wu_reliability(9, 1));
}

/* The transitions, one by one: each changes exactly the fields its name says. */
static wu_unit open_unit(int replication, int quorum)
{
	wu_plan p = wu_plan_unit(replication, quorum, 0, 0, 0.5);
	wu_unit u = wu_unit_new(7, 3, 300, 100, &p);
	u.id = 11;
	return u;
}

Test(wu, lease_expire_relet_and_cap)
{
	wu_unit u = open_unit(1, 1);
	cr_expect_eq(u.missing, 1);
	wu_replica r = wu_lease(&u, 5, 50, 1000, 60);
	cr_expect_eq(u.missing, 0);
	cr_expect_eq(r.state, WU_R_LEASED);
	cr_expect_eq(r.deadline, 1060);
	cr_expect_eq(r.leases, 1);
	cr_expect_eq(r.volunteer, 50);
	/* A resend keeps the deadline; nothing changes. */
	cr_expect(wu_resendable(&u, &r, 1059));
	cr_expect(!wu_resendable(&u, &r, 1060), "a lease ends at its deadline");
	cr_expect(!wu_expire(&u, &r, 1059), "expired before its deadline");
	cr_expect(wu_expire(&u, &r, 1060));
	cr_expect_eq(r.state, WU_R_EXPIRED);
	cr_expect_eq(u.missing, 1, "the slot did not go back to the unit");
	cr_expect(!wu_expire(&u, &r, 2000), "expired twice");
	cr_expect_eq(u.missing, 1);
	/* The node comes back: it gets its unit again, until the cap. */
	for (int lease = 2; lease <= WU_MAX_LEASES; lease++) {
		cr_assert(wu_relet(&u, &r, 2000 * lease, 60), "lease %d refused", lease);
		cr_expect_eq(r.leases, lease);
		cr_expect_eq(r.deadline, 2000 * lease + 60);
		cr_expect_eq(u.missing, 0);
		cr_expect(!wu_relet(&u, &r, 2000 * lease, 60), "a live lease re-let");
		cr_expect(wu_expire(&u, &r, 2000 * lease + 60));
	}
	cr_expect(!wu_relet(&u, &r, 99999, 60), "re-let past WU_MAX_LEASES");
	cr_expect_eq(u.missing, 1);
	/* Nor for a unit that wants no replica, or is settled. */
	wu_unit v = open_unit(1, 1);
	wu_replica s = wu_lease(&v, 5, 50, 0, 10);
	cr_expect(wu_expire(&v, &s, 10));
	v.missing = 0;
	cr_expect(!wu_relet(&v, &s, 20, 10));
	v.missing = 1;
	v.state = WU_VALID;
	cr_expect(!wu_relet(&v, &s, 20, 10));
}

Test(wu, results_and_give_back)
{
	const uint64_t res[2] = {42, 0};
	/* From a live lease: the lease turns into the result. */
	wu_unit u = open_unit(2, 2);
	wu_replica a = wu_lease(&u, 1, 1, 0, 60), b = wu_lease(&u, 2, 2, 0, 60);
	cr_expect_eq(u.missing, 0);
	wu_result(&u, &a, res);
	cr_expect_eq(u.n_results, 1);
	cr_expect_eq(u.missing, 0);
	cr_expect_eq(a.state, WU_R_REPORTED);
	cr_expect_eq(a.res[0], 42);
	/* From an expired lease: its slot had gone back, and is taken again by the result. */
	cr_expect(wu_expire(&u, &b, 60));
	cr_expect_eq(u.missing, 1);
	wu_result(&u, &b, res);
	cr_expect_eq(u.n_results, 2);
	cr_expect_eq(u.missing, 0);
	/* On a settled unit a late result changes only its replica. */
	wu_unit v = open_unit(1, 1);
	wu_replica c = wu_lease(&v, 3, 3, 0, 60);
	wu_settle_valid(&v, res, 5, 1);
	wu_result(&v, &c, res);
	cr_expect_eq(v.n_results, 0);
	cr_expect_eq(c.state, WU_R_REPORTED);
	/* Give back: a live lease returns its slot, an expired one had already. */
	wu_unit w = open_unit(1, 1);
	wu_replica d = wu_lease(&w, 4, 4, 0, 60);
	cr_expect(wu_give_back(&w, &d));
	cr_expect_eq(d.state, WU_R_DROPPED);
	cr_expect_eq(w.missing, 1);
	cr_expect(!wu_give_back(&w, &d), "given back twice");
	wu_replica e = wu_lease(&w, 5, 5, 0, 60);
	cr_expect(wu_expire(&w, &e, 60));
	cr_expect(wu_give_back(&w, &e));
	cr_expect_eq(w.missing, 1);
}

Test(wu, settle_more_and_drop)
{
	const uint64_t res[2] = {9, 1};
	wu_unit u = open_unit(2, 2);
	wu_want_more(&u, 0, 1);
	cr_expect_eq(u.wanted, 1);
	cr_expect_eq(u.missing, 1);
	u.n_results = 2;
	wu_want_more(&u, 1, 1);
	cr_expect_eq(u.wanted, 4);
	cr_expect_eq(u.missing, 1);
	wu_settle_valid(&u, res, 77, 3);
	cr_expect_eq(u.state, WU_VALID);
	cr_expect_eq(u.canon[0], 9);
	cr_expect_eq(u.canon[1], 1);
	cr_expect_eq(u.valid_at, 77);
	cr_expect_eq(u.valid_rank, 3);
	cr_expect(!wu_drop(&u), "a valid unit dropped");
	wu_unit v = open_unit(1, 1);
	wu_settle_failed(&v);
	cr_expect_eq(v.state, WU_FAILED);
	wu_unit w = open_unit(1, 1);
	wu_replica r = wu_lease(&w, 1, 1, 0, 60);
	cr_expect(wu_drop(&w));
	cr_expect_eq(w.state, WU_DROPPED);
	cr_expect(wu_drop_replica(&r));
	cr_expect_eq(r.state, WU_R_DROPPED);
	cr_expect(!wu_drop_replica(&r));
}

/* Trust comes only from results another volunteer confirmed. */
Test(wu, judging_and_trust)
{
	const uint64_t canon[2] = {100, 0};
	wu_replica r = {.state = WU_R_REPORTED, .res = {100, 0}};
	wu_trust t = wu_judge(&r, canon, 1, 1);
	cr_expect_eq(r.verdict, WU_J_UNCHECKED, "a quorum-1 result was judged");
	cr_expect_eq(t.valid, 0, "an unchecked result earned trust");
	cr_expect_eq(t.counted, 1);
	cr_expect_eq(r.counted, 1);
	wu_replica ok = {.state = WU_R_REPORTED, .res = {100, 0}};
	t = wu_judge(&ok, canon, 2, 0);
	cr_expect_eq(ok.verdict, WU_J_VALID);
	cr_expect_eq(t.valid, 1);
	cr_expect_eq(t.counted, 0);
	cr_expect(!t.streak_reset);
	wu_replica bad = {.state = WU_R_REPORTED, .res = {0, 0}};
	t = wu_judge(&bad, canon, 2, 1);
	cr_expect_eq(bad.verdict, WU_J_INVALID);
	cr_expect_eq(t.invalid, 1);
	cr_expect_eq(t.counted, 0, "an invalid result was counted");
	cr_expect(t.streak_reset);
}

/* A single-replica unit settled on a liar's word opens again with its job's replication. */
Test(wu, recheck_after_a_lie)
{
	const uint64_t lie[2] = {0, 0};
	wu_plan single = wu_plan_unit(2, 2, 1, WU_TRUST_STREAK, 0.99);
	cr_assert_eq(single.quorum, 1);
	wu_unit u = wu_unit_new(1, 0, 0, 100, &single);
	wu_replica r = wu_lease(&u, 1, 1, 0, 60);
	wu_result(&u, &r, lie);
	wu_settle_valid(&u, lie, 5, 1);
	wu_judge(&r, u.canon, u.quorum, 1);
	cr_assert(wu_recheck(&u, &r, 2, 2));
	cr_expect_eq(u.state, WU_OPEN);
	cr_expect_eq(u.quorum, 2);
	cr_expect_eq(u.wanted, 2);
	cr_expect_eq(u.missing, 1, "one more replica to check the lie");
	cr_expect_eq(u.max_results, 2 + WU_EXTRA_RESULTS);
	cr_expect_eq(u.valid_rank, 0);
	cr_expect_eq(r.verdict, WU_J_PENDING);
	cr_expect_eq(r.counted, 0);
	cr_expect(!wu_recheck(&u, &r, 2, 2), "rechecked an open unit");
	/* A unit that was checked already, or a job without replication, is left alone. */
	wu_unit v = open_unit(2, 2);
	wu_settle_valid(&v, lie, 5, 1);
	cr_expect(!wu_recheck(&v, &r, 2, 2));
	wu_unit w = open_unit(1, 1);
	wu_settle_valid(&w, lie, 5, 1);
	cr_expect(!wu_recheck(&w, &r, 1, 1));
}

/* A straggler gets at most one extra copy, and only while nothing settled it. */
Test(wu, duplicate_a_straggler)
{
	const uint64_t res[2] = {5, 0};
	wu_unit u = open_unit(1, 1);
	wu_replica slow = wu_lease(&u, 1, 1, 0, 600);
	cr_expect(!wu_duplicate(&u, 0), "a unit with no lease in flight is not a straggler");
	cr_assert(wu_duplicate(&u, 1));
	cr_expect_eq(u.wanted, 2);
	cr_expect_eq(u.missing, 1);
	wu_replica fast = wu_lease(&u, 2, 2, 0, 600);
	cr_expect_eq(u.missing, 0);
	cr_expect(!wu_duplicate(&u, 2), "a third copy");
	wu_result(&u, &fast, res);
	wu_settle_valid(&u, res, 1, 1);
	cr_expect_eq(wu_report_verdict(u.state, slow.state), WU_LATE, "the slow copy counts");
	wu_unit q = open_unit(2, 2);
	wu_lease(&q, 1, 1, 0, 600);
	cr_expect(!wu_duplicate(&q, 1), "a replicated unit is raced by its own replicas, not copies");
}
