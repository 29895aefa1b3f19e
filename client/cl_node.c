/* cl_node: fetch -> compute -> report, with pending results that survive restarts. */
#include "cl_node.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cl_beat.h"
#include "ts_util.h"

#define BACKOFF_FIRST_S 0.5
#define BACKOFF_MAX_S 30.0
#define RETRY_AFTER_MAX_S 60.0 /* a server's Retry-After is followed up to this */
#define NO_WORK_MIN_S 0.2
#define NO_WORK_MAX_S 30.0
#define FINAL_REPORT_TIMEOUT_S 10.0 /* the one report tried on the way out */

struct node_ctx {
	const cl_node_opts *o;
	const cl_state_node *node;
	volatile sig_atomic_t *stop;
	cl_http *http;
	cl_beat *beat;   /* NULL: no heartbeat */
	json_t *pending; /* array of pending items, oldest first */
	cl_node_backoff backoff;
	cl_node_backoff idle; /* rounds in which nothing could be computed */
	cl_node_stats *stats;
	char *why;
	size_t whylen;
};

/* What to do about a failed request. */
enum node_fail {
	FAIL_RETRY,   /* transport trouble or a 5xx/429: wait and try again */
	FAIL_REFUSED, /* the server answered with a 4xx about the request itself */
	FAIL_FATAL    /* the node may not go on: revoked, or the server's key changed */
};

double cl_node_backoff_next(cl_node_backoff *b, double u)
{
	b->base = b->base <= 0 ? BACKOFF_FIRST_S : b->base * 2;
	if (b->base > BACKOFF_MAX_S)
		b->base = BACKOFF_MAX_S;
	/* Jitter spreads the retries of many nodes that lost the same server at once. */
	return b->base * (0.75 + 0.5 * u);
}

static double node_uniform(void)
{
	uint32_t x = 0;
	if (ts_random(&x, sizeof(x)) != TS_OK)
		x = (uint32_t)rand();
	return (double)x / 4294967296.0;
}

/* Sleeps in short slices so that a signal ends the wait promptly whatever the race. */
static void node_sleep(struct node_ctx *c, double seconds)
{
	double until = ts_mono() + seconds;
	while (!*c->stop) {
		double left = until - ts_mono();
		if (left <= 0)
			break;
		if (left > 0.1)
			left = 0.1;
		struct timespec ts = {0, (long)(left * 1e9)};
		nanosleep(&ts, NULL);
	}
}

static enum node_fail node_classify(ts_err e, int status)
{
	if (status == 0) /* no HTTP answer */
		return e == TS_ERR_PIN || e == TS_ERR_TLS ? FAIL_FATAL : FAIL_RETRY;
	if (status == 401 || status == 403)
		return FAIL_FATAL;
	if (status >= 500 || status == 429 || status < 400)
		return FAIL_RETRY;
	return FAIL_REFUSED;
}

static void node_fatal(struct node_ctx *c, ts_err e, int status, const char *msg)
{
	if (e == TS_ERR_PIN)
		snprintf(c->why, c->whylen,
			 "server key does not match the pin this node enrolled with: refusing to talk "
			 "to %s (re-enroll if the server's key really changed)",
			 c->node->url);
	else if (status == 401 || status == 403)
		snprintf(c->why, c->whylen, "node %" PRId64 " is disabled or revoked: %s",
			 c->node->node_id, msg);
	else
		snprintf(c->why, c->whylen, "%s", msg);
}

static void node_wait_retry(struct node_ctx *c, const char *what, const char *msg)
{
	double delay = cl_node_backoff_next(&c->backoff, node_uniform());
	/* The server's own word on when to come back (429, 503), within reason. */
	double asked = cl_http_retry_after(c->http) * (1.0 + 0.25 * node_uniform());
	if (asked > delay)
		delay = asked < RETRY_AFTER_MAX_S ? asked : RETRY_AFTER_MAX_S;
	fprintf(stderr, "%s failed: %s; retrying in %.1f s\n", what, msg, delay);
	node_sleep(c, delay);
}

