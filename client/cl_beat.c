/* cl_beat: a heartbeat thread with its own connection, woken by a condition variable. */
#include "cl_beat.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ts_util.h"

#define BEAT_TIMEOUT_S 15.0 /* one heartbeat never takes longer than this */

struct cl_beat {
	pthread_t tid;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* on CLOCK_MONOTONIC, like ts_mono */
	cl_http *http;     /* used by the thread only */
	double period;
	cl_beat_extra_fn extra; /* NULL, or cleared when the server refuses its fields */
	void *extra_arg;
	/* Guarded by mu. */
	int busy, quit;
	double next; /* ts_mono() of the next beat while busy */
	unsigned long sent, failed;
	/* Read by curl's progress callback in the thread: set to abandon a request in flight. */
	volatile sig_atomic_t abort;
};

ts_err cl_beat_send(cl_http *h, const json_t *rates, const json_t *programs, const json_t *extra,
		    int *status, char *msg, size_t msglen)
{
	int any = rates || programs || extra;
	json_t *body = any ? json_object() : NULL;
	json_t *reply = NULL;
	if (any && (!body || (rates && json_object_set(body, "rates", (json_t *)rates)) ||
		    (programs && json_object_set(body, "programs", (json_t *)programs)) ||
		    (extra && json_object_update(body, (json_t *)extra)))) {
		json_decref(body);
		snprintf(msg, msglen, "out of memory");
		return TS_ERR_NOMEM;
	}
	ts_err e = cl_http_request(h, "POST", "/api/v1/nodes/heartbeat", body, status, &reply, msg,
				   msglen);
	json_decref(body);
	json_decref(reply);
	return e;
}

static void beat_abs_time(double mono, struct timespec *ts)
{
	double whole = (double)(time_t)mono;
	ts->tv_sec = (time_t)mono;
	ts->tv_nsec = (long)((mono - whole) * 1e9);
}

static void *beat_thread(void *arg)
{
	cl_beat *b = arg;
	pthread_mutex_lock(&b->mu);
	while (!b->quit) {
		double now = ts_mono();
		if (!b->busy) {
			pthread_cond_wait(&b->cv, &b->mu);
			continue;
		}
		if (now < b->next) {
			struct timespec until;
			beat_abs_time(b->next, &until);
			pthread_cond_timedwait(&b->cv, &b->mu, &until);
			continue;
		}
		b->next = now + b->period;
		/* The request runs unlocked: cl_beat_busy and cl_beat_stop never wait for it. */
		pthread_mutex_unlock(&b->mu);
		char msg[CL_HTTP_MSG_MAX];
		int status = 0;
		json_t *extra = b->extra ? b->extra(b->extra_arg) : NULL;
		ts_err e = cl_beat_send(b->http, NULL, NULL, extra, &status, msg, sizeof(msg));
		if (e == TS_ERR_BAD_REQUEST && extra) {
			/* A server older than health and pauses: plain beats keep the node alive. */
			fprintf(stderr, "the server refuses the heartbeat's health (%s): sending "
					"heartbeats without it\n", msg);
			b->extra = NULL;
			e = cl_beat_send(b->http, NULL, NULL, NULL, &status, msg, sizeof(msg));
		}
		json_decref(extra);
		if (e && !b->abort)
			fprintf(stderr, "heartbeat failed: %s\n", msg);
		pthread_mutex_lock(&b->mu);
		if (e)
			b->failed++;
		else
			b->sent++;
	}
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

ts_err cl_beat_start(const cl_http_opts *opts, double period_s, cl_beat_extra_fn extra, void *arg,
		     cl_beat **out, char *why, size_t whylen)
{
	ts_err result;
	pthread_condattr_t ca;
	sigset_t all, old;
	cl_beat *b = calloc(1, sizeof(*b));
	*out = NULL;
	if (!b) {
		snprintf(why, whylen, "out of memory");
		return TS_ERR_NOMEM;
	}
	b->period = period_s;
	b->extra = extra;
	b->extra_arg = arg;
	if ((result = cl_http_open(opts, &b->http, why, whylen)) != TS_OK) {
		free(b);
		return result;
	}
	cl_http_set_abort(b->http, &b->abort);
	cl_http_set_timeout(b->http, period_s < BEAT_TIMEOUT_S ? period_s : BEAT_TIMEOUT_S);
	pthread_mutex_init(&b->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->cv, &ca);
	pthread_condattr_destroy(&ca);
	/* Signals go to the main thread, whose handler stops the node. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int rc = pthread_create(&b->tid, NULL, beat_thread, b);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		snprintf(why, whylen, "cannot start the heartbeat thread: %s", strerror(rc));
		pthread_cond_destroy(&b->cv);
		pthread_mutex_destroy(&b->mu);
		cl_http_close(b->http);
		free(b);
		return TS_ERR_INTERNAL;
	}
	*out = b;
	return TS_OK;
}

void cl_beat_busy(cl_beat *b, int busy)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->mu);
	b->busy = busy;
	/* The fetch or report just before counted as contact: the first beat is a period away. */
	b->next = ts_mono() + b->period;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

void cl_beat_now(cl_beat *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->mu);
	b->next = ts_mono();
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

void cl_beat_counts(cl_beat *b, unsigned long *sent, unsigned long *failed)
{
	pthread_mutex_lock(&b->mu);
	*sent = b->sent;
	*failed = b->failed;
	pthread_mutex_unlock(&b->mu);
}

void cl_beat_stop(cl_beat *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->mu);
	b->quit = 1;
	b->abort = 1;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
	pthread_join(b->tid, NULL);
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->mu);
	cl_http_close(b->http);
	free(b);
}
