/* srv_work: the node routes. fetch leases replicas of units, report records results and
 * validates units (replication and quorum, workunits/wu.h). Each request is one transaction,
 * committed before the reply. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kern.h"
#include "srv_http.h"
#include "srv_json.h"
#include "srv_work.h"
#include "ts_util.h"
#include "wu.h"

#define FETCH_MAX_UNITS 64
#define REPORT_MAX_RESULTS 64
#define NO_WORK_RETRY_S 2

/* The job fields the work routes need, loaded once per job per request. */
struct job_info {
	int64_t id;
	const kern *k;
	json_t *params;
	char state[16];
	wu_split split;
	uint64_t next_seq, done;
	int replication, quorum, adaptive;
	int64_t deadline_s;
	kern_partial acc;
	double wall_pending; /* reported compute time not yet added to the job's compute_s */
};

struct job_cache {
	struct job_info jobs[FETCH_MAX_UNITS];
	int n;
};

/* A unit row. */
struct unit_info {
	int64_t id, job_id;
	uint64_t start, count;
	int state, quorum, wanted, max_results, n_results;
	kern_partial canonical;
};

static void job_cache_free(struct job_cache *c)
{
	for (int i = 0; i < c->n; i++)
		json_decref(c->jobs[i].params);
	c->n = 0;
}

/* The job's info, from the cache or the store. NULL if it does not exist or its kernel is gone. */
static struct job_info *job_load(srv_db *db, struct job_cache *c, int64_t id)
{
	for (int i = 0; i < c->n; i++)
		if (c->jobs[i].id == id)
			return &c->jobs[i];
	if (c->n == FETCH_MAX_UNITS)
		return NULL;
	struct job_info *j = &c->jobs[c->n];
	sqlite3_stmt *st = srv_db_stmt(db, Q_JOB_GET);
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_reset(st);
		return NULL;
	}
	*j = (struct job_info){.id = id};
	j->k = kern_find((const char *)sqlite3_column_text(st, 2));
	j->params = json_loads((const char *)sqlite3_column_text(st, 3), 0, NULL);
	snprintf(j->state, sizeof(j->state), "%s", (const char *)sqlite3_column_text(st, 4));
	j->split = (wu_split){(uint64_t)sqlite3_column_int64(st, 5), (uint64_t)sqlite3_column_int64(st, 6),
			      (uint64_t)sqlite3_column_int64(st, 7)};
	j->next_seq = (uint64_t)sqlite3_column_int64(st, 8);
	j->done = (uint64_t)sqlite3_column_int64(st, 9);
	j->replication = sqlite3_column_int(st, 10);
	j->quorum = sqlite3_column_int(st, 11);
	j->deadline_s = sqlite3_column_int64(st, 12);
	j->acc.v[0] = (uint64_t)sqlite3_column_int64(st, 13);
	j->acc.v[1] = (uint64_t)sqlite3_column_int64(st, 14);
	j->adaptive = sqlite3_column_int(st, 22);
	sqlite3_reset(st);
	if (!j->k || !j->params) {
		json_decref(j->params);
		return NULL;
	}
	c->n++;
	return j;
}

static int unit_load(srv_db *db, int64_t id, struct unit_info *u)
{
	sqlite3_stmt *st = srv_db_stmt(db, Q_UNIT_GET);
	sqlite3_bind_int64(st, 1, id);
	int found = sqlite3_step(st) == SQLITE_ROW;
	if (found) {
		*u = (struct unit_info){
			.id = id,
			.job_id = sqlite3_column_int64(st, 1),
			.start = (uint64_t)sqlite3_column_int64(st, 2),
			.count = (uint64_t)sqlite3_column_int64(st, 3),
			.state = sqlite3_column_int(st, 4),
			.quorum = sqlite3_column_int(st, 5),
			.wanted = sqlite3_column_int(st, 6),
			.max_results = sqlite3_column_int(st, 7),
			.n_results = sqlite3_column_int(st, 8),
			.canonical = {{(uint64_t)sqlite3_column_int64(st, 9), (uint64_t)sqlite3_column_int64(st, 10)}},
		};
	}
	sqlite3_reset(st);
	return found;
}