static ts_err unit_get_u64(const json_t *unit, const char *key, uint64_t *out)
{
	json_t *v = json_object_get(unit, key);
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return TS_ERR_BAD_REQUEST;
	*out = (uint64_t)json_integer_value(v);
	return TS_OK;
}

void cl_node_split(uint64_t start, uint64_t count, int n, int i, uint64_t *slice_start,
		   uint64_t *slice_count)
{
	uint64_t base = count / (uint64_t)n, extra = count % (uint64_t)n, idx = (uint64_t)i;
	*slice_start = start + idx * base + (idx < extra ? idx : extra);
	*slice_count = base + (idx < extra);
}

int cl_node_share_threads(int online, int share)
{
	int n = (int)((long)online * share / 100);
	return n > 0 ? n : 1;
}

ts_err cl_node_compute(const json_t *unit, const cl_node_runner *runner, int threads,
		       const volatile int *cancel, json_t **item, char *why, size_t whylen)
{
	uint64_t id = 0, job = 0, start = 0, count = 0;
	const char *kname = json_string_value(json_object_get(unit, "kernel"));
	const json_t *params = json_object_get(unit, "params");
	char pwhy[256] = "";
	kern_args args;
	kern_partial part;
	*item = NULL;
	if (!json_is_object(unit) || unit_get_u64(unit, "id", &id) || id == 0 ||
	    unit_get_u64(unit, "job_id", &job) || unit_get_u64(unit, "start", &start) ||
	    unit_get_u64(unit, "count", &count) || count == 0 || start + count < start || !kname ||
	    !json_is_object(params)) {
		snprintf(why, whylen, "malformed unit from the server");
		return TS_ERR_BAD_REQUEST;
	}
	const kern *k = kern_find(kname);
	if (!k) {
		snprintf(why, whylen, "unknown kernel '%.64s'", kname);
		return TS_ERR_NOT_FOUND;
	}
	if (k->parse(params, &args, pwhy, sizeof(pwhy)) != TS_OK) {
		snprintf(why, whylen, "bad params for %s: %s", k->name, pwhy);
		return TS_ERR_BAD_REQUEST;
	}
	if (start + count > args.space) {
		snprintf(why, whylen, "range [%" PRIu64 ",%" PRIu64 ") is outside the job", start,
			 start + count);
		return TS_ERR_BAD_REQUEST;
	}
	double t0 = ts_mono();
	ts_err result = runner ? runner->run(runner->arg, k, params, &args, start, count, threads,
					     &part, cancel)
			       : kern_run(k, &args, start, count, threads, &part, cancel);
	double wall = ts_mono() - t0;
	if (result == TS_ERR_UNAVAILABLE && cancel && *cancel) {
		snprintf(why, whylen, "cancelled");
		return result;
	}
	if (result) {
		snprintf(why, whylen, "%s failed: %s", k->name, ts_strerror(result));
		return result;
	}
	*item = json_pack("{s:{s:I,s:o,s:f},s:I,s:I,s:I}", "report", "unit_id", (json_int_t)id,
			  "result", k->partial_to_json(&part), "wall_s", wall, "job_id",
			  (json_int_t)job, "start", (json_int_t)start, "count", (json_int_t)count);
	if (!*item) {
		snprintf(why, whylen, "out of memory");
		return TS_ERR_NOMEM;
	}
	return TS_OK;
}

