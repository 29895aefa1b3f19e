/* cl_node: fetch -> compute -> report, with pending results that survive restarts. */
#include "cl_node.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cl_beat.h"
#include "cl_pause.h"
#include "cl_sys.h"
#include "cl_unit.h"
#include "ts_util.h"

#define BACKOFF_FIRST_S 0.5
#define BACKOFF_MAX_S 30.0
#define RETRY_AFTER_MAX_S 60.0 /* a server's Retry-After is followed up to this */
#define NO_WORK_MIN_S 0.2
#define NO_WORK_MAX_S 30.0
#define FINAL_REPORT_TIMEOUT_S 10.0 /* the one report tried on the way out */
#define HTTP_TIMEOUT_S 60.0 /* cl_http's default, for requests that are not long-polls */
#define WAIT_SLACK_S 15.0   /* a long-poll's request outlasts the server's wait by this */
#define IO_TIMEOUT_S 15.0   /* a background report or prefetch */
#define AHEAD_S 2.0         /* work asked per fetch from a server that knows "holding" */
#define AHEAD_UNITS_FIRST 2 /* ... in units, until the node has timed one */
#define HOLDING_MAX 64      /* the API's cap on "holding" */

struct node_ctx {
	const cl_node_opts *o;
	const cl_state_node *node;
	volatile sig_atomic_t *stop;
	cl_http *http;
	cl_beat *beat;   /* NULL: no heartbeat */
	cl_pause *pause; /* NULL: no volunteer controls */
	const volatile int *cancel; /* what the compute checks: stop, or halt with controls on */
	cl_prefs_reason shown;      /* the pause the server was last told of */
	json_t *pending; /* array of pending items, oldest first */
	cl_node_backoff backoff;
	cl_node_backoff idle; /* rounds in which nothing could be computed */
	cl_node_stats *stats;
	char *why;
	size_t whylen;
	struct node_io *io; /* NULL: reports and fetches only between units */
	json_t *queue;      /* fetched units not started yet, oldest first */
	json_t *current;    /* the unit computing, or NULL */
	int holding_ok;     /* the server takes "holding": prefetch */
	int wait_ok;        /* the server takes "wait_s": long-poll */
	double unit_s;      /* seconds per unit, averaged; 0: none timed yet */
	double rtt_s;       /* seconds per fetch, averaged */
	size_t fetched;     /* units fetched since the last idle fetch */
	size_t computed;    /* ... and of those, computed */
	ts_err fatal;       /* why the node must stop (why says it), or TS_OK */
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

/* Sleeps in short slices so that a signal (or flag, also set by a signal) ends the wait
 * promptly whatever the race. */
static void node_sleep_on(struct node_ctx *c, double seconds, const volatile int *flag)
{
	double until = ts_mono() + seconds;
	while (!*c->stop && !*flag) {
		double left = until - ts_mono();
		if (left <= 0)
			break;
		if (left > 0.1)
			left = 0.1;
		struct timespec ts = {0, (long)(left * 1e9)};
		nanosleep(&ts, NULL);
	}
}

static void node_sleep(struct node_ctx *c, double seconds)
{
	node_sleep_on(c, seconds, (const volatile int *)c->stop);
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

/* What a report's answer means for the first n pending items. */
enum report_outcome {
	REPORT_ANSWERED, /* settled: accepted, rejected, or refused whole */
	REPORT_AGAIN,    /* an older server refused the declines, now dropped: send the rest again */
	REPORT_RETRY,    /* no answer to act on: the items stay pending */
	REPORT_FATAL     /* c->why says why the node must stop */
};

static enum report_outcome node_report_answer(struct node_ctx *c, size_t n, ts_err e, int status,
					      const json_t *reply, const char *msg)
{
	if (e == TS_OK) {
		cl_node_backoff_reset(&c->backoff);
		node_settle(c, n, reply, NULL);
		return REPORT_ANSWERED;
	}
	enum node_fail f = node_classify(e, status);
	if (f == FAIL_FATAL) {
		node_fatal(c, e, status, msg);
		c->fatal = e;
		return REPORT_FATAL;
	}
	if (f == FAIL_REFUSED && node_drop_declines(c, n, msg) > 0)
		return REPORT_AGAIN;
	if (f == FAIL_REFUSED) {
		/* Answered: retrying the same body would get the same answer. */
		char why[CL_HTTP_MSG_MAX + 32];
		snprintf(why, sizeof(why), "refused (%s)", msg);
		fprintf(stderr, "server refused a report of %zu results: %s\n", n, msg);
		node_settle(c, n, NULL, why);
		return REPORT_ANSWERED;
	}
	return REPORT_RETRY;
}

/* The report of the first n pending items, n <= CL_NODE_MAX_UNITS; NULL when out of memory. */
static json_t *node_report_body(struct node_ctx *c, size_t n)
{
	json_t *results = json_array();
	json_t *body = json_pack("{s:o}", "results", results);
	for (size_t i = 0; body && i < n; i++)
		json_array_append(results, json_object_get(json_array_get(c->pending, i), "report"));
	return body;
}

/* A pending item carrying a program's outcome (up to 256 KiB of stdout as base64). */
static int node_item_is_program(const json_t *item)
{
	return json_object_get(json_object_get(json_object_get(item, "report"), "result"), "stdout") != NULL;
}

/* Up to 64 items per report; a program's outcome goes alone, so a report stays under the
 * server's 1 MiB body cap. */
static size_t node_report_count(const struct node_ctx *c)
{
	size_t n = json_array_size(c->pending), k = 0;
	while (k < n && k < CL_NODE_MAX_UNITS) {
		int program = node_item_is_program(json_array_get(c->pending, k));
		if (program && k > 0)
			break;
		k++;
		if (program)
			break;
	}
	return k;
}

/* Reports every pending item, 64 at a time, until the server has answered each. With retry 0
 * a transport failure returns TS_ERR_NETWORK at once (the items stay pending). Only the main
 * thread calls it, and only while no background request is in flight. */
static ts_err node_report(struct node_ctx *c, int retry)
{
	ts_err result = TS_OK;
	json_t *body = NULL, *reply = NULL;
	char msg[CL_HTTP_MSG_MAX];
	while (json_array_size(c->pending) > 0) {
		size_t n = node_report_count(c);
		if (!(body = node_report_body(c, n))) {
			snprintf(c->why, c->whylen, "out of memory");
			result = TS_ERR_NOMEM;
			goto out;
		}
		for (;;) {
			int status = 0;
			ts_err e = cl_http_request(c->http, "POST", "/api/v1/work/report", body, &status,
						   &reply, msg, sizeof(msg));
			enum report_outcome r = node_report_answer(c, n, e, status, reply, msg);
			json_decref(reply);
			reply = NULL;
			if (r == REPORT_FATAL) {
				result = e;
				goto out;
			}
			if (r != REPORT_RETRY)
				break;
			if (!retry || *c->stop) {
				snprintf(c->why, c->whylen, "%s", msg);
				result = e;
				goto out;
			}
			node_wait_retry(c, "report", msg);
		}
		json_decref(body);
		body = NULL;
		if ((result = node_save_pending(c)) != TS_OK)
			goto out;
	}
out:
	json_decref(body);
	json_decref(reply);
	return result;
}

/* Whether the node has unit id in hand: in progress, queued, or finished and unanswered. */
static int node_holds(const struct node_ctx *c, json_int_t id)
{
	size_t i;
	json_t *v;
	if (c->current && json_integer_value(json_object_get(c->current, "id")) == id)
		return 1;
	json_array_foreach(c->queue, i, v)
		if (json_integer_value(json_object_get(v, "id")) == id)
			return 1;
	json_array_foreach(c->pending, i, v)
		if (json_integer_value(json_object_get(json_object_get(v, "report"), "unit_id")) == id)
			return 1;
	return 0;
}

static void node_hold_append(json_t *ids, json_int_t id)
{
	if (id > 0 && json_array_size(ids) < HOLDING_MAX)
		json_array_append_new(ids, json_integer(id));
}

/* The units in hand, for "holding": the one in progress and the queue first (those the server
 * must not send again), then the finished ones not yet answered. */
static json_t *node_holding(const struct node_ctx *c)
{
	json_t *ids = json_array(), *v;
	size_t i;
	if (!ids)
		return NULL;
	if (c->current)
		node_hold_append(ids, json_integer_value(json_object_get(c->current, "id")));
	json_array_foreach(c->queue, i, v)
		node_hold_append(ids, json_integer_value(json_object_get(v, "id")));
	json_array_foreach(c->pending, i, v)
		node_hold_append(ids, json_integer_value(
					      json_object_get(json_object_get(v, "report"), "unit_id")));
	return ids;
}

/* A fetch. idle: the node has nothing in hand, and may long-poll. Otherwise it prefetches, and
 * says what it holds. Against a server that knows "holding" the ask is small, a couple of
 * seconds of work by this node's own time per unit, so one node does not swallow a small job;
 * against an older one it is the whole --seconds / --max-units batch, as before. */
static json_t *node_fetch_body(const struct node_ctx *c, int idle)
{
	int units = c->o->max_units;
	double seconds = c->o->seconds;
	if (c->holding_ok) {
		int ahead = c->unit_s > 0 ? (int)ceil(AHEAD_S / c->unit_s) : AHEAD_UNITS_FIRST;
		if (ahead < 1)
			ahead = 1;
		if (ahead < units)
			units = ahead;
		if (seconds > AHEAD_S)
			seconds = AHEAD_S;
	}
	json_t *body = json_pack("{s:i}", "max_units", units);
	if (!body)
		return NULL;
	if (seconds > 0 && json_object_set_new(body, "seconds", json_real(seconds)) != 0)
		goto fail;
	if (idle && c->wait_ok && c->o->wait_s > 0 &&
	    json_object_set_new(body, "wait_s", json_integer(c->o->wait_s)) != 0)
		goto fail;
	if (!idle && json_object_set_new(body, "holding", node_holding(c)) != 0)
		goto fail;
	return body;
fail:
	json_decref(body);
	return NULL;
}

/* What a fetch's answer means. */
enum fetch_outcome {
	FETCH_GOT,   /* answered: new units (maybe none) are queued */
	FETCH_AGAIN, /* an older server refused a new field, now turned off: ask again */
	FETCH_RETRY, /* no answer to act on: wait, or try at the next chance */
	FETCH_FATAL  /* c->why says why the node must stop */
};

static enum fetch_outcome node_fetch_answer(struct node_ctx *c, ts_err e, int status,
					    const json_t *reply, const char *msg, size_t *added)
{
	size_t i;
	json_t *unit;
	*added = 0;
	if (e == TS_OK) {
		cl_node_backoff_reset(&c->backoff);
		json_array_foreach(json_object_get(reply, "units"), i, unit) {
			/* A resend of a unit in hand (a server that ignored "holding") is no new work. */
			if (node_holds(c, json_integer_value(json_object_get(unit, "id"))))
				continue;
			json_array_append(c->queue, unit);
			(*added)++;
		}
		c->fetched += *added;
		return FETCH_GOT;
	}
	if (status == 400 && c->holding_ok && strstr(msg, "holding")) {
		c->holding_ok = 0;
		fprintf(stderr, "the server does not know \"holding\" (an older server): fetching only "
				"when idle, %d units at a time, no prefetch\n",
			c->o->max_units);
		return FETCH_AGAIN;
	}
	if (status == 400 && c->wait_ok && strstr(msg, "wait_s")) {
		c->wait_ok = 0;
		fprintf(stderr, "the server does not know \"wait_s\" (an older server): no long-poll, "
				"asking again after its retry_after_s\n");
		return FETCH_AGAIN;
	}
	if (node_classify(e, status) == FAIL_FATAL) {
		node_fatal(c, e, status, msg);
		c->fatal = e;
		return FETCH_FATAL;
	}
	return FETCH_RETRY;
}

static void node_rtt(struct node_ctx *c, double seconds)
{
	c->rtt_s = c->rtt_s > 0 ? 0.5 * c->rtt_s + 0.5 * seconds : seconds;
}

/* A fetch with nothing in hand, on the main connection: it may long-poll (the server answers
 * when work appears, or with no units after wait_s); without that an empty answer is followed
 * by the server's retry_after_s. Returns an error only when the node must stop. */
static ts_err node_fetch_idle(struct node_ctx *c)
{
	char msg[CL_HTTP_MSG_MAX];
	enum fetch_outcome f;
	json_t *body = NULL, *reply = NULL;
	size_t added = 0;
	int status = 0, waiting = 0;
	double t0 = 0;
	/* The units fetched since the last idle fetch could none of them be computed: back off
	 * rather than lease more units to decline. */
	if (c->fetched > 0 && c->computed == 0)
		node_sleep(c, cl_node_backoff_next(&c->idle, node_uniform()));
	else if (c->computed > 0)
		cl_node_backoff_reset(&c->idle);
	c->fetched = c->computed = 0;
	do {
		json_decref(body);
		json_decref(reply);
		reply = NULL;
		if (!(body = node_fetch_body(c, 1))) {
			snprintf(c->why, c->whylen, "out of memory");
			return TS_ERR_NOMEM;
		}
		waiting = json_object_get(body, "wait_s") != NULL;
		/* The server may hold a long-poll for wait_s: the request must outlast it. */
		cl_http_set_timeout(c->http, waiting ? c->o->wait_s + WAIT_SLACK_S : HTTP_TIMEOUT_S);
		t0 = ts_mono();
		ts_err e = cl_http_request(c->http, "POST", "/api/v1/work/fetch", body, &status, &reply,
					   msg, sizeof(msg));
		cl_http_set_timeout(c->http, HTTP_TIMEOUT_S);
		f = *c->stop ? FETCH_RETRY : node_fetch_answer(c, e, status, reply, msg, &added);
	} while (f == FETCH_AGAIN);
	double took = ts_mono() - t0;
	if (f == FETCH_RETRY && !*c->stop)
		node_wait_retry(c, status >= 400 && status < 500 ? "fetch (refused)" : "fetch", msg);
	if (f == FETCH_GOT && !waiting)
		node_rtt(c, took);
	if (f == FETCH_GOT && json_array_size(json_object_get(reply, "units")) == 0) {
		json_t *ra = json_object_get(reply, "retry_after_s");
		double wait = json_is_number(ra) ? json_number_value(ra) : 1.0;
		wait = wait < NO_WORK_MIN_S ? NO_WORK_MIN_S : wait > NO_WORK_MAX_S ? NO_WORK_MAX_S : wait;
		/* A long-poll that the server held has waited already; one answered at once (a
		 * server going down) still spaces the fetches. */
		if (waiting)
			wait = wait - took > NO_WORK_MIN_S ? wait - took : NO_WORK_MIN_S;
		node_sleep(c, wait);
	}
	json_decref(body);
	json_decref(reply);
	return f == FETCH_FATAL ? c->fatal : TS_OK;
}

/* The background connection: while a unit computes, it reports the results finished so far
 * and, when the queue runs short, fetches the next units. One job at a time; the main thread
 * builds it while the thread is idle and reads its answers once it is idle again, so the
 * node's state (pending, the queue) is only ever touched by the main thread. */
struct node_io {
	pthread_t tid;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int busy, quit;
	int combine; /* the server takes a report's "fetch": one request for both */
	cl_http *http;
	json_t *report_body, *report_reply; /* report_body: the first report_n pending items */
	size_t report_n;
	ts_err report_e;
	int report_status;
	char report_msg[CL_HTTP_MSG_MAX];
	json_t *fetch_body, *fetch_reply;
	ts_err fetch_e;
	int fetch_status;
	double fetch_s; /* how long the fetch took */
	char fetch_msg[CL_HTTP_MSG_MAX];
};

/* The report carries the fetch, one round trip instead of two; its reply's "units" is the
 * fetch's answer. An older server refuses the field (nothing changed there): then -1, and
 * from now on the two go as separate requests. */
static int node_io_combined(struct node_io *io)
{
	double t0 = ts_mono();
	if (json_object_set(io->report_body, "fetch", io->fetch_body) != 0)
		return -1;
	io->report_e = cl_http_request(io->http, "POST", "/api/v1/work/report", io->report_body,
				       &io->report_status, &io->report_reply, io->report_msg,
				       sizeof(io->report_msg));
	json_object_del(io->report_body, "fetch");
	if (io->report_status == 400 && strstr(io->report_msg, "unknown field 'fetch'")) {
		io->combine = 0;
		json_decref(io->report_reply);
		io->report_reply = NULL;
		fprintf(stderr, "the server does not take a fetch with a report (an older server): "
				"two requests from now on\n");
		return -1;
	}
	io->fetch_s = ts_mono() - t0;
	io->fetch_e = io->report_e;
	io->fetch_status = io->report_status;
	io->fetch_reply = json_incref(io->report_reply);
	memcpy(io->fetch_msg, io->report_msg, sizeof(io->fetch_msg));
	return 0;
}

static void *node_io_thread(void *arg)
{
	struct node_io *io = arg;
	pthread_mutex_lock(&io->mu);
	for (;;) {
		while (!io->busy && !io->quit)
			pthread_cond_wait(&io->cv, &io->mu);
		if (io->quit)
			break;
		pthread_mutex_unlock(&io->mu);
		if (io->report_body && io->fetch_body && io->combine && node_io_combined(io) == 0)
			goto answered;
		if (io->report_body)
			io->report_e = cl_http_request(io->http, "POST", "/api/v1/work/report",
						       io->report_body, &io->report_status,
						       &io->report_reply, io->report_msg,
						       sizeof(io->report_msg));
		if (io->fetch_body) {
			double t0 = ts_mono();
			io->fetch_e = cl_http_request(io->http, "POST", "/api/v1/work/fetch",
						      io->fetch_body, &io->fetch_status,
						      &io->fetch_reply, io->fetch_msg,
						      sizeof(io->fetch_msg));
			io->fetch_s = ts_mono() - t0;
		}
	answered:
		pthread_mutex_lock(&io->mu);
		io->busy = 0;
		pthread_cond_broadcast(&io->cv);
	}
	pthread_mutex_unlock(&io->mu);
	return NULL;
}

static void node_io_clear(struct node_io *io)
{
	json_decref(io->report_body);
	json_decref(io->report_reply);
	json_decref(io->fetch_body);
	json_decref(io->fetch_reply);
	io->report_body = io->report_reply = io->fetch_body = io->fetch_reply = NULL;
	io->report_n = 0;
}

/* Not fatal when it fails: the node then reports and fetches between units, on the main
 * connection, as it does when the queue is empty. */
static void node_io_open(struct node_ctx *c, const cl_http_opts *hopts)
{
	char why[CL_HTTP_MSG_MAX];
	sigset_t all, old;
	struct node_io *io = calloc(1, sizeof(*io));
	if (!io || cl_http_open(hopts, &io->http, why, sizeof(why)) != TS_OK) {
		free(io);
		return;
	}
	cl_http_set_abort(io->http, c->stop);
	io->combine = 1;
	/* Short: a job that hangs keeps the next results waiting. */
	cl_http_set_timeout(io->http, IO_TIMEOUT_S);
	pthread_mutex_init(&io->mu, NULL);
	pthread_cond_init(&io->cv, NULL);
	/* Signals go to the main thread, whose handler stops the node. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int rc = pthread_create(&io->tid, NULL, node_io_thread, io);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		fprintf(stderr, "no background connection (%s): reporting between units\n",
			strerror(rc));
		pthread_cond_destroy(&io->cv);
		pthread_mutex_destroy(&io->mu);
		cl_http_close(io->http);
		free(io);
		return;
	}
	c->io = io;
}

/* Takes in the answers of the last job. wait: waits for a job in flight first; otherwise a job
 * still in flight is left alone. */
static void node_io_collect(struct node_ctx *c, int wait)
{
	struct node_io *io = c->io;
	size_t added;
	if (!io)
		return;
	pthread_mutex_lock(&io->mu);
	while (wait && io->busy)
		pthread_cond_wait(&io->cv, &io->mu);
	int busy = io->busy;
	pthread_mutex_unlock(&io->mu);
	if (busy || (!io->report_body && !io->fetch_body))
		return;
	if (io->report_body) {
		enum report_outcome r = node_report_answer(c, io->report_n, io->report_e,
							   io->report_status, io->report_reply,
							   io->report_msg);
		if (r == REPORT_RETRY && !*c->stop)
			fprintf(stderr, "report failed: %s; trying again after the next unit\n",
				io->report_msg);
		if ((r == REPORT_ANSWERED || r == REPORT_AGAIN) && !c->fatal) {
			ts_err e = node_save_pending(c);
			if (e)
				c->fatal = e;
		}
	}
	if (io->fetch_body && !c->fatal) {
		enum fetch_outcome f = node_fetch_answer(c, io->fetch_e, io->fetch_status,
							 io->fetch_reply, io->fetch_msg, &added);
		if (f == FETCH_GOT)
			node_rtt(c, io->fetch_s);
		else if (f == FETCH_RETRY && !*c->stop)
			fprintf(stderr, "prefetch failed: %s\n", io->fetch_msg);
	}
	node_io_clear(io);
}

/* Whether the queue runs dry before a fetch started after the unit now starting could come
 * back: the queue's time by this node's time per unit against one round trip. */
static int node_wants_more(const struct node_ctx *c)
{
	size_t queued = json_array_size(c->queue);
	/* A program may run for its whole time limit: a unit fetched meanwhile would wait that
	 * long here instead of going to an idle node. */
	if (c->current && cl_unit_is_program(c->current))
		return 0;
	return c->holding_ok && (queued == 0 || (double)queued * c->unit_s < c->rtt_s);
}

/* Starts a job for the unit just taken: reports what is finished, prefetches when the queue is
 * short. Nothing when a job is still in flight (what it would carry goes with the next). */
static void node_io_start(struct node_ctx *c)
{
	struct node_io *io = c->io;
	if (!io)
		return;
	pthread_mutex_lock(&io->mu);
	int busy = io->busy;
	pthread_mutex_unlock(&io->mu);
	if (busy)
		return;
	node_io_clear(io);
	io->report_n = node_report_count(c);
	io->report_body = io->report_n ? node_report_body(c, io->report_n) : NULL;
	if (!io->report_body)
		io->report_n = 0;
	io->fetch_body = node_wants_more(c) ? node_fetch_body(c, 0) : NULL;
	if (!io->report_body && !io->fetch_body)
		return;
	io->report_status = io->fetch_status = 0;
	io->report_msg[0] = io->fetch_msg[0] = '\0';
	pthread_mutex_lock(&io->mu);
	io->busy = 1;
	pthread_cond_signal(&io->cv);
	pthread_mutex_unlock(&io->mu);
}

static void node_io_close(struct node_ctx *c)
{
	struct node_io *io = c->io;
	if (!io)
		return;
	node_io_collect(c, 1);
	pthread_mutex_lock(&io->mu);
	io->quit = 1;
	pthread_cond_signal(&io->cv);
	pthread_mutex_unlock(&io->mu);
	pthread_join(io->tid, NULL);
	node_io_clear(io);
	pthread_cond_destroy(&io->cv);
	pthread_mutex_destroy(&io->mu);
	cl_http_close(io->http);
	free(io);
	c->io = NULL;
}

/* Computes c->current into pending, a result or a decline, and saves pending: on disk before
 * the report, so a crash from here on loses no finished work. */
static ts_err node_compute_current(struct node_ctx *c)
{
	const json_t *unit = c->current;
	char why[256];
	json_t *item = NULL;
	double t0 = ts_mono();
	ts_err e;
	if (cl_unit_is_program(unit) && c->o->programs)
		e = cl_unit_run(c->o->programs, c->http, unit, c->cancel, &item, why, sizeof(why));
	else
		e = cl_node_compute(unit, c->o->runner, c->o->threads, c->cancel, &item, why, sizeof(why));
	if (e == TS_OK && c->o->max_rate > 0) {
		double count = (double)json_integer_value(json_object_get(unit, "count"));
		node_sleep_on(c, t0 + count / c->o->max_rate - ts_mono(), c->cancel);
		if (*c->stop || *c->cancel) { /* held, not done: the lease comes back on restart */
			json_decref(item);
			item = NULL;
			e = TS_ERR_UNAVAILABLE;
		}
	}
	if (e == TS_ERR_UNAVAILABLE && *c->stop)
		return TS_OK;
	if (e == TS_ERR_UNAVAILABLE && *c->cancel) {
		/* Paused: the unit goes back to the head of the queue, still held (its lease lives
		 * on through the heartbeat), and is computed again from its start on resume. */
		json_array_insert(c->queue, 0, (json_t *)unit);
		return TS_OK;
	}
	if (e) {
		/* Not ours to compute: given back with the report, so the server hands it to
		 * another node now rather than when its lease ends. */
		int can = cl_node_decline(unit, why, &item) == TS_OK;
		fprintf(stderr, "unit %" JSON_INTEGER_FORMAT " job %" JSON_INTEGER_FORMAT ": %s: %s\n",
			json_integer_value(json_object_get(unit, "id")),
			json_integer_value(json_object_get(unit, "job_id")),
			can ? "declined, giving it back" : "cannot compute or give back", why);
		if (!can)
			return TS_OK;
	} else {
		double took = ts_mono() - t0;
		c->unit_s = c->unit_s > 0 ? 0.5 * c->unit_s + 0.5 * took : took;
		c->computed++;
	}
	json_array_append_new(c->pending, item);
	return node_save_pending(c);
}

/* While the volunteer's controls pause the node: tells the server at once (a heartbeat) when
 * the reason changes, reports what is finished, and waits a little. 0 when not paused; else 1,
 * with *result an error when the node must stop (as node_report's). */
static int node_paused(struct node_ctx *c, ts_err *result)
{
	cl_prefs_reason r = cl_pause_reason(c->pause);
	*result = TS_OK;
	if (r != c->shown) {
		c->shown = r;
		cl_beat_now(c->beat);
	}
	if (r == CL_PREFS_RUN)
		return 0;
	node_io_collect(c, 1);
	if (json_array_size(c->pending) > 0 && !c->fatal)
		*result = node_report(c, 1);
	else
		cl_pause_wait(c->pause, 0.2); /* short: a signal does not wake a condition variable */
	return 1;
}

/* Takes units from the queue one at a time; while each computes, the background connection
 * reports the one before and fetches ahead. With the queue empty, the finished results are
 * reported (retried until answered) and the node fetches, long-polling. Returns an error only
 * when the node must stop. */
static ts_err node_loop(struct node_ctx *c)
{
	ts_err result = TS_OK;
	/* Busy all along: a long-poll or a long unit must not make the node look lost. */
	cl_beat_busy(c->beat, 1);
	while (!*c->stop && !c->fatal) {
		node_io_collect(c, json_array_size(c->queue) == 0);
		if (c->fatal || *c->stop)
			break;
		if (node_paused(c, &result)) {
			if (result && *c->stop && !c->fatal)
				result = TS_OK; /* interrupted while retrying: the final report comes next */
			if (result)
				goto out;
			continue;
		}
		if (json_array_size(c->queue) == 0) {
			if (json_array_size(c->pending) > 0)
				result = node_report(c, 1);
			else
				result = node_fetch_idle(c);
			if (result && *c->stop && !c->fatal)
				result = TS_OK; /* interrupted while retrying: the final report comes next */
			if (result)
				goto out;
			continue;
		}
		/* Cleared before the pause is read again: a pause from here on halts this unit. */
		if (c->o->halt && c->pause)
			__atomic_store_n(c->o->halt, 0, __ATOMIC_SEQ_CST);
		if (*c->stop || cl_pause_reason(c->pause) != CL_PREFS_RUN)
			continue;
		c->current = json_incref(json_array_get(c->queue, 0));
		json_array_remove(c->queue, 0);
		node_io_start(c);
		result = node_compute_current(c);
		json_decref(c->current);
		c->current = NULL;
		if (result)
			goto out;
	}
	result = c->fatal;
out:
	cl_beat_busy(c->beat, 0);
	return result;
}

/* What every heartbeat carries: the machine's health and the pause, if any (null: computing).
 * On the heartbeat thread too: cl_pause_reason takes the pause's own lock. */
static json_t *node_beat_extra(void *arg)
{
	struct node_ctx *c = arg;
	const char *reason = cl_prefs_reason_name(cl_pause_reason(c->pause));
	json_t *extra = json_object(), *health = cl_sys_health();
	if (!extra || !health || json_object_set_new(extra, "health", health) ||
	    json_object_set_new(extra, "paused", reason ? json_string(reason) : json_null())) {
		json_decref(extra);
		return NULL;
	}
	return extra;
}

/* The rates go with a heartbeat, so that the first fetch is sized by them. Not fatal: the server
 * then sizes work by the rates it has, and a revoked node learns it from the fetch. */
static void node_send_rates(struct node_ctx *c)
{
	char msg[CL_HTTP_MSG_MAX];
	int status = 0;
	/* What it runs goes with them: its programs, or null (a node restarted without --programs
	 * gets none). A server of the previous release refuses "programs": then only the rates. */
	json_t *programs = c->o->programs ? json_incref((json_t *)cl_unit_caps(c->o->programs)) : json_null();
	json_t *extra = node_beat_extra(c);
	ts_err e = cl_beat_send(c->http, c->o->rates, programs, extra, &status, msg, sizeof(msg));
	if (e == TS_ERR_BAD_REQUEST) /* an older server: without health, then without programs */
		e = cl_beat_send(c->http, c->o->rates, programs, NULL, &status, msg, sizeof(msg));
	if (e == TS_ERR_BAD_REQUEST && !c->o->programs)
		e = cl_beat_send(c->http, c->o->rates, NULL, NULL, &status, msg, sizeof(msg));
	json_decref(programs);
	json_decref(extra);
	if (e != TS_OK && !*c->stop)
		fprintf(stderr, "could not send this node's rates and programs: %s\n", msg);
}

ts_err cl_node_run(const cl_node_opts *opts, const cl_state_node *node,
		   volatile sig_atomic_t *stop, cl_node_stats *stats, char *why, size_t whylen)
{
	struct node_ctx c = {.o = opts, .node = node, .stop = stop, .stats = stats, .why = why,
			     .whylen = whylen, .holding_ok = 1, .wait_ok = 1,
			     .cancel = (const volatile int *)stop};
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
	/* Before the first heartbeat, so that it carries the first reading's pause. */
	if (opts->prefs && opts->halt && cl_pause_wanted(opts->prefs)) {
		if ((result = cl_pause_start(opts->prefs, opts->halt, opts->log ? opts->log : stdout,
					     &c.pause, why, whylen)) != TS_OK)
			goto out;
		c.cancel = (const volatile int *)opts->halt;
		c.shown = cl_pause_reason(c.pause);
	}
	if (!*stop)
		node_send_rates(&c);
	if (opts->heartbeat_s > 0 &&
	    (result = cl_beat_start(&hopts, opts->heartbeat_s, node_beat_extra, &c, &c.beat, why,
				    whylen)) != TS_OK)
		goto out;
	if (!(c.queue = json_array())) {
		snprintf(why, whylen, "out of memory");
		result = TS_ERR_NOMEM;
		goto out;
	}
	node_io_open(&c, &hopts);
	result = node_loop(&c);
out:
	if (opts->runner && opts->runner->done)
		opts->runner->done(opts->runner->arg);
	node_io_close(&c); /* its last answers first: what it reported is settled */
	cl_beat_stop(c.beat);
	cl_pause_stop(c.pause);
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
	json_decref(c.queue);
	cl_http_close(c.http);
	return result;
}
