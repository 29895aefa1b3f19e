/* cl_beat: the node's heartbeat, so that units longer than the server's node timeout are not
 * taken away while they compute.
 *
 * A thread of its own with its own connection (libcurl handles are not shared across threads)
 * sends POST /nodes/heartbeat every period while the node says it is busy; the compute never
 * waits for it. Failures are logged and retried at the next period, never fatal: the main loop
 * finds out about a revoked node or a lost server on its own requests. */
#ifndef CL_BEAT_H
#define CL_BEAT_H

#include <stddef.h>

#include <jansson.h>

#include "cl_http.h"
#include "ts_err.h"

#define CL_BEAT_DEFAULT_S 30
#define CL_BEAT_MIN_S 1
#define CL_BEAT_MAX_S 3600

typedef struct cl_beat cl_beat;

/* One heartbeat on h, with rates ({"kernel": indices/s}) and programs (what the node runs, or
 * JSON null for none) when not NULL, and the fields of extra (an object: "health", "paused")
 * when not NULL. On failure msg says why and *status is the HTTP status (0: no answer). */
ts_err cl_beat_send(cl_http *h, const json_t *rates, const json_t *programs, const json_t *extra,
		    int *status, char *msg, size_t msglen);

/* What each beat of the thread carries besides liveness: a new object of fields, or NULL for
 * none. Called on the heartbeat thread. */
typedef json_t *(*cl_beat_extra_fn)(void *arg);

/* Starts the thread, connected like opts (its own handle), beating every period_s seconds
 * while busy, each beat with extra(arg)'s fields when extra is not NULL (a server that refuses
 * them, 400, gets beats without them from then on, said once); failures go to stderr. On
 * failure *out is NULL and why says why. */
ts_err cl_beat_start(const cl_http_opts *opts, double period_s, cl_beat_extra_fn extra, void *arg,
		     cl_beat **out, char *why, size_t whylen);
/* Busy from now on (the first beat comes a period from now), or idle. */
void cl_beat_busy(cl_beat *b, int busy);
/* The next beat now (the node's pause changed: the server should know without a period's
 * delay), when busy. NULL is fine. */
void cl_beat_now(cl_beat *b);
/* Heartbeats sent and failed so far. */
void cl_beat_counts(cl_beat *b, unsigned long *sent, unsigned long *failed);
/* Stops the thread within about a second (a request in flight is abandoned) and frees b.
 * NULL is fine. */
void cl_beat_stop(cl_beat *b);

#endif