ts_err cl_node_decline(const json_t *unit, const char *why, json_t **item)
{
	char error[CL_NODE_DECLINE_MAX + 1];
	uint64_t id = 0, job = 0, start = 0, count = 0;
	size_t n = 0;
	*item = NULL;
	if (unit_get_u64(unit, "id", &id) || id == 0 || id > INT64_MAX)
		return TS_ERR_BAD_REQUEST;
	/* The rest only labels the log line: a malformed unit is declined all the same. */
	unit_get_u64(unit, "job_id", &job);
	unit_get_u64(unit, "start", &start);
	unit_get_u64(unit, "count", &count);
	/* ASCII only: the reason may quote the server's own strings, cut anywhere. */
	for (; why && why[n] && n < CL_NODE_DECLINE_MAX; n++)
		error[n] = why[n] >= ' ' && why[n] < 0x7f ? why[n] : '?';
	error[n] = '\0';
	*item = json_pack("{s:{s:I,s:s},s:I,s:I,s:I}", "report", "unit_id", (json_int_t)id, "error",
			  n ? error : "declined", "job_id", (json_int_t)job, "start",
			  (json_int_t)start, "count", (json_int_t)count);
	return *item ? TS_OK : TS_ERR_NOMEM;
}

void cl_node_format_item(const json_t *item, const char *verdict, char *out, size_t outlen)
{
	const json_t *report = json_object_get(item, "report");
	const json_t *result = json_object_get(report, "result");
	const char *error = json_string_value(json_object_get(report, "error"));
	json_int_t start = json_integer_value(json_object_get(item, "start"));
	json_int_t count = json_integer_value(json_object_get(item, "count"));
	char parts[256] = "";
	size_t used = 0;
	const char *key;
	json_t *v;
	if (error) {
		snprintf(out, outlen, "unit %" JSON_INTEGER_FORMAT " job %" JSON_INTEGER_FORMAT
				      " [%" JSON_INTEGER_FORMAT ",%" JSON_INTEGER_FORMAT ") declined (%s): %s",
			 json_integer_value(json_object_get(report, "unit_id")),
			 json_integer_value(json_object_get(item, "job_id")), start, start + count,
			 error, verdict);
		return;
	}
	/* The partial as key=value pairs: short, and right for any kernel's wire form. */
	json_object_foreach((json_t *)result, key, v) {
		char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		int n = snprintf(parts + used, sizeof(parts) - used, "%s%s=%s", used ? " " : "", key,
				 text ? text : "?");
		free(text);
		if (n < 0 || (size_t)n >= sizeof(parts) - used)
			break;
		used += (size_t)n;
	}
	snprintf(out, outlen, "unit %" JSON_INTEGER_FORMAT " job %" JSON_INTEGER_FORMAT
			      " [%" JSON_INTEGER_FORMAT ",%" JSON_INTEGER_FORMAT ") %s in %.2f s: %s",
		 json_integer_value(json_object_get(report, "unit_id")),
		 json_integer_value(json_object_get(item, "job_id")), start, start + count, parts,
		 json_number_value(json_object_get(report, "wall_s")), verdict);
}

/* The server's verdict on one unit of a report reply; NULL when it gave none. */
static const char *node_verdict(const json_t *reply, json_int_t unit_id, char *buf, size_t len)
{
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(reply, "accepted"), i, v)
		if (json_integer_value(v) == unit_id)
			return "accepted";
	json_array_foreach(json_object_get(reply, "rejected"), i, v) {
		if (json_integer_value(json_object_get(v, "unit_id")) != unit_id)
			continue;
		const char *reason = json_string_value(json_object_get(v, "reason"));
		snprintf(buf, len, "rejected (%s)", reason ? reason : "no reason given");
		return buf;
	}
	return NULL;
}

static ts_err node_save_pending(struct node_ctx *c)
{
	if (json_array_size(c->pending) == 0)
		return cl_state_pending_clear(c->o->state_dir, c->why, c->whylen);
	return cl_state_pending_save(c->o->state_dir, c->pending, c->why, c->whylen);
}

