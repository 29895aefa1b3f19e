/* cl_watch: watching a job until it ends, for `tessera wait` and `tessera run`.
 *
 * The watch polls GET /api/v1/jobs/{id} twice a second and shows the job on stderr: on a
 * terminal one line rewritten in place, otherwise a line every 5 s and one at the end. A
 * transient failure (no answer, 5xx, 429) is said once and retried, slower; the job goes on
 * without us. For the CLI's main thread only. */
#ifndef CL_WATCH_H
#define CL_WATCH_H

#include <signal.h>
#include <stdint.h>

#include <jansson.h>

#include "cl_http.h"
#include "cl_state.h"

typedef enum cl_watch_style {
	CL_WATCH_BAR,   /* "[#####.....]  45.0%  90/200 units  12.3 s" */
	CL_WATCH_STATE, /* "job 12: running on pi-1  12.3 s" (one-unit jobs) */
} cl_watch_style;

typedef struct cl_watch {
	/* in */
	cl_watch_style style;
	double timeout_s; /* give up after this long; 0: never */
	/* out */
	double elapsed_s;  /* from the first poll until the one that saw the job end */
	int watched_start; /* the first poll saw the job queued, or with no unit done */
} cl_watch;

/* Installs SIGINT and SIGTERM handlers that set the flag returned, for cl_http_set_abort and
 * cl_watch_job: an interrupted watch ends within about a second. */
const volatile sig_atomic_t *cl_watch_catch_signals(void);

/* Whether the state is final: done, failed or cancelled. */
int cl_watch_finished(const char *state);

/* Watches job id until it ends. Returns 0 with the final job in *job (a new reference);
 * 1 when interrupted or timed out (said on stderr, *job holds the last one seen or NULL);
 * -1 when a request failed for good (said on stderr). */
int cl_watch_job(cl_watch *w, const cl_state_config *cfg, cl_http *http, int64_t id, json_t **job);

#endif
