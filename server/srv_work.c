/* srv_work: the node routes: fetch leases units, report accounts their results.
 * Each request is one transaction, committed before the reply. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kern.h"
#include "srv_http.h"
#include "srv_json.h"
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
	int64_t deadline_s;
	kern_partial acc;
};

struct job_cache {
	struct job_info jobs[FETCH_MAX_UNITS];
	int n;
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
	j->deadline_s = sqlite3_column_int64(st, 12);
	j->acc.v[0] = (uint64_t)sqlite3_column_int64(st, 13);
	j->acc.v[1] = (uint64_t)sqlite3_column_int64(st, 14);
	sqlite3_reset(st);
	if (!j->k || !j->params) {
		json_decref(j->params);
		return NULL;
	}
	c->n++;
	return j;
}

static json_t *unit_json(const struct job_info *j, int64_t unit, uint64_t start, uint64_t count,
			 int64_t deadline)
{
	return json_pack("{s:I,s:I,s:s,s:O,s:I,s:I,s:I}", "id", (json_int_t)unit, "job_id",
			 (json_int_t)j->id, "kernel", j->k->name, "params", j->params, "start",
			 (json_int_t)start, "count", (json_int_t)count, "deadline", (json_int_t)deadline);
}

static ts_err node_seen(srv_db *db, int64_t node, int64_t now)
{
	sqlite3_stmt *st = srv_db_stmt(db, Q_NODE_SEEN);
	sqlite3_bind_int64(st, 1, node);
	sqlite3_bind_int64(st, 2, now);
	return srv_db_exec(db, st);
}

/* Re-leases units whose lease ran out, oldest deadline first. */
static ts_err fetch_expired(srv_db *db, struct job_cache *c, srv_req *r, json_t *units, int want)
{
	int64_t ids[FETCH_MAX_UNITS];
	int n = 0;
	sqlite3_stmt *st = srv_db_stmt(db, Q_UNIT_EXPIRED);
	sqlite3_bind_int64(st, 1, r->now);
	sqlite3_bind_int(st, 2, want);
	while (n < want && sqlite3_step(st) == SQLITE_ROW)
		ids[n++] = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	for (int i = 0; i < n; i++) {
		st = srv_db_stmt(db, Q_UNIT_GET);
		sqlite3_bind_int64(st, 1, ids[i]);
		if (sqlite3_step(st) != SQLITE_ROW) {
			sqlite3_reset(st);
			return TS_ERR_DB;
		}
		int64_t job = sqlite3_column_int64(st, 1);
		uint64_t start = (uint64_t)sqlite3_column_int64(st, 2), count = (uint64_t)sqlite3_column_int64(st, 3);
		sqlite3_reset(st);
		struct job_info *j = job_load(db, c, job);
		if (!j)
			continue;
		int64_t deadline = r->now + j->deadline_s;
		st = srv_db_stmt(db, Q_UNIT_RELEASE);
		sqlite3_bind_int64(st, 1, ids[i]);
		sqlite3_bind_int64(st, 2, r->who.node_id);
		sqlite3_bind_int64(st, 3, deadline);
		ts_err result = srv_db_exec(db, st);
		if (result)
			return result;
		json_array_append_new(units, unit_json(j, ids[i], start, count, deadline));
	}
	return TS_OK;
}

/* Leases units never handed out yet, from the oldest open job on. */
static ts_err fetch_new(srv_db *db, struct job_cache *c, srv_req *r, json_t *units, int want)
{
	while ((int)json_array_size(units) < want) {
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
		int64_t deadline = r->now + j->deadline_s;
		while ((int)json_array_size(units) < want && j->next_seq < j->split.n_units) {
			uint64_t start, count;
			wu_unit_range(&j->split, j->next_seq, &start, &count);
			st = srv_db_stmt(db, Q_UNIT_INSERT);
			sqlite3_bind_int64(st, 1, job);
			sqlite3_bind_int64(st, 2, (int64_t)j->next_seq);
			sqlite3_bind_int64(st, 3, (int64_t)start);
			sqlite3_bind_int64(st, 4, (int64_t)count);
			sqlite3_bind_int64(st, 5, r->who.node_id);
			sqlite3_bind_int64(st, 6, deadline);
			ts_err result = srv_db_exec(db, st);
			if (result)
				return result;
			int64_t unit = sqlite3_last_insert_rowid(srv_db_handle(db));
			json_array_append_new(units, unit_json(j, unit, start, count, deadline));
			j->next_seq++;
		}
		st = srv_db_stmt(db, Q_JOB_ADVANCE);
		sqlite3_bind_int64(st, 1, job);
		sqlite3_bind_int64(st, 2, (int64_t)j->next_seq);
		sqlite3_bind_int64(st, 3, r->now);
		ts_err result = srv_db_exec(db, st);
		if (result)
			return result;
	}
	return TS_OK;
}

ts_err api_work_fetch(srv_ctx *ctx, srv_req *r)
{
	static const srv_field fields[] = {
		{"max_units", F_INT, 0, 1, FETCH_MAX_UNITS},
		{"seconds", F_NUM, 0, 0, 3600},
	};
	struct job_cache cache = {.n = 0};
	json_t *units = json_array();
	ts_err result = srv_json_check(r->body, fields, TS_ARRAY_LEN(fields), r->why, sizeof(r->why));
	if (result)
		goto out;
	int want = (int)srv_json_int(r->body, "max_units", 1);
	result = srv_db_begin(ctx->db);
	if (!result)
		result = node_seen(ctx->db, r->who.node_id, r->now);
	if (!result)
		result = fetch_expired(ctx->db, &cache, r, units, want);
	if (!result)
		result = fetch_new(ctx->db, &cache, r, units, want);
	if (!result)
		result = srv_db_commit(ctx->db);
	if (result)
		goto out;
	r->reply = json_pack("{s:O,s:i}", "units", units, "retry_after_s",
			     json_array_size(units) ? 0 : NO_WORK_RETRY_S);
out:
	job_cache_free(&cache);
	json_decref(units);
	return result;
}

