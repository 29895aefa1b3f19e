/* srv_lease: the fetch route. A fetch means "I hold nothing in progress". It expires the leases
 * past their deadline, then fills the node's batch from, in order:
 *   1. its own live leases (lost on its side): resent as they are, deadline unchanged;
 *   2. its own expired replicas of units that still want one (it restarted after the deadline):
 *      re-let, at most WU_MAX_LEASES times, so a node that never reports cannot hoard a unit;
 *   3. units that want another replica and have none with this node's volunteer, from a random
 *      unit on, so no node can predict which units it will share;
 *   4. units never handed out, from the oldest feeding job on;
 *   5. when it got nothing: a second copy of a straggling unit (the end of a job).
 * A fetch with "holding" names units the node still has in hand (prefetch): those are not
 * resent. A fetch with "wait_s" that finds nothing waits (long-poll, srv_http.c) until work may
 * have appeared or its time is up.
 * Every change is a wu_ transition written back through srv_store; the dispatcher's
 * transaction makes the fetch all or nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "srv_http.h"
#include "srv_json.h"
#include "srv_store.h"
#include "srv_work.h"
#include "ts_util.h"

#define FETCH_MAX_UNITS 64
#define FETCH_MAX_WAIT_S 60 /* long-poll; also capped below the server's idle timeout */
#define NO_WORK_RETRY_S 2
#define EXPIRE_BATCH 512
/* A unit in flight this long past its holder's expected time (by its rate) is late: its node
 * holds it behind a prefetch queue of ~2 s at most (tessera-client's AHEAD_S). */
#define STRAGGLER_LATE_S 2

_Static_assert(FETCH_MAX_UNITS < SRV_JOB_CACHE, "a fetch touches at most one job per unit, and new ones");

/* The units one fetch hands out: at most max, and, when the node asked for seconds of work,
 * about that much by its measured rates (at least one unit). */
struct batch {
	json_t *units;
	int max;
	double seconds, used_s;
	int program; /* it holds a program unit: one per fetch, it may run for its whole time limit */
	srv_node_info node;
	srv_job_cache jobs;
	int64_t holding[FETCH_MAX_UNITS]; /* units the node still holds: not resent */
	int n_holding;
};

static int batch_full(const struct batch *b)
{
	int n = (int)json_array_size(b->units);
	return n >= b->max || b->program || (b->seconds > 0 && n > 0 && b->used_s >= b->seconds);
}

static int batch_room(const struct batch *b)
{
	return b->max - (int)json_array_size(b->units);
}

static ts_err batch_add(struct batch *b, const srv_work_job *j, const wu_unit *u, int64_t deadline)
{
	json_t *measured = json_object_get(b->node.rates, j->k->name);
	/* Unmeasured nodes are sized by the kernel's nominal cost on all their cores. */
	double rate = json_is_number(measured) ? json_number_value(measured)
					       : (double)b->node.cores * 1e9 / j->k->ns_per_index;
	b->used_s += (double)u->count / (rate > 1 ? rate : 1);
	b->program |= !j->k->compute;
	json_t *unit = json_pack("{s:I,s:I,s:s,s:O,s:I,s:I,s:I}", "id", (json_int_t)u->id, "job_id",
				 (json_int_t)u->job_id, "kernel", j->k->name, "params", j->params, "start",
				 (json_int_t)u->start, "count", (json_int_t)u->count, "deadline",
				 (json_int_t)deadline);
	return unit && json_array_append_new(b->units, unit) == 0 ? TS_OK : TS_ERR_NOMEM;
}

/* The units the node says it still holds (queued or computing): not resent. */
static ts_err holding_parse(const json_t *holding, struct batch *b, char *why, size_t whylen)
{
	size_t i;
	json_t *id;
	json_array_foreach(holding, i, id) {
		if (!json_is_integer(id) || json_integer_value(id) < 1) {
			snprintf(why, whylen, "holding[%zu] must be a unit id", i);
			return TS_ERR_BAD_REQUEST;
		}
		b->holding[b->n_holding++] = json_integer_value(id);
	}
	return TS_OK;
}

static int batch_holds(const struct batch *b, int64_t unit)
{
	for (int i = 0; i < b->n_holding; i++)
		if (b->holding[i] == unit)
			return 1;
	return 0;
}

/* Leases past their deadline give their slot back to their unit (which then wants another
 * replica); their node's result is still taken while the unit needs it. Runs in the fetch's
 * transaction, so what a fetch sees is exact to the second. */
