/* cl_pause: the thread that applies the volunteer's controls (cl_prefs) to a running node.
 *
 * Once a second it reads the machine (cl_sys) and decides; on a pause it logs why
 * ("paused: hot (CPU 85.0 C > 80 C; ...)") and sets *halt, the flag the unit's compute threads
 * check, so they stop within milliseconds; on a resume it logs "resumed" and wakes
 * cl_pause_wait. It never clears *halt: the node does, before it starts a unit again. The
 * thread holds no lock the compute needs and blocks every signal. */
#ifndef CL_PAUSE_H
#define CL_PAUSE_H

#include <signal.h>
#include <stddef.h>
#include <stdio.h>

#include "cl_prefs.h"
#include "ts_err.h"

#define CL_PAUSE_PERIOD_S 1.0 /* how often the machine is read */

typedef struct cl_pause cl_pause;

/* Whether p asks for anything to watch (else no thread is needed). */
int cl_pause_wanted(const cl_prefs *p);

/* Takes a first reading now (so a node outside its hours does not start a unit), then starts
 * the thread. log (may be NULL) gets the pause and resume lines and, once, a line for a control
 * this machine cannot apply (no thermal zone, no /proc/stat). On failure *out is NULL. */
ts_err cl_pause_start(const cl_prefs *p, volatile sig_atomic_t *halt, FILE *log, cl_pause **out,
		      char *why, size_t whylen);
/* Why the node is paused now, or CL_PREFS_RUN; NULL is never paused. */
cl_prefs_reason cl_pause_reason(cl_pause *pz);
/* Waits while paused, at most max_s seconds; returns the reason at the end. */
cl_prefs_reason cl_pause_wait(cl_pause *pz, double max_s);
/* Stops the thread (within a period) and frees pz. NULL is fine. */
void cl_pause_stop(cl_pause *pz);

#endif
