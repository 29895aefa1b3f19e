#include "wu.h"

#include <stdio.h>
#include <string.h>

ts_err wu_split_make(uint64_t space, uint64_t unit_size, uint64_t units, uint64_t default_unit,
		     wu_split *out, char *why, size_t whylen)
{
	if (space == 0) {
		snprintf(why, whylen, "the job has nothing to compute");
		return TS_ERR_BAD_REQUEST;
	}
	if (unit_size && units) {
		snprintf(why, whylen, "give unit_size or units, not both");
		return TS_ERR_BAD_REQUEST;
	}
	if (units) {
		if (units > WU_MAX_UNITS) {
			snprintf(why, whylen, "at most %llu units per job", (unsigned long long)WU_MAX_UNITS);
			return TS_ERR_BAD_REQUEST;
		}
		if (units > space)
			units = space;
		unit_size = space / units + (space % units != 0);
	} else if (!unit_size) {
		unit_size = default_unit ? default_unit : 1;
		/* A default that would make too many units grows instead of failing. */
		if (space / unit_size >= WU_MAX_UNITS)
			unit_size = space / WU_MAX_UNITS + 1;
	}
	if (unit_size > space)
		unit_size = space;
	uint64_t n = space / unit_size + (space % unit_size != 0);
	if (n > WU_MAX_UNITS) {
		snprintf(why, whylen, "unit_size %llu makes %llu units; at most %llu per job",
			 (unsigned long long)unit_size, (unsigned long long)n,
			 (unsigned long long)WU_MAX_UNITS);
		return TS_ERR_BAD_REQUEST;
	}
	*out = (wu_split){space, unit_size, n};
	return TS_OK;
}

void wu_unit_range(const wu_split *s, uint64_t seq, uint64_t *start, uint64_t *count)
{
	uint64_t a = seq * s->unit_size;
	uint64_t left = s->space - a;
	*start = a;
	*count = left < s->unit_size ? left : s->unit_size;
}

enum wu_verdict wu_report_verdict(int unit_state, int replica_state)
{
	if (replica_state == 0)
		return WU_REJECT_OWNER;
	if (replica_state == WU_R_REPORTED)
		return WU_DUPLICATE;
	if (replica_state == WU_R_DROPPED || unit_state == WU_DROPPED)
		return WU_REJECT_STATE;
	if (unit_state == WU_OPEN)
		return WU_ACCEPT;
	return WU_LATE; /* valid or failed: settled without this result */
}

const char *wu_verdict_reason(enum wu_verdict v)
{
	static const char *const reasons[] = {
		[WU_ACCEPT] = "accepted",
		[WU_DUPLICATE] = "already accepted",
		[WU_LATE] = "unit already settled; result not needed",
		[WU_REJECT_OWNER] = "unit is not leased to this node",
		[WU_REJECT_STATE] = "unit is no longer needed",
	};
	return reasons[v];
}

int wu_missing_on_result(int replica_state)
{
	return replica_state == WU_R_EXPIRED ? -1 : 0;
}

int wu_lease_live(int replica_state, int64_t deadline, int64_t now)
{
	return replica_state == WU_R_LEASED && deadline > now;
}

enum wu_next wu_unit_next(const wu_tally *t, int *more)
{
	*more = 0;
	if (t->largest >= t->quorum)
		return WU_NEXT_VALID;
	/* Even if every further result joins the largest group, quorum needs `missing` more. */
	int missing = t->quorum - t->largest;
	if (t->results + missing > t->max_results)
		return WU_NEXT_FAIL;
	if (t->inflight >= missing)
		return WU_NEXT_WAIT;
	*more = missing - t->inflight;
	return WU_NEXT_MORE;
}

wu_plan wu_plan_unit(int replication, int quorum, int adaptive, int64_t node_streak, double u01)
{
	if (adaptive && replication > 1 && node_streak >= WU_TRUST_STREAK && u01 >= WU_SPOT_CHECK)
		return (wu_plan){1, 1, 1};
	return (wu_plan){replication, quorum, replication + WU_EXTRA_RESULTS};
}

double wu_reliability(int64_t valid, int64_t invalid)
{
	return (double)(valid + 1) / (double)(valid + invalid + 2);
}

wu_unit wu_unit_new(int64_t job_id, uint64_t seq, uint64_t start, uint64_t count, const wu_plan *p)
{
	return (wu_unit){.job_id = job_id, .seq = seq, .start = start, .count = count, .state = WU_OPEN,
			 .quorum = p->quorum, .wanted = p->wanted, .max_results = p->max_results,
			 .missing = p->wanted};
}

