/* cl_prefs: the volunteer's controls (BOINC's computing preferences) as pure logic: parsing
 * --hours, and deciding from one set of readings whether the node computes, and if not, why.
 *
 * Each reason to pause is a row of one table (battery, hot, hours, busy, in that order of
 * precedence); the decision keeps the set of reasons that held at the last reading, so a
 * reason can end a little below where it began (hysteresis) and the node does not flap. */
#ifndef CL_PREFS_H
#define CL_PREFS_H

#include <stddef.h>

#include "ts_err.h"

/* Why the node does not compute. The names ("hot") are the heartbeat's "paused" values. */
typedef enum cl_prefs_reason {
	CL_PREFS_RUN = 0, /* not paused */
	CL_PREFS_BATTERY,
	CL_PREFS_HOT,
	CL_PREFS_HOURS,
	CL_PREFS_BUSY,
	CL_PREFS__COUNT
} cl_prefs_reason;

#define CL_PREFS_TEMP_HYST_C 5.0   /* a hot node resumes this many degrees below --max-temp */
#define CL_PREFS_BUSY_HYST_PCT 5.0 /* ... a busy one this many points below --pause-when-busy */

typedef struct cl_prefs {
	double busy_pct;    /* pause while other processes use more than this % of the CPUs; 0: off */
	double max_temp_c;  /* pause above this temperature; 0: off */
	int hours_from;     /* compute only from this minute of the (local) day ... */
	int hours_to;       /* ... up to this one (exclusive; may be below from: past midnight);
			     * from == to: always */
	int run_on_battery; /* 0: pause while the machine runs on its battery */
} cl_prefs;

/* What the machine says now. */
typedef struct cl_prefs_reading {
	double other_pct; /* CPU share other processes used lately (0..100); < 0: unknown */
	int has_temp;     /* temp_c holds a reading */
	double temp_c;
	int on_battery;
	int minute; /* local minute of the day, 0..1439 */
} cl_prefs_reading;

/* The defaults: no limits but the battery. */
void cl_prefs_init(cl_prefs *p);

/* Parses "HH:MM-HH:MM" (local time; 00:00..23:59, the end may be 24:00) into minutes of the day.
 * A window that ends before it starts runs past midnight ("22:00-07:00"). On an error why says
 * what is wrong and TS_ERR_BAD_REQUEST is returned. */
ts_err cl_prefs_parse_hours(const char *s, int *from, int *to, char *why, size_t whylen);

/* The reasons (bit 1 << reason) that hold for reading, given those that held before (held).
 * Unknown readings hold no reason: a sensor that disappears does not stop the node. */
unsigned cl_prefs_decide(const cl_prefs *p, const cl_prefs_reading *r, unsigned held);

/* The reason a set of reasons shows: the first in order of precedence, or CL_PREFS_RUN. */
cl_prefs_reason cl_prefs_reason_of(unsigned held);

/* "busy", "hot", "hours", "battery"; NULL for CL_PREFS_RUN. */
const char *cl_prefs_reason_name(cl_prefs_reason reason);

/* What the log says on a pause: "busy (other processes 87% > 50%)". */
void cl_prefs_describe(cl_prefs_reason reason, const cl_prefs *p, const cl_prefs_reading *r,
		       char *out, size_t outlen);

#endif