static json_t *unit_json(const struct job_info *j, int64_t unit, uint64_t start, uint64_t count,
			 int64_t deadline)
{
	return json_pack("{s:I,s:I,s:s,s:O,s:I,s:I,s:I}", "id", (json_int_t)unit, "job_id",
			 (json_int_t)j->id, "kernel", j->k->name, "params", j->params, "start",
			 (json_int_t)start, "count", (json_int_t)count, "deadline", (json_int_t)deadline);
}

/* The units one fetch hands out: at most max, and, when the node asked for seconds of work,
 * about that much by its measured rates (at least one unit). */
struct batch {
	json_t *units;
	int max;
	double seconds, used_s;
	json_t *rates; /* the node's indices/s per kernel (may be NULL) */
	int cores;
};

static int batch_full(const struct batch *b)
{
	int n = (int)json_array_size(b->units);
	return n >= b->max || (b->seconds > 0 && n > 0 && b->used_s >= b->seconds);
}

static int batch_room(const struct batch *b)
{
	return b->max - (int)json_array_size(b->units);
}

static void batch_add(struct batch *b, const struct job_info *j, const struct unit_info *u, int64_t deadline)
{
	json_t *measured = json_object_get(b->rates, j->k->name);
	/* Unmeasured nodes are sized by the kernel's nominal cost on all their cores. */
	double rate = json_is_number(measured) ? json_number_value(measured)
					       : (double)b->cores * 1e9 / j->k->ns_per_index;
	b->used_s += (double)u->count / (rate > 1 ? rate : 1);
	json_array_append_new(b->units, unit_json(j, u->id, u->start, u->count, deadline));
}

/* A fetch means the node holds nothing in progress, so live leases it still has were lost on
 * its side (a restart, a dropped reply): hand them back first, with a fresh deadline. */
