/* cl_pause: a reading a second, a decision, a log line on each change. */
#include "cl_pause.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cl_sys.h"
#include "ts_util.h"

struct cl_pause {
	cl_prefs prefs;
	volatile sig_atomic_t *halt;
	FILE *log;
	pthread_t tid;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* on CLOCK_MONOTONIC: a change of reason, or quit */
	/* The thread's own. */
	cl_sys_cpu cpu;
	double self_s;
	int have_cpu, told_no_temp, told_no_cpu;
	/* Guarded by mu. */
	unsigned held; /* reasons that held at the last reading */
	int quit;
};

int cl_pause_wanted(const cl_prefs *p)
{
	return p->busy_pct > 0 || p->max_temp_c > 0 || p->hours_from != p->hours_to ||
	       !p->run_on_battery;
}

static void pause_log(cl_pause *pz, const char *fmt, const char *arg)
{
	if (!pz->log)
		return;
	fprintf(pz->log, fmt, arg);
	fflush(pz->log);
}

/* One reading of what the controls that are on need. */
static void pause_read(cl_pause *pz, cl_prefs_reading *r)
{
	const cl_prefs *p = &pz->prefs;
	memset(r, 0, sizeof(*r));
	r->other_pct = -1;
	if (p->busy_pct > 0) {
		cl_sys_cpu now;
		double self = cl_sys_self_cpu_s();
		if (cl_sys_cpu_read(&now) == TS_OK) {
			if (pz->have_cpu)
				r->other_pct = cl_sys_other_pct(&pz->cpu, &now, self - pz->self_s, cl_sys_hz());
			pz->cpu = now;
			pz->self_s = self;
			pz->have_cpu = 1;
		} else if (!pz->told_no_cpu) {
			pz->told_no_cpu = 1;
			pause_log(pz, "%s", "cannot read /proc/stat: --pause-when-busy is off\n");
		}
	}
	if (p->max_temp_c > 0) {
		r->has_temp = cl_sys_temp(&r->temp_c) == TS_OK;
		if (!r->has_temp && !pz->told_no_temp) {
			pz->told_no_temp = 1;
			pause_log(pz, "%s", "no thermal zone in /sys/class/thermal: --max-temp is off\n");
		}
	}
	if (!p->run_on_battery)
		cl_sys_on_battery(&r->on_battery);
	time_t t = time(NULL);
	struct tm tm;
	if (localtime_r(&t, &tm))
		r->minute = tm.tm_hour * 60 + tm.tm_min;
}

/* Reads, decides, and on a change of reason logs it and halts or wakes the node. */
static void pause_tick(cl_pause *pz)
{
	cl_prefs_reading r;
	pause_read(pz, &r);
	pthread_mutex_lock(&pz->mu);
	unsigned was = pz->held, now = cl_prefs_decide(&pz->prefs, &r, was);
	cl_prefs_reason before = cl_prefs_reason_of(was), after = cl_prefs_reason_of(now);
	pz->held = now;
	if (after != before)
		pthread_cond_broadcast(&pz->cv);
	pthread_mutex_unlock(&pz->mu);
	if (after == before)
		return;
	if (after == CL_PREFS_RUN) {
		pause_log(pz, "%s", "resumed\n");
		return;
	}
	/* After the reason is published: the node clears *halt, then reads the reason. */
	if (pz->halt)
		__atomic_store_n(pz->halt, 1, __ATOMIC_SEQ_CST);
	char text[160];
	cl_prefs_describe(after, &pz->prefs, &r, text, sizeof(text));
	pause_log(pz, "paused: %s\n", text);
}

static void abs_time(double mono, struct timespec *ts)
{
	ts->tv_sec = (time_t)mono;
	ts->tv_nsec = (long)((mono - (double)(time_t)mono) * 1e9);
}

static void *pause_thread(void *arg)
{
	cl_pause *pz = arg;
	double next = ts_mono() + CL_PAUSE_PERIOD_S;
	pthread_mutex_lock(&pz->mu);
	while (!pz->quit) {
		if (ts_mono() < next) {
			struct timespec until;
			abs_time(next, &until);
			pthread_cond_timedwait(&pz->cv, &pz->mu, &until);
			continue;
		}
		next += CL_PAUSE_PERIOD_S;
		if (next < ts_mono())
			next = ts_mono() + CL_PAUSE_PERIOD_S; /* a suspended machine: no burst of ticks */
		pthread_mutex_unlock(&pz->mu);
		pause_tick(pz);
		pthread_mutex_lock(&pz->mu);
	}
	pthread_mutex_unlock(&pz->mu);
	return NULL;
}

ts_err cl_pause_start(const cl_prefs *p, volatile sig_atomic_t *halt, FILE *log, cl_pause **out,
		      char *why, size_t whylen)
{
	pthread_condattr_t ca;
	sigset_t all, old;
	cl_pause *pz = calloc(1, sizeof(*pz));
	*out = NULL;
	if (!pz) {
		snprintf(why, whylen, "out of memory");
		return TS_ERR_NOMEM;
	}
	pz->prefs = *p;
	pz->halt = halt;
	pz->log = log;
	pthread_mutex_init(&pz->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&pz->cv, &ca);
	pthread_condattr_destroy(&ca);
	pause_tick(pz);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int rc = pthread_create(&pz->tid, NULL, pause_thread, pz);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		snprintf(why, whylen, "cannot start the pause thread: %s", strerror(rc));
		pthread_cond_destroy(&pz->cv);
		pthread_mutex_destroy(&pz->mu);
		free(pz);
		return TS_ERR_INTERNAL;
	}
	*out = pz;
	return TS_OK;
}

cl_prefs_reason cl_pause_reason(cl_pause *pz)
{
	if (!pz)
		return CL_PREFS_RUN;
	pthread_mutex_lock(&pz->mu);
	cl_prefs_reason r = cl_prefs_reason_of(pz->held);
	pthread_mutex_unlock(&pz->mu);
	return r;
}

cl_prefs_reason cl_pause_wait(cl_pause *pz, double max_s)
{
	if (!pz)
		return CL_PREFS_RUN;
	struct timespec until;
	abs_time(ts_mono() + max_s, &until);
	pthread_mutex_lock(&pz->mu);
	if (cl_prefs_reason_of(pz->held) != CL_PREFS_RUN && !pz->quit)
		pthread_cond_timedwait(&pz->cv, &pz->mu, &until);
	cl_prefs_reason r = cl_prefs_reason_of(pz->held);
	pthread_mutex_unlock(&pz->mu);
	return r;
}

void cl_pause_stop(cl_pause *pz)
{
	if (!pz)
		return;
	pthread_mutex_lock(&pz->mu);
	pz->quit = 1;
	pthread_cond_broadcast(&pz->cv);
	pthread_mutex_unlock(&pz->mu);
	pthread_join(pz->tid, NULL);
	pthread_cond_destroy(&pz->cv);
	pthread_mutex_destroy(&pz->mu);
	free(pz);
}
