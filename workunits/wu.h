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

/* Unit states in the store. */
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
	WU_R_DROPPED = 3,  /* its unit or job no longer wants it */
	WU_R_EXPIRED = 4   /* its deadline passed first: its slot went back to the unit, but the
			    * node's result is still taken while the unit needs it */
};

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

/* A unit keeps `missing` = replicas wanted − results − leases in flight; it wants a new replica
 * while missing > 0. How missing changes when a result arrives from a replica in this state:
 * a live lease turns into a result (0), an expired one had already given its slot back (−1). */
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