/* Checks every result's shape before anything is written, so a bad report changes nothing. */
static ts_err report_check(const json_t *results, char *why, size_t whylen)
{
	static const srv_field fields[] = {
		{"unit_id", F_INT, 1, 1, 9.2e18},
		{"result", F_OBJ, 1, 0, 0},
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
	}
	return TS_OK;
}

/* Marks the job done when its last unit is in. */
static ts_err job_maybe_finish(srv_db *db, struct job_info *j, int64_t now)
{
	kern_args args;
	char why[200];
	if (j->done < j->split.n_units)
		return TS_OK;
	if (j->k->parse(j->params, &args, why, sizeof(why)))
		return TS_ERR_INTERNAL;
	json_t *res = j->k->finalize(&args, &j->acc);
	char *text = res ? json_dumps(res, JSON_COMPACT) : NULL;
	json_decref(res);
	if (!text)
		return TS_ERR_NOMEM;
	sqlite3_stmt *st = srv_db_stmt(db, Q_JOB_FINISH);
	sqlite3_bind_int64(st, 1, j->id);
	sqlite3_bind_text(st, 2, "done", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, text, -1, SQLITE_TRANSIENT);
	sqlite3_bind_null(st, 4);
	sqlite3_bind_int64(st, 5, now);
	free(text);
	snprintf(j->state, sizeof(j->state), "done");
	return srv_db_exec(db, st);
}

/* Accounts one result. Returns an error only for store failures; a refused result gets a
 * reason in *reason and changes nothing. */
static ts_err report_one(srv_db *db, struct job_cache *c, srv_req *r, const json_t *item,
			 const char **reason)
{
	int64_t unit = json_integer_value(json_object_get(item, "unit_id"));
	json_t *wall = json_object_get(item, "wall_s");
	double wall_s = wall ? json_number_value(wall) : 0;
	sqlite3_stmt *st = srv_db_stmt(db, Q_UNIT_GET);
	sqlite3_bind_int64(st, 1, unit);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_reset(st);
		*reason = "no such unit";
		return TS_OK;
	}
	int64_t job = sqlite3_column_int64(st, 1);
	uint64_t count = (uint64_t)sqlite3_column_int64(st, 3);
	int state = sqlite3_column_int(st, 4);
	int64_t holder = sqlite3_column_int64(st, 5);
	sqlite3_reset(st);
	enum wu_verdict v = wu_report_verdict(state, holder, r->who.node_id);
	if (v != WU_ACCEPT) {
		*reason = v == WU_DUPLICATE ? NULL : wu_verdict_reason(v);
		return TS_OK;
	}
	struct job_info *j = job_load(db, c, job);
	if (!j)
		return TS_ERR_DB;
	kern_partial p;
	if (j->k->partial_from_json(json_object_get(item, "result"), &p)) {
		*reason = "malformed result for this kernel";
		return TS_OK;
	}
	if (!j->k->partial_plausible(&p, count)) {
		*reason = "impossible result for this unit";
		return TS_OK;
	}
	char *text = json_dumps(json_object_get(item, "result"), JSON_COMPACT | JSON_SORT_KEYS);
	if (!text)
		return TS_ERR_NOMEM;
	st = srv_db_stmt(db, Q_UNIT_DONE);
	sqlite3_bind_int64(st, 1, unit);
	sqlite3_bind_text(st, 2, text, -1, SQLITE_TRANSIENT);
	sqlite3_bind_double(st, 3, wall_s);
	free(text);
	ts_err result = srv_db_exec(db, st);
	if (result)
		return result;
	j->k->combine(&j->acc, &p);
	j->done++;
	st = srv_db_stmt(db, Q_JOB_ACCOUNT);
	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, (int64_t)j->acc.v[0]);
	sqlite3_bind_int64(st, 3, (int64_t)j->acc.v[1]);
	sqlite3_bind_double(st, 4, wall_s);
	result = srv_db_exec(db, st);
	if (result)
		return result;
	st = srv_db_stmt(db, Q_NODE_CREDIT);
	sqlite3_bind_int64(st, 1, r->who.node_id);
	result = srv_db_exec(db, st);
	if (result)
		return result;
	*reason = NULL;
	return job_maybe_finish(db, j, r->now);
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
	json_array_foreach(results, i, item) {
		const char *reason = NULL;
		result = report_one(ctx->db, &cache, r, item, &reason);
		if (result)
			goto out;
		json_t *id = json_object_get(item, "unit_id");
		if (reason)
			json_array_append_new(rejected, json_pack("{s:O,s:s}", "unit_id", id, "reason", reason));
		else
			json_array_append(accepted, id);
	}
	result = node_seen(ctx->db, r->who.node_id, r->now);
	if (!result)
		result = srv_db_commit(ctx->db);
	if (result)
		goto out;
	for (int k = 0; k < cache.n && !ctx->quiet; k++)
		if (strcmp(cache.jobs[k].state, "done") == 0)
			fprintf(stderr, "job %lld: done\n", (long long)cache.jobs[k].id);
	r->reply = json_pack("{s:O,s:O}", "accepted", accepted, "rejected", rejected);
out:
	job_cache_free(&cache);
	json_decref(accepted);
	json_decref(rejected);
	return result;
}
