/* wu: splitting jobs into work units and deciding what a report does. Pure logic, no I/O.
 *
 * A job's index space [0, space) is cut into n_units ranges of unit_size indices (the last one
 * shorter). Unit seq covers [seq*unit_size, min(space, (seq+1)*unit_size)). Units are
 * materialised in the store only when first leased, so submitting a job of 10^6 units costs one
 * row, not 10^6. */
#ifndef WU_H
#define WU_H

#include <stddef.h>
#include <stdint.h>

#include "ts_err.h"

#define WU_MAX_UNITS 1000000ULL /* units per job */

typedef struct wu_split {
	uint64_t space;
	uint64_t unit_size;
	uint64_t n_units;
} wu_split;

/* Chooses the split: unit_size if given (non-zero), else `units` if given, else default_unit.
 * Both given is an error. Fails with a reason when the split would exceed WU_MAX_UNITS. */
ts_err wu_split_make(uint64_t space, uint64_t unit_size, uint64_t units, uint64_t default_unit,
		     wu_split *out, char *why, size_t whylen);

/* The range of unit seq (seq < n_units). */
void wu_unit_range(const wu_split *s, uint64_t seq, uint64_t *start, uint64_t *count);

/* Unit states in the store. The SQL in server/srv_db.c spells them through WU_SQL_* (a partial
 * index can only use literals); srv_db.c asserts that both agree. */
enum wu_state {
	WU_OPEN = 1,    /* waiting for results (some replicas may be leased) */
	WU_VALID = 2,   /* quorum reached; its canonical result is in the job's aggregate */
	WU_DROPPED = 3, /* its job was cancelled or failed */
	WU_FAILED = 4   /* no quorum within the result bound: the job fails */
};

/* Replica states: one replica is one node's copy of a unit. */
enum wu_replica_state {
	WU_R_LEASED = 1,   /* handed to the node, until its deadline */
	WU_R_REPORTED = 2, /* the node's result is in */
	WU_R_DROPPED = 3,  /* its unit or job no longer wants it, or the node gave it back */
	WU_R_EXPIRED = 4   /* its deadline passed first: its slot went back to the unit, but the
			    * node's result is still taken while the unit needs it */
};

/* A reported result's standing. */
enum wu_judgement {
	WU_J_PENDING = 0,   /* not judged yet */
	WU_J_VALID = 1,     /* matched the canonical result, confirmed by another volunteer */
	WU_J_INVALID = 2,   /* did not match */
	WU_J_UNCHECKED = 3  /* taken on the node's word alone (quorum 1): no trust earned */
};

/* The lifecycle fields of a unit row. */
typedef struct wu_unit {
	int64_t id, job_id;
	uint64_t seq, start, count;
	int state, quorum, wanted, max_results, n_results;
	int missing; /* wanted - n_results - leases in flight: it wants a new replica while > 0 */
	uint64_t canon[2]; /* the canonical partial, once valid */
	int64_t valid_at, valid_rank; /* when, and as which of its job's units, it became valid */
} wu_unit;

/* The lifecycle fields of a replica row. */
typedef struct wu_replica {
	int64_t id, unit_id, node_id;
	int64_t volunteer; /* the enrollment its node came from: one volunteer, one vote */
	int state, leases, verdict, counted;
	int64_t deadline;
	uint64_t res[2]; /* the node's partial, once reported */
} wu_replica;

/* Every change of a unit or replica is one of these functions; the store writes the rows they
 * change and nothing else touches `missing`, `state` or `deadline` (but for the bulk drop of a
 * cancelled job, which follows wu_drop, and lost-node release, which moves deadlines to now). */

/* A unit row for seq of a job, open with the plan's replication (see wu_plan_unit). */
struct wu_plan;
wu_unit wu_unit_new(int64_t job_id, uint64_t seq, uint64_t start, uint64_t count, const struct wu_plan *p);

/* First lease of a unit to a node: a new replica, due at now + deadline_s. */
wu_replica wu_lease(wu_unit *u, int64_t node_id, int64_t volunteer, int64_t now, int64_t deadline_s);

/* A node's own expired replica handed back to it (it restarted after its deadline): allowed
 * while the unit still wants a replica and the replica was leased fewer than WU_MAX_LEASES
 * times, so a node that fetches and never reports cannot hold a unit for ever. Returns 1 if
 * it did. */
#define WU_MAX_LEASES 3
int wu_relet(wu_unit *u, wu_replica *r, int64_t now, int64_t deadline_s);

/* Whether a fetch hands a live lease back to its node as it is: a fetch means the node holds
 * nothing in progress, so it lost the unit (a restart, a dropped reply). The deadline stays:
 * resending never extends a lease. */
int wu_resendable(const wu_unit *u, const wu_replica *r, int64_t now);