wu_replica wu_lease(wu_unit *u, int64_t node_id, int64_t volunteer, int64_t now, int64_t deadline_s)
{
	u->missing--;
	return (wu_replica){.unit_id = u->id, .node_id = node_id, .volunteer = volunteer,
			    .state = WU_R_LEASED, .leases = 1, .deadline = now + deadline_s};
}

int wu_relet(wu_unit *u, wu_replica *r, int64_t now, int64_t deadline_s)
{
	if (r->state != WU_R_EXPIRED || u->state != WU_OPEN || u->missing <= 0 || r->leases >= WU_MAX_LEASES)
		return 0;
	r->state = WU_R_LEASED;
	r->deadline = now + deadline_s;
	r->leases++;
	u->missing--;
	return 1;
}

int wu_resendable(const wu_unit *u, const wu_replica *r, int64_t now)
{
	return u->state == WU_OPEN && wu_lease_live(r->state, r->deadline, now);
}

int wu_expire(wu_unit *u, wu_replica *r, int64_t now)
{
	if (r->state != WU_R_LEASED || r->deadline > now)
		return 0;
	r->state = WU_R_EXPIRED;
	u->missing++;
	return 1;
}

int wu_give_back(wu_unit *u, wu_replica *r)
{
	if (r->state != WU_R_LEASED && r->state != WU_R_EXPIRED)
		return 0;
	/* An expired lease had given its slot back already. */
	if (r->state == WU_R_LEASED && u->state == WU_OPEN)
		u->missing++;
	r->state = WU_R_DROPPED;
	return 1;
}

void wu_result(wu_unit *u, wu_replica *r, const uint64_t res[2])
{
	if (u->state == WU_OPEN) {
		u->n_results++;
		u->missing += wu_missing_on_result(r->state);
	}
	r->state = WU_R_REPORTED;
	r->res[0] = res[0];
	r->res[1] = res[1];
}

void wu_settle_valid(wu_unit *u, const uint64_t canon[2], int64_t now, int64_t rank)
{
	u->state = WU_VALID;
	u->valid_at = now;
	u->valid_rank = rank;
	u->canon[0] = canon[0];
	u->canon[1] = canon[1];
}

void wu_settle_failed(wu_unit *u)
{
	u->state = WU_FAILED;
}

void wu_want_more(wu_unit *u, int inflight, int more)
{
	u->wanted = u->n_results + inflight + more;
	u->missing = more;
}

int wu_duplicate(wu_unit *u, int inflight)
{
	if (u->state != WU_OPEN || u->quorum != 1 || u->n_results != 0 || u->wanted != 1 || inflight != 1)
		return 0;
	wu_want_more(u, inflight, 1);
	return 1;
}

int wu_drop(wu_unit *u)
{
	if (u->state != WU_OPEN)
		return 0;
	u->state = WU_DROPPED;
	return 1;
}

int wu_drop_replica(wu_replica *r)
{
	if (r->state != WU_R_LEASED)
		return 0;
	r->state = WU_R_DROPPED;
	return 1;
}

int wu_recheck(wu_unit *u, wu_replica *liar, int replication, int quorum)
{
	if (u->state != WU_VALID || u->quorum != 1 || replication < 2 || liar->state != WU_R_REPORTED)
		return 0;
	u->state = WU_OPEN;
	u->quorum = quorum;
	u->wanted = replication;
	u->max_results = replication + WU_EXTRA_RESULTS;
	u->missing = u->wanted - u->n_results;
	memset(u->canon, 0, sizeof(u->canon));
	u->valid_at = u->valid_rank = 0;
	liar->verdict = WU_J_PENDING;
	liar->counted = 0;
	return 1;
}

wu_trust wu_judge(wu_replica *r, const uint64_t canon[2], int quorum, int counted)
{
	int match = r->res[0] == canon[0] && r->res[1] == canon[1];
	wu_trust t = {.counted = counted && match};
	r->counted = t.counted;
	if (quorum < 2) {
		r->verdict = WU_J_UNCHECKED;
		return t;
	}
	r->verdict = match ? WU_J_VALID : WU_J_INVALID;
	t.valid = match;
	t.invalid = !match;
	t.streak_reset = !match;
	return t;
}