/* Logs the answer for the first n pending items and drops them. reply NULL: refused whole. */
static void node_settle(struct node_ctx *c, size_t n, const json_t *reply, const char *refusal)
{
	for (size_t i = 0; i < n; i++) {
		json_t *item = json_array_get(c->pending, i);
		const json_t *report = json_object_get(item, "report");
		json_int_t id = json_integer_value(json_object_get(report, "unit_id"));
		int declined = json_object_get(report, "error") != NULL;
		char buf[256], line[640];
		const char *verdict = reply ? node_verdict(reply, id, buf, sizeof(buf)) : refusal;
		if (!verdict)
			verdict = "answered without a verdict";
		if (strcmp(verdict, "accepted") != 0) {
			c->stats->rejected++;
		} else if (declined) {
			c->stats->declined++;
			verdict = "given back";
		} else {
			c->stats->done++;
		}
		if (c->o->log) {
			cl_node_format_item(item, verdict, line, sizeof(line));
			fprintf(c->o->log, "%s\n", line);
		}
	}
	if (c->o->log)
		fflush(c->o->log);
	for (size_t i = 0; i < n; i++)
		json_array_remove(c->pending, 0);
}

/* Drops the declines among the first n pending items after a server refused their report
 * whole: one that does not take "error" items. Their leases then end on their own, as before
 * there were declines. Returns how many were dropped. */
static size_t node_drop_declines(struct node_ctx *c, size_t n, const char *msg)
{
	size_t dropped = 0;
	for (size_t i = n; i-- > 0;) {
		json_t *item = json_array_get(c->pending, i);
		if (!json_object_get(json_object_get(item, "report"), "error"))
			continue;
		if (c->o->log) {
			char line[640], verdict[CL_HTTP_MSG_MAX + 64];
			snprintf(verdict, sizeof(verdict), "not given back, the server refused it (%s)", msg);
			cl_node_format_item(item, verdict, line, sizeof(line));
			fprintf(c->o->log, "%s\n", line);
		}
		json_array_remove(c->pending, i);
		c->stats->declined++;
		dropped++;
	}
	return dropped;
}

/* Reports every pending item, 64 at a time, until the server has answered each. With retry 0
 * a transport failure returns TS_ERR_NETWORK at once (the items stay pending). */
static ts_err node_report(struct node_ctx *c, int retry)
{
	ts_err result = TS_OK;
	json_t *body = NULL, *reply = NULL;
	char msg[CL_HTTP_MSG_MAX];
	while (json_array_size(c->pending) > 0) {
		size_t n = json_array_size(c->pending);
		if (n > CL_NODE_MAX_UNITS)
			n = CL_NODE_MAX_UNITS;
		json_t *results = json_array();
		body = json_pack("{s:o}", "results", results);
		if (!body) {
			snprintf(c->why, c->whylen, "out of memory");
			result = TS_ERR_NOMEM;
			goto out;
		}
		for (size_t i = 0; i < n; i++)
			json_array_append(results,
					  json_object_get(json_array_get(c->pending, i), "report"));
		for (;;) {
			int status = 0;
			result = cl_http_request(c->http, "POST", "/api/v1/work/report", body, &status,
						 &reply, msg, sizeof(msg));
			if (result == TS_OK) {
				cl_node_backoff_reset(&c->backoff);
				node_settle(c, n, reply, NULL);
				break;
			}
			enum node_fail f = node_classify(result, status);
			if (f == FAIL_FATAL) {
				node_fatal(c, result, status, msg);
				goto out;
			}
			if (f == FAIL_REFUSED && node_drop_declines(c, n, msg) > 0) {
				/* An older server: the results go again, without the declines. */
				result = TS_OK;
				break;
			}
			if (f == FAIL_REFUSED) {
				/* Answered: retrying the same body would get the same answer. */
				char why[CL_HTTP_MSG_MAX + 32];
				snprintf(why, sizeof(why), "refused (%s)", msg);
				fprintf(stderr, "server refused a report of %zu results: %s\n", n, msg);
				node_settle(c, n, NULL, why);
				result = TS_OK;
				break;
			}
			if (!retry || *c->stop) {
				snprintf(c->why, c->whylen, "%s", msg);
				goto out;
			}
			node_wait_retry(c, "report", msg);
		}
		json_decref(body);
		json_decref(reply);
		body = reply = NULL;
		if ((result = node_save_pending(c)) != TS_OK)
			goto out;
	}
out:
	json_decref(body);
	json_decref(reply);
	return result;
}

