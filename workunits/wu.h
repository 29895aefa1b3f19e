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
	WU_LEASED = 1, /* handed to a node, waiting for its result until the deadline */
	WU_DONE = 2,   /* result in; counted into the job */
	WU_DROPPED = 3 /* its job was cancelled */
};

/* What a report for a unit does. */
enum wu_verdict {
	WU_ACCEPT,      /* first result for this unit: count it */
	WU_DUPLICATE,   /* same node reported it already: answer accepted again, count nothing */
	WU_REJECT_OWNER,/* the unit is not leased to this node */
	WU_REJECT_STATE /* the unit is no longer wanted (dropped or done by another node) */
};

/* Decides a report from node `reporter` for a unit in `state` held by `holder`. */
enum wu_verdict wu_report_verdict(int state, int64_t holder, int64_t reporter);
const char *wu_verdict_reason(enum wu_verdict v);

/* Whether a leased unit whose deadline has passed may be reissued at time now. */
int wu_lease_expired(int state, int64_t deadline, int64_t now);

#endif