static ts_err expire_due(srv_db *db, int64_t now)
{
	int64_t ids[EXPIRE_BATCH];
	int n = EXPIRE_BATCH;
	ts_err result = TS_OK;
	while (!result && n == EXPIRE_BATCH) {
		result = SRV_IDS(db, Q_REPLICA_EXPIRING, ids, EXPIRE_BATCH, &n, now);
		for (int i = 0; i < n && !result; i++) {
			wu_replica r;
			wu_unit u;
			result = srv_store_replica(db, ids[i], &r);
			if (!result)
				result = srv_store_unit(db, r.unit_id, &u);
			if (!result && wu_expire(&u, &r, now)) {
				result = srv_store_replica_put(db, &r);
				if (!result)
					result = srv_store_unit_put(db, &u);
			}
		}
	}
	return result;
}

/* The unit and its job for a replica or unit id; *j is NULL when the job cannot be loaded (it
 * has just failed alone) or has ended. */
static ts_err unit_and_job(srv_db *db, struct batch *b, int64_t unit, int64_t now, wu_unit *u,
			   srv_work_job **j)
{
	ts_err result = srv_store_unit(db, unit, u);
	if (!result)
		result = srv_store_work_job(db, &b->jobs, u->job_id, now, j);
	if (!result && *j && strcmp((*j)->row.state, "running") != 0 && strcmp((*j)->row.state, "queued") != 0)
		*j = NULL;
	return result;
}

/* A replica, its unit and its job (see unit_and_job). */
static ts_err replica_unit_job(srv_db *db, struct batch *b, int64_t replica, int64_t now, wu_replica *rep,
			       wu_unit *u, srv_work_job **j)
{
	ts_err result = srv_store_replica(db, replica, rep);
	return result ? result : unit_and_job(db, b, rep->unit_id, now, u, j);
}

/* 1. The node's live leases, resent with the deadline they have. */
static ts_err fetch_resend(srv_db *db, srv_req *r, struct batch *b)
{
	int64_t ids[FETCH_MAX_UNITS * 2];
	int n;
	ts_err result = SRV_IDS(db, Q_REPLICA_MINE, ids, FETCH_MAX_UNITS * 2, &n, r->who.node_id, r->now,
				batch_room(b) + b->n_holding);
	for (int i = 0; i < n && !result && !batch_full(b); i++) {
		wu_replica rep;
		wu_unit u;
		srv_work_job *j;
		result = replica_unit_job(db, b, ids[i], r->now, &rep, &u, &j);
		if (!result && j && wu_resendable(&u, &rep, r->now) && !batch_holds(b, u.id))
			result = batch_add(b, j, &u, rep.deadline);
	}
	return result;
}

/* 2. The node's own expired replicas that their units still want. */
static ts_err fetch_relet(srv_db *db, srv_req *r, struct batch *b)
{
	int64_t ids[FETCH_MAX_UNITS];
	int n = 0;
	ts_err result = batch_full(b) ? TS_OK : SRV_IDS(db, Q_REPLICA_MINE_EXPIRED, ids, FETCH_MAX_UNITS, &n,
						       r->who.node_id, WU_MAX_LEASES, batch_room(b));
	for (int i = 0; i < n && !result && !batch_full(b); i++) {
		wu_replica rep;
		wu_unit u;
		srv_work_job *j;
		result = replica_unit_job(db, b, ids[i], r->now, &rep, &u, &j);
		if (result || !j || batch_holds(b, u.id) || !wu_relet(&u, &rep, r->now, j->row.deadline_s))
			continue;
		result = srv_store_replica_put(db, &rep);
		if (!result)
			result = srv_store_unit_put(db, &u);
		if (!result)
			result = batch_add(b, j, &u, rep.deadline);
	}
	return result;
}

static ts_err lease_new(srv_db *db, srv_req *r, struct batch *b, const srv_work_job *j, wu_unit *u)
{
	wu_replica rep = wu_lease(u, r->who.node_id, b->node.volunteer, r->now, j->row.deadline_s);
	ts_err result = u->id ? srv_store_unit_put(db, u) : srv_store_unit_insert(db, u);
	rep.unit_id = u->id;
	if (!result)
		result = srv_store_replica_insert(db, &rep, r->now);
	if (!result)
		result = batch_add(b, j, u, rep.deadline);
	return result;
}

static uint64_t random64(void)
{
	uint64_t x = 0;
	ts_random(&x, sizeof(x));
	return x;
}

/* 3. Units that want more replicas than they have results and live leases: expired leases,
 * disagreements, replication > 1. Never one this node or its volunteer has a replica of. */