/* Computes the units of one fetch reply into pending, and declines there the ones it cannot
 * compute; returns how many were computed. *added counts the pending items added. */
static size_t node_compute_all(struct node_ctx *c, const json_t *units, size_t *added)
{
	size_t i, computed = 0;
	*added = 0;
	json_t *unit;
	/* Busy for the whole batch: the fetch was the last contact, the report is the next. */
	cl_beat_busy(c->beat, 1);
	json_array_foreach(units, i, unit) {
		char why[256];
		json_t *item = NULL;
		if (*c->stop)
			break;
		double t0 = ts_mono();
		ts_err e = cl_node_compute(unit, c->o->runner, c->o->threads,
					   (const volatile int *)c->stop, &item, why, sizeof(why));
		if (e == TS_OK && c->o->max_rate > 0) {
			double count = (double)json_integer_value(json_object_get(unit, "count"));
			node_sleep(c, t0 + count / c->o->max_rate - ts_mono());
			if (*c->stop) { /* held, not done: the lease comes back on restart */
				json_decref(item);
				item = NULL;
				e = TS_ERR_UNAVAILABLE;
			}
		}
		if (e == TS_ERR_UNAVAILABLE && *c->stop)
			break;
		if (e) {
			/* Not ours to compute: given back with the report, so the server hands it to
			 * another node now rather than when its lease ends. */
			int can = cl_node_decline(unit, why, &item) == TS_OK;
			fprintf(stderr, "unit %" JSON_INTEGER_FORMAT " job %" JSON_INTEGER_FORMAT
					": %s: %s\n",
				json_integer_value(json_object_get(unit, "id")),
				json_integer_value(json_object_get(unit, "job_id")),
				can ? "declined, giving it back" : "cannot compute or give back", why);
			if (!can)
				continue;
		} else {
			computed++;
		}
		json_array_append_new(c->pending, item);
		(*added)++;
	}
	cl_beat_busy(c->beat, 0);
	return computed;
}

/* One fetch -> compute -> report round. Returns an error only when the node must stop. */
static ts_err node_round(struct node_ctx *c)
{
	ts_err result;
	json_t *body = NULL, *reply = NULL;
	char msg[CL_HTTP_MSG_MAX];
	int status = 0;
	body = c->o->seconds > 0 ? json_pack("{s:i,s:f}", "max_units", c->o->max_units, "seconds",
					     c->o->seconds)
				 : json_pack("{s:i}", "max_units", c->o->max_units);
	if (!body) {
		snprintf(c->why, c->whylen, "out of memory");
		result = TS_ERR_NOMEM;
		goto out;
	}
	result = cl_http_request(c->http, "POST", "/api/v1/work/fetch", body, &status, &reply, msg,
				 sizeof(msg));
	if (result) {
		if (*c->stop) {
			result = TS_OK;
			goto out;
		}
		switch (node_classify(result, status)) {
		case FAIL_RETRY:
			node_wait_retry(c, "fetch", msg);
			result = TS_OK;
			break;
		case FAIL_REFUSED:
			/* Only 401/403 end a node: a refused fetch (a proxy's 404, a server being
			 * upgraded) is waited out like any other failure. */
			node_wait_retry(c, "fetch (refused)", msg);
			result = TS_OK;
			break;
		case FAIL_FATAL:
			node_fatal(c, result, status, msg);
			break;
		}
		goto out;
	}
	json_t *units = json_object_get(reply, "units");
	if (json_array_size(units) == 0) {
		cl_node_backoff_reset(&c->backoff);
		json_t *ra = json_object_get(reply, "retry_after_s");
		double wait = json_is_number(ra) ? json_number_value(ra) : 1.0;
		wait = wait < NO_WORK_MIN_S ? NO_WORK_MIN_S : wait > NO_WORK_MAX_S ? NO_WORK_MAX_S : wait;
		node_sleep(c, wait);
		goto out;
	}
	cl_node_backoff_reset(&c->backoff);
	size_t added, computed = node_compute_all(c, units, &added);
	if (added > 0) {
		/* On disk before the report: a crash from here on loses no finished work. */
		if ((result = node_save_pending(c)) != TS_OK)
			goto out;
		result = node_report(c, 1);
		if (result && *c->stop && json_array_size(c->pending) > 0)
			result = TS_OK; /* interrupted while retrying: the final attempt comes next */
		if (result)
			goto out;
	}
	if (computed > 0)
		cl_node_backoff_reset(&c->idle);
	else /* nothing we could compute: back off rather than lease more units to decline */
		node_sleep(c, cl_node_backoff_next(&c->idle, node_uniform()));
out:
	json_decref(body);
	json_decref(reply);
	return result;
}

