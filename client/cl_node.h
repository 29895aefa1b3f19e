/* cl_node: the volunteer node's loop: fetch units, compute them, report the results.
 *
 * Results are the node's only product, so a computed result is kept until the server has
 * answered it (accepted or rejected): in memory, and in DIR/pending.json before every report,
 * so that neither a server restart nor a client restart loses it. Network trouble and 5xx
 * answers are retried with exponential backoff and jitter, forever; only a revoked node, a
 * changed server key or an unusable state directory end the loop with an error. A unit the node
 * cannot compute (a kernel it does not know, params its kernel refuses) is declined: reported
 * with an "error" instead of a "result", through the same pending path, so the server gives it
 * to another node at once instead of when its lease ends. While the node runs, a heartbeat
 * thread (cl_beat) tells the server it is alive, so units longer than the server's node timeout
 * stay leased.
 *
 * Units are computed one at a time from a short queue. While one computes, a second connection
 * on a thread of its own reports the results finished so far (each unit is reported as soon as
 * it is done: a lost node loses the unit in progress, not a batch) and, when the queue would
 * run dry within about a round trip, fetches a couple of seconds of work ahead, telling the
 * server which units it still holds ("holding") so they are not sent again. With nothing in
 * hand the node long-polls ("wait_s"). Against an older server that refuses those fields the
 * node falls back to fetching a batch when idle and sleeping retry_after_s when there is none. */
#ifndef CL_NODE_H
#define CL_NODE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "cl_prefs.h"
#include "cl_state.h"
#include "kern.h"
#include "ts_err.h"

#define CL_NODE_MAX_UNITS 64 /* the API's cap on units per fetch and results per report */

/* Who computes a unit's range: by default kern_run in this process; MPI mode spreads it over
 * ranks. run has kern_run's contract; params is the unit's JSON (what other ranks parse). */
typedef struct cl_node_runner {
	ts_err (*run)(void *arg, const kern *k, const json_t *params, const kern_args *args,
		      uint64_t start, uint64_t count, int threads, kern_partial *out,
		      const volatile int *cancel);
	void (*done)(void *arg); /* once, when the loop ends and before the last report; may be NULL */
	void *arg;
} cl_node_runner;

typedef struct cl_node_opts {
	const char *state_dir;        /* where node.json and pending.json live */
	int threads;                  /* compute threads per unit; 0: all online CPUs */
	int max_units;                /* units asked per fetch at most, 1..CL_NODE_MAX_UNITS */
	double seconds;               /* work asked per fetch at most, by the node's rates; 0: not
				       * asked. A server that knows "holding" is asked for at most
				       * about 2 s of work (by the node's time per unit) */
	double heartbeat_s;           /* heartbeat period while computing; 0: none */
	double max_rate;              /* indices/s: a unit is held until count / max_rate s after
				       * it began (tests force long units with it); 0: no cap */
	int wait_s;                   /* long-poll seconds (0..60) of a fetch with nothing in
				       * hand; 0: none, sleep the server's retry_after_s */
	const json_t *rates;          /* sent with a heartbeat before the first fetch; may be NULL */
	const cl_node_runner *runner; /* NULL: kern_run here */
	struct cl_unit *programs;     /* runs program units (--programs); NULL: declines them */
	FILE *log;                    /* one line per unit, or NULL for none */
	const cl_prefs *prefs;        /* the volunteer's controls (pause when busy, hot, outside
				       * the hours, on battery); NULL: none */
	volatile sig_atomic_t *halt;  /* the flag the unit's compute checks while controls are
				       * on: whoever sets *stop sets it too (the signal handler),
				       * the pause thread sets it to pause, the loop clears it
				       * before a unit starts; NULL: no controls */
} cl_node_opts;

typedef struct cl_node_stats {
	uint64_t done;     /* results the server accepted */
	uint64_t rejected; /* results the server answered with a rejection */
	uint64_t declined; /* units this client could not compute and gave back */
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

/* Slice i of n of [start, start+count): even slices, the first count % n one index longer, so
 * the slices cover every index exactly once (the split of kern_run's threads and MPI ranks). */
void cl_node_split(uint64_t start, uint64_t count, int n, int i, uint64_t *slice_start,
		   uint64_t *slice_count);

/* Threads for a CPU share: share percent (1..100) of online CPUs, at least 1. */
int cl_node_share_threads(int online, int share);

/* Computes one unit as /work/fetch hands it out. On TS_OK *item is a new pending item:
 * {"report": {"unit_id","result","wall_s"}, "job_id", "start", "count"}, where "report" is the
 * element /work/report takes. Errors (why says which): TS_ERR_NOT_FOUND when the kernel is
 * unknown here, TS_ERR_BAD_REQUEST for a malformed unit or params, TS_ERR_UNAVAILABLE when
 * *cancel was set. cancel and runner (kern_run) may be NULL. */
ts_err cl_node_compute(const json_t *unit, const cl_node_runner *runner, int threads,
		       const volatile int *cancel, json_t **item, char *why, size_t whylen);

#define CL_NODE_DECLINE_MAX 200 /* the API's cap on a report item's "error" */

/* A pending item that gives a unit back: {"report": {"unit_id", "error"}, "job_id", "start",
 * "count"}, error being why (control and non-ASCII bytes replaced by '?', clipped to
 * CL_NODE_DECLINE_MAX characters; "declined" when empty). TS_ERR_BAD_REQUEST when the unit has
 * no usable id (it cannot be given back); TS_ERR_NOMEM. */
ts_err cl_node_decline(const json_t *unit, const char *why, json_t **item);

/* The log line of a pending item and its verdict ("accepted", "rejected: reason"). */
void cl_node_format_item(const json_t *item, const char *verdict, char *out, size_t outlen);

/* Runs the loop until *stop becomes non-zero, then tries once to report what is finished and
 * returns TS_OK. Returns an error with a one-line reason in why when the node cannot go on.
 * stats is filled in either way. */
ts_err cl_node_run(const cl_node_opts *opts, const cl_state_node *node,
		   volatile sig_atomic_t *stop, cl_node_stats *stats, char *why, size_t whylen);

#endif
