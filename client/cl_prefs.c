/* cl_prefs: parse and decide; one table row per reason to pause. */
#include "cl_prefs.h"

#include <stdio.h>
#include <string.h>

#include "ts_util.h"

#define MINUTES_PER_DAY (24 * 60)

void cl_prefs_init(cl_prefs *p)
{
	memset(p, 0, sizeof(*p));
}

/* "HH:MM" at s, exactly five characters: 0 and the minute of the day, or -1. */
static int hours_clock(const char *s, int allow_24, int *minute)
{
	if (strlen(s) != 5 || s[2] != ':')
		return -1;
	for (int i = 0; i < 5; i++)
		if (i != 2 && (s[i] < '0' || s[i] > '9'))
			return -1;
	int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
	if (m > 59 || h > 24 || (h == 24 && (!allow_24 || m != 0)))
		return -1;
	*minute = h * 60 + m;
	return 0;
}

ts_err cl_prefs_parse_hours(const char *s, int *from, int *to, char *why, size_t whylen)
{
	char a[8], b[8];
	const char *dash = s ? strchr(s, '-') : NULL;
	if (!dash || dash - s > 5 || strlen(dash + 1) > 5) {
		snprintf(why, whylen, "--hours must be HH:MM-HH:MM (e.g. 22:00-07:00), not '%.40s'",
			 s ? s : "");
		return TS_ERR_BAD_REQUEST;
	}
	memcpy(a, s, (size_t)(dash - s));
	a[dash - s] = '\0';
	snprintf(b, sizeof(b), "%s", dash + 1);
	if (hours_clock(a, 0, from) || hours_clock(b, 1, to)) {
		snprintf(why, whylen, "--hours must be HH:MM-HH:MM with hours 00..23 and minutes "
				      "00..59 (the end may be 24:00), not '%.40s'", s);
		return TS_ERR_BAD_REQUEST;
	}
	if (*to == MINUTES_PER_DAY)
		*to = 0;
	if (*from == *to) {
		snprintf(why, whylen, "--hours '%.40s' is empty: the start and end must differ "
				      "(leave --hours out to compute at any time)", s);
		return TS_ERR_BAD_REQUEST;
	}
	return TS_OK;
}

static int rule_battery(const cl_prefs *p, const cl_prefs_reading *r, int held)
{
	(void)held;
	return !p->run_on_battery && r->on_battery;
}

static int rule_hot(const cl_prefs *p, const cl_prefs_reading *r, int held)
{
	if (p->max_temp_c <= 0 || !r->has_temp)
		return 0;
	return r->temp_c > p->max_temp_c - (held ? CL_PREFS_TEMP_HYST_C : 0);
}

static int rule_hours(const cl_prefs *p, const cl_prefs_reading *r, int held)
{
	(void)held;
	int from = p->hours_from, to = p->hours_to, m = r->minute;
	if (from == to)
		return 0;
	int inside = from < to ? m >= from && m < to : m >= from || m < to;
	return !inside;
}

static int rule_busy(const cl_prefs *p, const cl_prefs_reading *r, int held)
{
	if (p->busy_pct <= 0 || r->other_pct < 0)
		return 0;
	/* A low limit keeps half of itself as the margin, so it can still end. */
	double margin = p->busy_pct > 2 * CL_PREFS_BUSY_HYST_PCT ? CL_PREFS_BUSY_HYST_PCT : p->busy_pct / 2;
	return r->other_pct > p->busy_pct - (held ? margin : 0);
}

static void why_battery(const cl_prefs *p, const cl_prefs_reading *r, char *out, size_t len)
{
	(void)p;
	(void)r;
	snprintf(out, len, "battery (on battery power; --run-on-battery computes anyway)");
}

static void why_hot(const cl_prefs *p, const cl_prefs_reading *r, char *out, size_t len)
{
	snprintf(out, len, "hot (CPU %.1f C > %g C; resumes at %g C)", r->temp_c, p->max_temp_c,
		 p->max_temp_c - CL_PREFS_TEMP_HYST_C);
}

static void why_hours(const cl_prefs *p, const cl_prefs_reading *r, char *out, size_t len)
{
	snprintf(out, len, "hours (%02d:%02d is outside %02d:%02d-%02d:%02d)", r->minute / 60,
		 r->minute % 60, p->hours_from / 60, p->hours_from % 60, p->hours_to / 60,
		 p->hours_to % 60);
}

static void why_busy(const cl_prefs *p, const cl_prefs_reading *r, char *out, size_t len)
{
	snprintf(out, len, "busy (other processes %.0f%% > %g%%)", r->other_pct, p->busy_pct);
}

/* In order of precedence: what the node shows when several hold. */
static const struct prefs_rule {
	cl_prefs_reason reason;
	const char *name;
	int (*holds)(const cl_prefs *p, const cl_prefs_reading *r, int held);
	void (*why)(const cl_prefs *p, const cl_prefs_reading *r, char *out, size_t len);
} prefs_rules[] = {
	{CL_PREFS_BATTERY, "battery", rule_battery, why_battery},
	{CL_PREFS_HOT, "hot", rule_hot, why_hot},
	{CL_PREFS_HOURS, "hours", rule_hours, why_hours},
	{CL_PREFS_BUSY, "busy", rule_busy, why_busy},
};
_Static_assert(TS_ARRAY_LEN(prefs_rules) == CL_PREFS__COUNT - 1, "a row per reason");

unsigned cl_prefs_decide(const cl_prefs *p, const cl_prefs_reading *r, unsigned held)
{
	unsigned now = 0;
	for (size_t i = 0; i < TS_ARRAY_LEN(prefs_rules); i++) {
		unsigned bit = 1u << prefs_rules[i].reason;
		if (prefs_rules[i].holds(p, r, (held & bit) != 0))
			now |= bit;
	}
	return now;
}

cl_prefs_reason cl_prefs_reason_of(unsigned held)
{
	for (size_t i = 0; i < TS_ARRAY_LEN(prefs_rules); i++)
		if (held & (1u << prefs_rules[i].reason))
			return prefs_rules[i].reason;
	return CL_PREFS_RUN;
}

static const struct prefs_rule *prefs_rule(cl_prefs_reason reason)
{
	for (size_t i = 0; i < TS_ARRAY_LEN(prefs_rules); i++)
		if (prefs_rules[i].reason == reason)
			return &prefs_rules[i];
	return NULL;
}

const char *cl_prefs_reason_name(cl_prefs_reason reason)
{
	const struct prefs_rule *rule = prefs_rule(reason);
	return rule ? rule->name : NULL;
}

void cl_prefs_describe(cl_prefs_reason reason, const cl_prefs *p, const cl_prefs_reading *r,
		       char *out, size_t outlen)
{
	const struct prefs_rule *rule = prefs_rule(reason);
	if (rule)
		rule->why(p, r, out, outlen);
	else
		snprintf(out, outlen, "running");
}