static ts_err fetch_needy(srv_db *db, srv_req *r, struct batch *b)
{
	if (batch_full(b))
		return TS_OK;
	sqlite3_stmt *st = srv_db_stmt(db, Q_UNIT_NEEDY_SPAN);
	int row;
	ts_err result = srv_db_step(db, st, &row);
	if (result || !row || sqlite3_column_type(st, 0) == SQLITE_NULL) {
		sqlite3_reset(st);
		return result;
	}
	int64_t lo = sqlite3_column_int64(st, 0), hi = sqlite3_column_int64(st, 1) + 1;
	sqlite3_reset(st);
	int64_t pivot = lo + (int64_t)(random64() % (uint64_t)(hi - lo));
	const int64_t from[2] = {pivot, lo}, to[2] = {hi, pivot};
	for (int pass = 0; pass < 2 && !result && !batch_full(b); pass++) {
		int64_t ids[FETCH_MAX_UNITS];
		int n;
		result = SRV_IDS(db, Q_UNIT_NEEDY, ids, FETCH_MAX_UNITS, &n, r->who.node_id, from[pass], to[pass],
				 b->node.volunteer, batch_room(b), b->node.slots, b->node.langs);
		for (int i = 0; i < n && !result && !batch_full(b); i++) {
			wu_unit u;
			srv_work_job *j;
			result = unit_and_job(db, b, ids[i], r->now, &u, &j);
			if (!result && j && u.state == WU_OPEN && u.missing > 0)
				result = lease_new(db, r, b, j, &u);
		}
	}
	return result;
}

static double random01(void)
{
	return (double)(random64() >> 11) / 9007199254740992.0; /* 53 random bits in [0, 1) */
}

/* 4. Units never handed out yet, from the oldest feeding job on. */
static ts_err fetch_new(srv_db *db, srv_req *r, struct batch *b)
{
	ts_err result = TS_OK;
	int64_t last = 0;
	while (!result && !batch_full(b) && !srv_job_cache_full(&b->jobs)) {
		int64_t job;
		result = SRV_QUERY_INT(db, Q_JOB_NEXT_OPEN, 0, &job, b->node.slots, b->node.langs);
		if (result || !job || job == last)
			break; /* no feeding job (or one that did not stop feeding: never loop on it) */
		last = job;
		srv_work_job *j;
		result = srv_store_work_job(db, &b->jobs, job, r->now, &j);
		if (result || !j)
			continue; /* it could not be loaded and failed alone: on to the next job */
		while (!result && !batch_full(b) && j->row.next_seq < j->row.split.n_units) {
			wu_plan plan = wu_plan_unit(j->row.replication, j->row.quorum, j->row.adaptive,
						    b->node.streak, random01());
			uint64_t start, count;
			wu_unit_range(&j->row.split, j->row.next_seq, &start, &count);
			wu_unit u = wu_unit_new(job, j->row.next_seq, start, count, &plan);
			result = lease_new(db, r, b, j, &u);
			if (!result)
				j->row.next_seq++;
		}
		if (!result)
			result = SRV_EXEC(db, Q_JOB_ADVANCE, job, (int64_t)j->row.next_seq);
		if (!result && strcmp(j->row.state, "queued") == 0) {
			result = SRV_EXEC(db, Q_JOB_START, job, r->now);
			snprintf(j->row.state, sizeof(j->row.state), "running");
		}
		if (!result && j->row.next_seq == j->row.split.n_units)
			result = SRV_EXEC(db, Q_JOB_FED, job);
	}
	return result;
}

/* 5. The end of a job: an idle node gets a second copy of a unit still in flight on another
 * volunteer's node (quorum 1, no result yet, its job handing out nothing new) that it would
 * finish before the holder is expected to (by both nodes' measured rates), or that the holder
 * is late with (its expected time plus STRAGGLER_LATE_S, for the prefetch queue, are past:
 * a node paused, busy or throttled computes slower than its benchmark says), oldest lease
 * first, so a job does not wait for its slowest node. The first result settles the unit; the
 * other is late and harmless. */