static ts_err fetch_resend(srv_db *db, struct job_cache *c, srv_req *r, struct batch *b)
{
	int64_t rids[FETCH_MAX_UNITS], uids[FETCH_MAX_UNITS];
	int n = 0, room = batch_room(b);
	sqlite3_stmt *st = srv_db_stmt(db, Q_REPLICA_MINE);
	sqlite3_bind_int64(st, 1, r->who.node_id);
	sqlite3_bind_int64(st, 2, r->now);
	sqlite3_bind_int(st, 3, room);
	while (n < room && sqlite3_step(st) == SQLITE_ROW) {
		rids[n] = sqlite3_column_int64(st, 0);
		uids[n++] = sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	for (int i = 0; i < n && !batch_full(b); i++) {
		struct unit_info u;
		struct job_info *j;
		if (!unit_load(db, uids[i], &u) || !(j = job_load(db, c, u.job_id)))
			return TS_ERR_DB;
		int64_t deadline = r->now + j->deadline_s;
		ts_err result = SRV_EXEC(db, Q_REPLICA_RENEW, rids[i], deadline);
		if (result)
			return result;
		batch_add(b, j, &u, deadline);
	}
	return TS_OK;
}

static ts_err replica_issue(srv_db *db, srv_req *r, const struct job_info *j, const struct unit_info *u,
			    struct batch *b)
{
	int64_t deadline = r->now + j->deadline_s;
	ts_err result = SRV_EXEC(db, Q_REPLICA_INSERT, u->id, r->who.node_id, deadline, r->now);
	if (!result)
		result = SRV_EXEC(db, Q_UNIT_MISSING, u->id, -1);
	if (!result)
		batch_add(b, j, u, deadline);
	return result;
}

/* Leases past their deadline give their slot back to their unit (which then wants another
 * replica); their node's result is still taken while the unit needs it. Runs in the fetch's
 * transaction, so what a fetch sees is exact to the second. */
static ts_err expire_due(srv_db *db, int64_t now)
{
	for (;;) {
		int64_t rid[512], uid[512];
		int n = 0;
		sqlite3_stmt *st = srv_db_stmt(db, Q_REPLICA_EXPIRING);
		sqlite3_bind_int64(st, 1, now);
		while (n < 512 && sqlite3_step(st) == SQLITE_ROW) {
			rid[n] = sqlite3_column_int64(st, 0);
			uid[n++] = sqlite3_column_int64(st, 1);
		}
		sqlite3_reset(st);
		for (int i = 0; i < n; i++) {
			ts_err result = SRV_EXEC(db, Q_REPLICA_EXPIRE, rid[i]);
			if (!result)
				result = SRV_EXEC(db, Q_UNIT_MISSING, uid[i], 1);
			if (result)
				return result;
		}
		if (n < 512)
			return TS_OK;
	}
}

/* Units that want more replicas than they have results and live leases: expired leases,
 * disagreements, replication > 1. Never one this node already had a replica of. */
static ts_err fetch_needy(srv_db *db, struct job_cache *c, srv_req *r, struct batch *b)
{
	int64_t ids[FETCH_MAX_UNITS];
	int n = 0, room = batch_room(b);
	if (batch_full(b))
		return TS_OK;
	sqlite3_stmt *st = srv_db_stmt(db, Q_UNIT_NEEDY);
	sqlite3_bind_int64(st, 1, r->who.node_id);
	sqlite3_bind_int(st, 2, room);
	while (n < room && sqlite3_step(st) == SQLITE_ROW)
		ids[n++] = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	for (int i = 0; i < n && !batch_full(b); i++) {
		struct unit_info u;
		struct job_info *j;
		if (!unit_load(db, ids[i], &u) || !(j = job_load(db, c, u.job_id)))
			return TS_ERR_DB;
		ts_err result = replica_issue(db, r, j, &u, b);
		if (result)
			return result;
	}
	return TS_OK;
}

/* Liveness is kept to the second: a node's many requests in one second write it once. */
static ts_err node_seen(srv_db *db, const srv_req *r)
{
	return r->who.last_seen >= r->now ? TS_OK : SRV_EXEC(db, Q_NODE_SEEN, r->who.node_id, r->now);
}

static double random01(void)
{
	uint64_t x = 0;
	ts_random(&x, sizeof(x));
	return (double)(x >> 11) / 9007199254740992.0; /* 53 random bits in [0, 1) */
}

/* Units never handed out yet, from the oldest open job on. */
static ts_err fetch_new(srv_db *db, struct job_cache *c, srv_req *r, struct batch *b)
{
	int64_t streak = SRV_QUERY_INT(db, Q_NODE_STREAK, 0, r->who.node_id);
	while (!batch_full(b)) {
		sqlite3_stmt *st = srv_db_stmt(db, Q_JOB_NEXT_OPEN);
		if (sqlite3_step(st) != SQLITE_ROW) {
			sqlite3_reset(st);
			return TS_OK;
		}
		int64_t job = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
		struct job_info *j = job_load(db, c, job);
		if (!j)
			return TS_ERR_DB; /* an open job whose kernel or params are unreadable */
		while (!batch_full(b) && j->next_seq < j->split.n_units) {
			struct unit_info u = {.job_id = job, .state = WU_OPEN};
			wu_plan plan = wu_plan_unit(j->replication, j->quorum, j->adaptive, streak, random01());
			wu_unit_range(&j->split, j->next_seq, &u.start, &u.count);
			st = srv_db_stmt(db, Q_UNIT_INSERT);
			sqlite3_bind_int64(st, 1, job);
			sqlite3_bind_int64(st, 2, (int64_t)j->next_seq);
			sqlite3_bind_int64(st, 3, (int64_t)u.start);
			sqlite3_bind_int64(st, 4, (int64_t)u.count);
			sqlite3_bind_int(st, 5, plan.quorum);
			sqlite3_bind_int(st, 6, plan.wanted);
			sqlite3_bind_int(st, 7, plan.max_results);
			ts_err result = srv_db_exec(db, st);
			if (result)
				return result;
			u.id = sqlite3_last_insert_rowid(srv_db_handle(db));
			result = replica_issue(db, r, j, &u, b);
			if (result)
				return result;
			j->next_seq++;
		}
		ts_err result = SRV_EXEC(db, Q_JOB_ADVANCE, job, (int64_t)j->next_seq);
		if (!result && strcmp(j->state, "queued") == 0) {
			result = SRV_EXEC(db, Q_JOB_START, job, r->now);
			snprintf(j->state, sizeof(j->state), "running");
		}
		if (!result && j->next_seq == j->split.n_units)
			result = SRV_EXEC(db, Q_JOB_FED, job);
		if (result)
			return result;
	}
	return TS_OK;
}

/* Loads the node's cores and measured rates into the batch. */
static void batch_node(srv_db *db, int64_t node, struct batch *b)
{
	sqlite3_stmt *st = srv_db_stmt(db, Q_NODE_RATES);
	sqlite3_bind_int64(st, 1, node);
	if (sqlite3_step(st) == SQLITE_ROW) {
		b->cores = sqlite3_column_int(st, 0);
		const char *rates = (const char *)sqlite3_column_text(st, 1);
		b->rates = rates ? json_loads(rates, 0, NULL) : NULL;
	}
	sqlite3_reset(st);
	if (b->cores < 1)
		b->cores = 1;
}

ts_err api_work_fetch(srv_ctx *ctx, srv_req *r)
{
	static const srv_field fields[] = {
		{"max_units", F_INT, 0, 1, FETCH_MAX_UNITS},
		{"seconds", F_NUM, 0, 0.001, 86400},
	};
	struct job_cache cache = {.n = 0};
	struct batch b = {.units = json_array()};
	ts_err result = srv_json_check(r->body, fields, TS_ARRAY_LEN(fields), r->why, sizeof(r->why));
	if (result)
		goto out;
	json_t *seconds = json_object_get(r->body, "seconds");
	b.seconds = seconds ? json_number_value(seconds) : 0;
	b.max = (int)srv_json_int(r->body, "max_units", seconds ? FETCH_MAX_UNITS : 1);
	result = srv_db_begin(ctx->db);
	if (result)
		goto out;
	batch_node(ctx->db, r->who.node_id, &b);
	result = expire_due(ctx->db, r->now);
	if (!result)
		result = node_seen(ctx->db, r);
	if (!result)
		result = fetch_resend(ctx->db, &cache, r, &b);
	if (!result)
		result = fetch_needy(ctx->db, &cache, r, &b);
	if (!result)
		result = fetch_new(ctx->db, &cache, r, &b);
	if (!result)
		result = srv_db_commit(ctx->db);
	if (result)
		goto out;
	r->reply = json_pack("{s:O,s:i}", "units", b.units, "retry_after_s",
			     json_array_size(b.units) ? 0 : NO_WORK_RETRY_S);
out:
	job_cache_free(&cache);
	json_decref(b.units);
	json_decref(b.rates);
	return result;
}

/* Checks every result's shape before anything is written, so a bad report changes nothing. */
static ts_err report_check(const json_t *results, char *why, size_t whylen)
{
	static const srv_field fields[] = {
		{"unit_id", F_INT, 1, 1, 9.2e18},
		{"result", F_OBJ, 0, 0, 0},
		{"error", F_STR, 0, 1, 200},
		{"wall_s", F_NUM, 0, 0, 1e7},
	};
	size_t i;
	json_t *item;
	json_array_foreach(results, i, item) {
		char inner[200];
		if (srv_json_check(item, fields, TS_ARRAY_LEN(fields), inner, sizeof(inner))) {
			snprintf(why, whylen, "results[%zu]: %s", i, inner);
			return TS_ERR_BAD_REQUEST;
		}
		if (!json_object_get(item, "result") == !json_object_get(item, "error")) {
			snprintf(why, whylen, "results[%zu]: give either 'result' or 'error'", i);
			return TS_ERR_BAD_REQUEST;
		}
	}
	return TS_OK;
}

/* Ends a job: done with its result, or failed with a reason (its open work dropped). */
static ts_err job_finish(srv_db *db, struct job_info *j, const char *error, int64_t now)
{
	kern_args args;
	char why[200], *text = NULL;
	ts_err result;
	if (!error) {
		if (j->k->parse(j->params, &args, why, sizeof(why)))
			return TS_ERR_INTERNAL;
		json_t *res = j->k->finalize(&args, &j->acc);
		text = res ? json_dumps(res, JSON_COMPACT) : NULL;
		json_decref(res);
		if (!text)
			return TS_ERR_NOMEM;
	}
	sqlite3_stmt *st = srv_db_stmt(db, Q_JOB_FINISH);
	sqlite3_bind_int64(st, 1, j->id);
	sqlite3_bind_text(st, 2, error ? "failed" : "done", -1, SQLITE_STATIC);
	srv_db_bind_text(st, 3, text);
	srv_db_bind_text(st, 4, error);
	sqlite3_bind_int64(st, 5, now);
	free(text);
	snprintf(j->state, sizeof(j->state), "%s", error ? "failed" : "done");
	result = srv_db_exec(db, st);
	if (!result && error)
		result = SRV_EXEC(db, Q_UNIT_DROP_JOB, j->id);
	if (!result && error)
		result = SRV_EXEC(db, Q_REPLICA_DROP_JOB, j->id);
	return result;
}

/* Judges the unit's unjudged results against its canonical one and updates the nodes'
 * reliability. With count set, the first matching result is the one aggregated. */
static ts_err judge_results(srv_db *db, int64_t unit, const kern_partial *canon, int count)
{
	struct {
		int64_t id, node;
		int valid;
	} rows[WU_EXTRA_RESULTS + 20];
	int n = 0;
	sqlite3_stmt *st = srv_db_stmt(db, Q_REPLICA_PENDING);
	sqlite3_bind_int64(st, 1, unit);
	while (n < (int)TS_ARRAY_LEN(rows) && sqlite3_step(st) == SQLITE_ROW) {
		rows[n].id = sqlite3_column_int64(st, 0);
		rows[n].node = sqlite3_column_int64(st, 1);
		rows[n].valid = (uint64_t)sqlite3_column_int64(st, 2) == canon->v[0] &&
				(uint64_t)sqlite3_column_int64(st, 3) == canon->v[1];
		n++;
	}
	sqlite3_reset(st);
	ts_err result = TS_OK;
	for (int i = 0; i < n && !result; i++) {
		int counted = count && rows[i].valid;
		if (counted)
			count = 0;
		result = SRV_EXEC(db, Q_REPLICA_JUDGE, rows[i].id, rows[i].valid ? 1 : 2, counted);
		if (!result)
			result = SRV_EXEC(db, Q_NODE_VERDICT, rows[i].node, rows[i].valid, !rows[i].valid, counted);
	}
	return result;
}

/* Counts a valid unit's canonical result into its job, and finishes the job with its last. */
static ts_err job_account(srv_db *db, struct job_info *j, const kern_partial *canon, int64_t now)
{
	j->k->combine(&j->acc, canon);
	j->done++;
	sqlite3_stmt *st = srv_db_stmt(db, Q_JOB_ACCOUNT);
	sqlite3_bind_int64(st, 1, j->id);
	sqlite3_bind_int64(st, 2, (int64_t)j->acc.v[0]);
	sqlite3_bind_int64(st, 3, (int64_t)j->acc.v[1]);
	sqlite3_bind_double(st, 4, j->wall_pending);
	j->wall_pending = 0;
	ts_err result = srv_db_exec(db, st);
	if (!result && j->done == j->split.n_units)
		result = job_finish(db, j, NULL, now);
	return result;
}

/* After a new result: valid (aggregate it), wait, ask for more replicas, or fail the job.
 * rid, node and p are the result that just came in. */
static ts_err unit_validate(srv_db *db, struct job_info *j, struct unit_info *u, int64_t rid,
			    int64_t node, const kern_partial *p, int64_t now)
{
	kern_partial top = {{0, 0}};
	wu_tally t = {.quorum = u->quorum, .max_results = u->max_results, .results = u->n_results};
	if (u->quorum == 1) {
		/* Quorum 1 (the default): the first result is the canonical one; nothing to group. */
		ts_err result = SRV_EXEC(db, Q_UNIT_SETTLE, u->id, WU_VALID, (int64_t)p->v[0], (int64_t)p->v[1],
					 now, (int64_t)j->done + 1);
		if (!result)
			result = SRV_EXEC(db, Q_REPLICA_JUDGE, rid, 1, 1);
		if (!result)
			result = SRV_EXEC(db, Q_NODE_VERDICT, node, 1, 0, 1);
		return result ? result : job_account(db, j, p, now);
	}
	sqlite3_stmt *st = srv_db_stmt(db, Q_UNIT_LARGEST);
	sqlite3_bind_int64(st, 1, u->id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		top.v[0] = (uint64_t)sqlite3_column_int64(st, 0);
		top.v[1] = (uint64_t)sqlite3_column_int64(st, 1);
		t.largest = sqlite3_column_int(st, 2);
	}
	sqlite3_reset(st);
	t.inflight = (int)SRV_QUERY_INT(db, Q_UNIT_INFLIGHT, 0, u->id);
	int more;
	ts_err result = TS_OK;
	char why[200];
	switch (wu_unit_next(&t, &more)) {
	case WU_NEXT_VALID:
		result = SRV_EXEC(db, Q_UNIT_SETTLE, u->id, WU_VALID, (int64_t)top.v[0], (int64_t)top.v[1], now,
				  (int64_t)j->done + 1);
		if (!result)
			result = judge_results(db, u->id, &top, 1);
		return result ? result : job_account(db, j, &top, now);
	case WU_NEXT_MORE:
		return SRV_EXEC(db, Q_UNIT_WANT, u->id, t.results + t.inflight + more, more);
	case WU_NEXT_WAIT:
		return TS_OK;
	case WU_NEXT_FAIL:
		snprintf(why, sizeof(why), "unit %lld [%llu, +%llu): no %d matching results among %d",
			 (long long)u->id, (unsigned long long)u->start, (unsigned long long)u->count,
			 t.quorum, t.results);
		result = SRV_EXEC(db, Q_UNIT_SETTLE, u->id, WU_FAILED, 0, 0, now, 0);
		if (!result)
			result = job_finish(db, j, why, now);
		return result;
	}
	return TS_ERR_INTERNAL;
}

/* Handles one result. Store failures return an error; a refused result gets a reason in
 * *reason and changes nothing. */
static ts_err report_one(srv_db *db, struct job_cache *c, srv_req *r, const json_t *item,
			 const char **reason, uint64_t *indices)
{
	int64_t unit = json_integer_value(json_object_get(item, "unit_id"));
	json_t *wall = json_object_get(item, "wall_s");
	double wall_s = wall ? json_number_value(wall) : 0;
	struct unit_info u = {.state = 0};
	int64_t rid = 0;
	int rstate = 0;
	sqlite3_stmt *st = srv_db_stmt(db, Q_REPLICA_FIND);
	sqlite3_bind_int64(st, 1, unit);
	sqlite3_bind_int64(st, 2, r->who.node_id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		rid = sqlite3_column_int64(st, 0);
		rstate = sqlite3_column_int(st, 1);
	}
	sqlite3_reset(st);
	if (rid && !unit_load(db, unit, &u))
		return TS_ERR_DB;
	enum wu_verdict v = wu_report_verdict(u.state, rstate);
	*reason = wu_verdict_reason(v);
	if (v == WU_DUPLICATE)
		*reason = NULL;
	if (v != WU_ACCEPT && v != WU_LATE)
		return TS_OK;
	if (json_object_get(item, "error")) {
		/* The node cannot compute it (an unknown kernel, say): its slot goes back to the unit,
		 * and the unit never comes back to this node. */
		*reason = NULL;
		ts_err result = SRV_EXEC(db, Q_REPLICA_GIVE_BACK, rid, r->now);
		if (!result && v == WU_ACCEPT && rstate == WU_R_LEASED)
			result = SRV_EXEC(db, Q_UNIT_MISSING, u.id, 1);
		return result;
	}
	struct job_info *j = job_load(db, c, u.job_id);
	if (!j)
		return TS_ERR_DB;
	kern_partial p;
	if (j->k->partial_from_json(json_object_get(item, "result"), &p)) {
		*reason = "malformed result for this kernel";
		return TS_OK;
	}
	if (!kern_partial_plausible(j->k, j->params, u.start, u.count, &p)) {
		*reason = "impossible result for this unit";
		return TS_OK;
	}
	*indices = u.count;
	st = srv_db_stmt(db, Q_REPLICA_REPORT);
	sqlite3_bind_int64(st, 1, rid);
	sqlite3_bind_int64(st, 2, (int64_t)p.v[0]);
	sqlite3_bind_int64(st, 3, (int64_t)p.v[1]);
	sqlite3_bind_double(st, 4, wall_s);
	sqlite3_bind_int64(st, 5, r->now);
	ts_err result = srv_db_exec(db, st);
	if (result)
		return result;
	j->wall_pending += wall_s; /* written with the job's next update, or at the end */
	if (v == WU_LATE) /* not needed, but it still tells how reliable the node is */
		return u.state == WU_VALID ? judge_results(db, u.id, &u.canonical, 0) : TS_OK;
	*reason = NULL;
	u.n_results++;
	result = SRV_EXEC(db, Q_UNIT_RESULT, u.id);
	if (!result && wu_missing_on_result(rstate))
		result = SRV_EXEC(db, Q_UNIT_MISSING, u.id, wu_missing_on_result(rstate));
	if (!result)
		result = unit_validate(db, j, &u, rid, r->who.node_id, &p, r->now);
	return result;
}

ts_err api_work_report(srv_ctx *ctx, srv_req *r)
{
	static const srv_field fields[] = {
		{"results", F_ARR, 1, 1, REPORT_MAX_RESULTS},
	};
	struct job_cache cache = {.n = 0};
	json_t *accepted = json_array(), *rejected = json_array();
	ts_err result = srv_json_check(r->body, fields, TS_ARRAY_LEN(fields), r->why, sizeof(r->why));
	json_t *results = json_object_get(r->body, "results");
	if (!result)
		result = report_check(results, r->why, sizeof(r->why));
	if (!result)
		result = srv_db_begin(ctx->db);
	if (result)
		goto out;
	size_t i;
	json_t *item;
	double done = 0, indices = 0;
	json_array_foreach(results, i, item) {
		const char *reason = NULL;
		uint64_t n = 0;
		result = report_one(ctx->db, &cache, r, item, &reason, &n);
		done += n > 0;
		indices += (double)n;
		if (result)
			goto out;
		json_t *id = json_object_get(item, "unit_id");
		if (reason)
			json_array_append_new(rejected, json_pack("{s:O,s:s}", "unit_id", id, "reason", reason));
		else
			json_array_append(accepted, id);
	}
	for (int k = 0; k < cache.n && !result; k++) {
		if (cache.jobs[k].wall_pending > 0) {
			sqlite3_stmt *st = srv_db_stmt(ctx->db, Q_JOB_WALL);
			sqlite3_bind_int64(st, 1, cache.jobs[k].id);
			sqlite3_bind_double(st, 2, cache.jobs[k].wall_pending);
			result = srv_db_exec(ctx->db, st);
		}
	}
	if (!result)
		result = node_seen(ctx->db, r);
	if (!result)
		result = srv_db_commit(ctx->db);
	if (result)
		goto out;
	srv_rate_add(&ctx->rate, r->now, done, indices);
	for (int k = 0; k < cache.n && !ctx->quiet; k++)
		if (strcmp(cache.jobs[k].state, "done") == 0 || strcmp(cache.jobs[k].state, "failed") == 0)
			fprintf(stderr, "job %lld: %s\n", (long long)cache.jobs[k].id, cache.jobs[k].state);
	r->reply = json_pack("{s:O,s:O}", "accepted", accepted, "rejected", rejected);
out:
	job_cache_free(&cache);
	json_decref(accepted);
	json_decref(rejected);
	return result;
}

ts_err api_node_heartbeat(srv_ctx *ctx, srv_req *r)
{
	static const srv_field fields[] = {
		{"rates", F_OBJ, 0, 0, 0},
	};
	char *rates = NULL;
	ts_err result = r->body ? srv_json_check(r->body, fields, TS_ARRAY_LEN(fields), r->why, sizeof(r->why)) : TS_OK;
	if (!result && r->body)
		result = srv_json_rates(json_object_get(r->body, "rates"), &rates, r->why, sizeof(r->why));
	if (!result && rates) {
		sqlite3_stmt *st = srv_db_stmt(ctx->db, Q_NODE_SET_RATES);
		sqlite3_bind_int64(st, 1, r->who.node_id);
		sqlite3_bind_text(st, 2, rates, -1, SQLITE_TRANSIENT);
		result = srv_db_exec(ctx->db, st);
	}
	free(rates);
	if (!result)
		result = SRV_EXEC(ctx->db, Q_NODE_SEEN, r->who.node_id, r->now);
	if (!result)
		r->reply = json_pack("{s:b,s:I}", "ok", 1, "server_time", (json_int_t)r->now);
	return result;
}

ts_err srv_work_sweep(srv_ctx *ctx, int64_t now)
{
	/* Leases of nodes unseen past the timeout end now, so their units go elsewhere early. */
	ts_err result = SRV_EXEC(ctx->db, Q_LOST_RELEASE, now, now - ctx->node_timeout_s);
	int released = result ? 0 : sqlite3_changes(srv_db_handle(ctx->db));
	if (released && !ctx->quiet)
		fprintf(stderr, "released %d leases of lost nodes\n", released);
	return result;
}

ts_err srv_work_node_set_disabled(srv_ctx *ctx, int64_t node, int disabled, int64_t now)
{
	ts_err result = srv_db_begin(ctx->db);
	if (!result)
		result = SRV_EXEC(ctx->db, Q_NODE_SET_DISABLED, node, disabled);
	if (!result && disabled)
		result = SRV_EXEC(ctx->db, Q_NODE_RELEASE, node, now);
	if (!result)
		result = srv_db_commit(ctx->db);
	return result;
}
