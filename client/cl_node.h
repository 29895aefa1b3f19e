/* cl_node: the volunteer node's loop: fetch units, compute them, report the results.
 *
 * Results are the node's only product, so a computed result is kept until the server has
 * answered it (accepted or rejected): in memory, and in DIR/pending.json before every report,
 * so that neither a server restart nor a client restart loses it. Network trouble and 5xx
 * answers are retried with exponential backoff and jitter, forever; only a revoked node, a
 * changed server key or an unusable state directory end the loop with an error. */
#ifndef CL_NODE_H
#define CL_NODE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "cl_state.h"
#include "ts_err.h"

#define CL_NODE_MAX_UNITS 64 /* the API's cap on units per fetch and results per report */

typedef struct cl_node_opts {
	const char *state_dir; /* where node.json and pending.json live */
	int threads;           /* compute threads per unit; 0: all online CPUs */
	int max_units;         /* units asked per fetch, 1..CL_NODE_MAX_UNITS */
	FILE *log;             /* one line per unit, or NULL for none */
} cl_node_opts;

typedef struct cl_node_stats {
	uint64_t done;     /* results the server accepted */
	uint64_t rejected; /* results the server answered with a rejection */
	uint64_t skipped;  /* units this client could not compute (unknown kernel, bad params) */
	uint64_t pending;  /* results still unanswered when the loop ended (kept on disk) */
} cl_node_stats;

/* Exponential backoff: 0.5 s doubling to a 30 s cap, each delay jittered by +-25%. */
typedef struct cl_node_backoff {
	double base; /* 0: no failure yet */
} cl_node_backoff;

/* The delay before the next retry; u is a uniform random number in [0, 1). */
double cl_node_backoff_next(cl_node_backoff *b, double u);
static inline void cl_node_backoff_reset(cl_node_backoff *b)
{
	b->base = 0;
}

/* Computes one unit as /work/fetch hands it out. On TS_OK *item is a new pending item:
 * {"report": {"unit_id","result","wall_s"}, "job_id", "start", "count"}, where "report" is the
 * element /work/report takes. Errors (why says which): TS_ERR_NOT_FOUND when the kernel is
 * unknown here, TS_ERR_BAD_REQUEST for a malformed unit or params, TS_ERR_UNAVAILABLE when
 * *cancel was set. cancel may be NULL. */
ts_err cl_node_compute(const json_t *unit, int threads, const volatile int *cancel, json_t **item,
		       char *why, size_t whylen);

/* The log line of a pending item and its verdict ("accepted", "rejected: reason"). */
void cl_node_format_item(const json_t *item, const char *verdict, char *out, size_t outlen);

/* Runs the loop until *stop becomes non-zero, then tries once to report what is finished and
 * returns TS_OK. Returns an error with a one-line reason in why when the node cannot go on.
 * stats is filled in either way. */
ts_err cl_node_run(const cl_node_opts *opts, const cl_state_node *node,
		   volatile sig_atomic_t *stop, cl_node_stats *stats, char *why, size_t whylen);

#endif