static ts_err fetch_stragglers(srv_db *db, srv_req *r, struct batch *b)
{
	if (json_array_size(b->units) || batch_full(b))
		return TS_OK;
	if (!b->node.rates)
		return TS_OK; /* a node that never measured itself cannot tell it would be faster */
	char *rates = json_dumps(b->node.rates, JSON_COMPACT);
	if (!rates)
		return TS_ERR_NOMEM;
	int64_t ids[FETCH_MAX_UNITS];
	int n = 0, row = 1;
	sqlite3_stmt *st = srv_db_stmt(db, Q_UNIT_STRAGGLERS);
	sqlite3_bind_int64(st, 1, r->now);
	sqlite3_bind_int64(st, 2, b->node.volunteer);
	sqlite3_bind_int64(st, 3, r->who.node_id);
	sqlite3_bind_text(st, 4, rates, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(st, 5, batch_room(b));
	sqlite3_bind_int(st, 6, STRAGGLER_LATE_S);
	free(rates);
	ts_err result = TS_OK;
	while (n < FETCH_MAX_UNITS && !(result = srv_db_step(db, st, &row)) && row)
		ids[n++] = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	for (int i = 0; i < n && !result && !batch_full(b); i++) {
		wu_unit u;
		srv_work_job *j;
		result = unit_and_job(db, b, ids[i], r->now, &u, &j);
		if (!result && j && wu_duplicate(&u, 1))
			result = lease_new(db, r, b, j, &u);
	}
	return result;
}

/* A fetch body's fields; wait_s last: a report's "fetch" takes all but that one. */
static const srv_field fetch_fields[] = {
	{"max_units", F_INT, 0, 1, FETCH_MAX_UNITS},
	{"seconds", F_NUM, 0, 0.001, 86400},
	{"holding", F_ARR, 0, 0, FETCH_MAX_UNITS},
	{"wait_s", F_NUM, 0, 0, FETCH_MAX_WAIT_S},
};

/* A report's "fetch" is a fetch without the wait: a node that reports is busy by definition. */
ts_err srv_lease_check(const json_t *spec, char *why, size_t whylen)
{
	struct batch b = {.n_holding = 0};
	ts_err result = srv_json_check(spec, fetch_fields, TS_ARRAY_LEN(fetch_fields) - 1, why, whylen);
	return result ? result : holding_parse(json_object_get(spec, "holding"), &b, why, whylen);
}

ts_err srv_lease_fill(srv_ctx *ctx, srv_req *r, const json_t *spec, json_t **units)
{
	struct batch b = {.units = json_array()};
	ts_err result = holding_parse(json_object_get(spec, "holding"), &b, r->why, sizeof(r->why));
	*units = NULL;
	if (result)
		goto out;
	json_t *seconds = json_object_get(spec, "seconds");
	b.seconds = seconds ? json_number_value(seconds) : 0;
	b.max = (int)srv_json_int(spec, "max_units", seconds ? FETCH_MAX_UNITS : 1);
	result = srv_store_node_info(ctx->db, r->who.node_id, &b.node);
	if (!result)
		result = expire_due(ctx->db, r->now);
	if (!result)
		result = srv_work_node_seen(ctx->db, r);
	if (!result)
		result = fetch_resend(ctx->db, r, &b);
	if (!result)
		result = fetch_relet(ctx->db, r, &b);
	if (!result)
		result = fetch_needy(ctx->db, r, &b);
	if (!result)
		result = fetch_new(ctx->db, r, &b);
	if (!result)
		result = fetch_stragglers(ctx->db, r, &b);
	if (!result) {
		*units = b.units;
		b.units = NULL;
	}
out:
	srv_job_cache_free(&b.jobs);
	json_decref(b.units);
	json_decref(b.node.rates);
	return result;
}

ts_err api_work_fetch(srv_ctx *ctx, srv_req *r)
{
	json_t *units = NULL;
	ts_err result = srv_json_check(r->body, fetch_fields, TS_ARRAY_LEN(fetch_fields), r->why, sizeof(r->why));
	if (!result)
		result = srv_lease_fill(ctx, r, r->body, &units);
	if (result)
		goto out;
	json_t *wait = json_object_get(r->body, "wait_s");
	if (!json_array_size(units) && wait && json_number_value(wait) > 0 && ctx->wake_ev &&
	    (!r->rerun || r->wait_until > ts_mono())) {
		/* Nothing now: the dispatcher parks the fetch until work appears or its time is up
		 * (a rerun keeps its first deadline). Capped below the idle timeout. */
		double s = json_number_value(wait), cap = (double)ctx->cfg.idle_timeout_s - 5;
		if (!r->rerun)
			r->wait_until = ts_mono() + (cap > 0 && s > cap ? cap : s);
		goto out;
	}
	r->reply = json_pack("{s:O,s:i}", "units", units, "retry_after_s",
			     json_array_size(units) || wait ? 0 : NO_WORK_RETRY_S);
	if (!r->reply)
		result = TS_ERR_NOMEM;
out:
	json_decref(units);
	return result;
}