/* The rates go with a heartbeat, so that the first fetch is sized by them. Not fatal: the server
 * then sizes work by the rates it has, and a revoked node learns it from the fetch. */
static void node_send_rates(struct node_ctx *c)
{
	char msg[CL_HTTP_MSG_MAX];
	int status = 0;
	if (cl_beat_send(c->http, c->o->rates, &status, msg, sizeof(msg)) != TS_OK && !*c->stop)
		fprintf(stderr, "could not send this node's rates: %s\n", msg);
}

ts_err cl_node_run(const cl_node_opts *opts, const cl_state_node *node,
		   volatile sig_atomic_t *stop, cl_node_stats *stats, char *why, size_t whylen)
{
	struct node_ctx c = {.o = opts, .node = node, .stop = stop, .stats = stats, .why = why,
			     .whylen = whylen};
	cl_http_opts hopts = {.url = node->url, .pin = node->pin,
			      .cacert = node->cacert[0] ? node->cacert : NULL, .token = node->node_token};
	ts_err result;
	memset(stats, 0, sizeof(*stats));
	if ((result = cl_http_open(&hopts, &c.http, why, whylen)) != TS_OK)
		goto out;
	cl_http_set_abort(c.http, stop);
	if ((result = cl_state_pending_load(opts->state_dir, &c.pending, why, whylen)) != TS_OK) {
		size_t n = strlen(why);
		snprintf(why + n, whylen - n, " (move it aside to start without those results)");
		goto out;
	}
	if (json_array_size(c.pending) > 0) {
		if (opts->log) {
			fprintf(opts->log, "reporting %zu results left from an earlier run\n",
				json_array_size(c.pending));
			fflush(opts->log);
		}
		if ((result = node_report(&c, 1)) != TS_OK && !*stop)
			goto out;
	}
	if (opts->rates && !*stop)
		node_send_rates(&c);
	if (opts->heartbeat_s > 0 &&
	    (result = cl_beat_start(&hopts, opts->heartbeat_s, &c.beat, why, whylen)) != TS_OK)
		goto out;
	while (!*stop)
		if ((result = node_round(&c)) != TS_OK)
			goto out;
	result = TS_OK;
out:
	if (opts->runner && opts->runner->done)
		opts->runner->done(opts->runner->arg);
	cl_beat_stop(c.beat);
	/* The one report on the way out: not interruptible by the signal that stops us, and short. */
	if (c.http && c.pending && json_array_size(c.pending) > 0 && (result == TS_OK || *stop)) {
		char rwhy[CL_HTTP_MSG_MAX];
		struct node_ctx last = c;
		last.why = rwhy;
		last.whylen = sizeof(rwhy);
		cl_http_set_abort(c.http, NULL);
		cl_http_set_timeout(c.http, FINAL_REPORT_TIMEOUT_S);
		if (node_report(&last, 0) != TS_OK)
			fprintf(stderr, "could not report %zu results (%s): kept in %s/pending.json\n",
				json_array_size(c.pending), rwhy, opts->state_dir);
	}
	stats->pending = c.pending ? json_array_size(c.pending) : 0;
	json_decref(c.pending);
	cl_http_close(c.http);
	return result;
}