/* The lease's deadline passed: its slot goes back to the unit. Returns 1 if it expired. */
int wu_expire(wu_unit *u, wu_replica *r, int64_t now);

/* The node cannot compute the unit: its slot goes back; the unit never returns to it. */
int wu_give_back(wu_unit *u, wu_replica *r);

/* A result came in for a replica the report verdict accepted (WU_ACCEPT or WU_LATE). On an
 * open unit it counts as one of the unit's results. */
void wu_result(wu_unit *u, wu_replica *r, const uint64_t res[2]);

/* The unit reached quorum with canon, as its job's rank-th valid unit; or it cannot and fails. */
void wu_settle_valid(wu_unit *u, const uint64_t canon[2], int64_t now, int64_t rank);
void wu_settle_failed(wu_unit *u);

/* The unit needs `more` replicas beyond its results and its `inflight` live leases. */
void wu_want_more(wu_unit *u, int inflight, int more);

/* A straggler: a quorum-1 unit with no result and `inflight` = 1 live lease wants one more
 * replica, so an idle node can race the slow one (the first result settles it, the other is
 * late and harmless). At most one extra copy. Returns 1 if it now wants one. */
int wu_duplicate(wu_unit *u, int inflight);

/* The unit's job was cancelled or failed. Returns 1 if the unit changed. */
int wu_drop(wu_unit *u);
int wu_drop_replica(wu_replica *r);

/* A single-replica unit (adaptive replication) settled on the word of a node since caught
 * lying: it opens again with the job's replication and quorum, its result pending. Returns 1
 * if it reopened. */
int wu_recheck(wu_unit *u, wu_replica *liar, int replication, int quorum);

/* How a node's standing changes with one judged result. */
typedef struct wu_trust {
	int valid, invalid, counted; /* added to the node's n_valid, n_invalid, units_done */
	int streak_reset;            /* 1: its streak restarts from 0 (then valid is added) */
} wu_trust;

/* Judges a reported result against the canonical one. Only a result that another volunteer
 * confirmed (quorum >= 2) earns trust; a quorum-1 result is counted but unchecked. */
wu_trust wu_judge(wu_replica *r, const uint64_t canon[2], int quorum, int counted);

/* What a report for a replica does. */
enum wu_verdict {
	WU_ACCEPT,       /* the unit needs this result: record it and validate */
	WU_DUPLICATE,    /* this node reported it already: answer accepted again, count nothing */
	WU_LATE,         /* the unit is settled: record for the node's reliability, count nothing */
	WU_REJECT_OWNER, /* this node holds no replica of the unit */
	WU_REJECT_STATE  /* the replica or its job was dropped */
};

/* Decides a report for a unit in unit_state from a node whose replica is in replica_state
 * (0: the node has no replica of the unit). A result that arrives after its lease expired is
 * still WU_ACCEPT while the unit is open. */
enum wu_verdict wu_report_verdict(int unit_state, int replica_state);
const char *wu_verdict_reason(enum wu_verdict v);

/* Whether a leased replica still counts as in flight at time now. */
int wu_lease_live(int replica_state, int64_t deadline, int64_t now);

/* How missing changes when a result arrives from a replica in this state: a live lease turns
 * into a result (0), an expired one had already given its slot back (-1). */
int wu_missing_on_result(int replica_state);

/* What a unit needs after a result came in or a lease expired. */
typedef struct wu_tally {
	int quorum;      /* agreeing results needed */
	int max_results; /* results after which a unit without quorum fails */
	int results;     /* results reported so far */
	int largest;     /* size of the largest group of identical results */
	int inflight;    /* live leases */
} wu_tally;

enum wu_next {
	WU_NEXT_VALID, /* the largest group is the canonical result */
	WU_NEXT_WAIT,  /* enough replicas are in flight to reach quorum */
	WU_NEXT_MORE,  /* issue *more additional replicas */
	WU_NEXT_FAIL   /* quorum is out of reach within max_results */
};

enum wu_next wu_unit_next(const wu_tally *t, int *more);

/* Replication of a new unit for the node that first leases it (adaptive replication): a node
 * with a streak of WU_TRUST_STREAK valid results gets a single replica (quorum 1), except for a
 * random WU_SPOT_CHECK share of units that keep the job's replication as a spot check.
 * u01 is a uniform random number in [0, 1). */
#define WU_TRUST_STREAK 10
#define WU_SPOT_CHECK 0.1
#define WU_EXTRA_RESULTS 3 /* results allowed past the replication before a unit fails */

typedef struct wu_plan {
	int wanted; /* replicas to issue */
	int quorum; /* agreeing results needed */
	int max_results;
} wu_plan;

wu_plan wu_plan_unit(int replication, int quorum, int adaptive, int64_t node_streak, double u01);

/* A node's reliability from its validated results: (valid + 1) / (valid + invalid + 2). */
double wu_reliability(int64_t valid, int64_t invalid);

#endif
