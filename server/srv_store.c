#include "srv_store.h"
#include "srv_prog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_util.h"

static char *col_dup(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	return s ? strdup(s) : NULL;
}

static void col_copy(sqlite3_stmt *st, int i, char *out, size_t cap)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	snprintf(out, cap, "%s", s ? s : "");
}

static uint64_t col_u64(sqlite3_stmt *st, int i)
{
	return (uint64_t)sqlite3_column_int64(st, i);
}

/* Steps a keyed one-row statement: TS_ERR_NOT_FOUND when there is no row. */
static ts_err one_row(srv_db *db, sqlite3_stmt *st)
{
	int row;
	ts_err result = srv_db_step(db, st, &row);
	return result ? result : row ? TS_OK : TS_ERR_NOT_FOUND;
}

/* Writes a job's counters when they changed in this request. */
static ts_err job_flush(srv_db *db, srv_work_job *j)
{
	if (!j->dirty && j->wall_pending <= 0)
		return TS_OK;
	sqlite3_stmt *st = srv_db_stmt(db, Q_JOB_ACCOUNT);
	sqlite3_bind_int64(st, 1, j->row.id);
	sqlite3_bind_int64(st, 2, (int64_t)j->row.units_done);
	sqlite3_bind_int64(st, 3, (int64_t)j->row.acc[0]);
	sqlite3_bind_int64(st, 4, (int64_t)j->row.acc[1]);
	sqlite3_bind_double(st, 5, j->wall_pending);
	j->dirty = 0;
	j->wall_pending = 0;
	return srv_db_exec(db, st);
}

ts_err srv_store_job(srv_db *db, int64_t id, srv_job *j)
{
	sqlite3_stmt *st = srv_db_stmt(db, Q_JOB_GET);
	sqlite3_bind_int64(st, 1, id);
	*j = (srv_job){.id = id};
	ts_err result = one_row(db, st);
	if (result)
		return result;
	col_copy(st, 1, j->owner, sizeof(j->owner));
	col_copy(st, 2, j->kernel, sizeof(j->kernel));
	j->params = col_dup(st, 3);
	col_copy(st, 4, j->state, sizeof(j->state));
	j->split = (wu_split){col_u64(st, 5), col_u64(st, 6), col_u64(st, 7)};
	j->next_seq = col_u64(st, 8);
	j->units_done = col_u64(st, 9);
	j->replication = sqlite3_column_int(st, 10);
	j->quorum = sqlite3_column_int(st, 11);
	j->deadline_s = sqlite3_column_int64(st, 12);
	j->acc[0] = col_u64(st, 13);
	j->acc[1] = col_u64(st, 14);
	j->compute_s = sqlite3_column_double(st, 15);
	j->result = col_dup(st, 16);
	j->error = col_dup(st, 17);
	j->created_at = sqlite3_column_int64(st, 18);
	j->started_at = sqlite3_column_int64(st, 19);
	j->finished_at = sqlite3_column_int64(st, 20);
	j->owner_id = sqlite3_column_int64(st, 21);
	j->adaptive = sqlite3_column_int(st, 22);
	sqlite3_reset(st);
	return TS_OK;
}

void srv_store_job_free(srv_job *j)
{
	free(j->params);
	free(j->result);
	free(j->error);
	j->params = j->result = j->error = NULL;
}

void srv_job_cache_free(srv_job_cache *c)
{
	for (int i = 0; i < c->n; i++) {
		json_decref(c->jobs[i].params);
		srv_store_job_free(&c->jobs[i].row);
	}
	c->n = 0;
}

int srv_job_cache_full(const srv_job_cache *c)
{
	return c->n >= SRV_JOB_CACHE;
}

ts_err srv_store_work_job(srv_db *db, srv_job_cache *c, int64_t id, int64_t now, srv_work_job **out)
{
	*out = NULL;
	for (int i = 0; i < c->n; i++) {
		if (c->jobs[i].row.id == id) {
			*out = c->jobs[i].k ? &c->jobs[i] : NULL;
			return TS_OK;
		}
	}
	if (c->n == SRV_JOB_CACHE)
		return TS_ERR_INTERNAL; /* callers touch fewer jobs than units per request */
	srv_work_job *j = &c->jobs[c->n];
	*j = (srv_work_job){.k = NULL};
	ts_err result = srv_store_job(db, id, &j->row);
	if (result)
		return result == TS_ERR_NOT_FOUND ? TS_ERR_DB : result; /* a unit names its job */
	c->n++; /* from here on the cache owns it */
	char why[200] = "";
	j->k = kern_find(j->row.kernel);
	j->params = j->row.params ? json_loads(j->row.params, 0, NULL) : NULL;
	char name[4 * sizeof(j->row.kernel)];
	if (!j->k)
		snprintf(why, sizeof(why), "this server has no kernel '%.60s'",
			 ts_escape_ctrl(j->row.kernel, name, sizeof(name)));
	else if (!j->params)
		snprintf(why, sizeof(why), "the job's params are unreadable");
	else if (j->k->parse(j->params, &j->args, why, sizeof(why)))
		; /* why says what */
	else {
		*out = j;
		return TS_OK;
	}
	/* It can never be computed here: it fails alone, and the request goes on without it. */
	j->k = NULL;
	fprintf(stderr, "job %lld: %s\n", (long long)id, why);
	if (strcmp(j->row.state, "queued") == 0 || strcmp(j->row.state, "running") == 0)
		result = srv_store_job_finish(db, j, why, now);
	return result;
}

ts_err srv_store_job_drop(srv_db *db, int64_t job)
{
	ts_err result = SRV_EXEC(db, Q_UNIT_DROP_JOB, job);
	return result ? result : SRV_EXEC(db, Q_REPLICA_DROP_JOB, job);
}

ts_err srv_store_job_finish(srv_db *db, srv_work_job *j, const char *error, int64_t now)
{
	char *text = NULL;
	ts_err result = job_flush(db, j); /* the counters the result is made of go with it */
	if (result)
		return result;
	char prog_error[256];
	if (!error && !j->k->compute) {
		/* A program's result is made of its units' stored outputs; one that cannot be
		 * combined fails the job with the reason. */
		result = srv_prog_finalize(db, j, &text, prog_error, sizeof(prog_error));
		if (result)
			return result;
		if (!text)
			error = prog_error;
	} else if (!error) {
		kern_partial total = {{j->row.acc[0], j->row.acc[1]}};
		json_t *res = j->k->finalize(&j->args, &total);
		text = res ? json_dumps(res, JSON_COMPACT) : NULL;
		json_decref(res);
		if (!text)
			return TS_ERR_NOMEM;
	}
	sqlite3_stmt *st = srv_db_stmt(db, Q_JOB_FINISH);
	sqlite3_bind_int64(st, 1, j->row.id);
	sqlite3_bind_text(st, 2, error ? "failed" : "done", -1, SQLITE_STATIC);
	srv_db_bind_text(st, 3, text);
	srv_db_bind_text(st, 4, error);
	sqlite3_bind_int64(st, 5, now);
	free(text);
	snprintf(j->row.state, sizeof(j->row.state), "%s", error ? "failed" : "done");
	result = srv_db_exec(db, st);
	if (!result && error)
		result = srv_store_job_drop(db, j->row.id);
	return result;
}

static void unit_decode(sqlite3_stmt *st, wu_unit *u)
{
	*u = (wu_unit){
		.id = sqlite3_column_int64(st, 0),
		.job_id = sqlite3_column_int64(st, 1),
		.seq = col_u64(st, 2),
		.start = col_u64(st, 3),
		.count = col_u64(st, 4),
		.state = sqlite3_column_int(st, 5),
		.quorum = sqlite3_column_int(st, 6),
		.wanted = sqlite3_column_int(st, 7),
		.max_results = sqlite3_column_int(st, 8),
		.n_results = sqlite3_column_int(st, 9),
		.missing = sqlite3_column_int(st, 10),
		.canon = {col_u64(st, 11), col_u64(st, 12)},
		.valid_at = sqlite3_column_int64(st, 13),
		.valid_rank = sqlite3_column_int64(st, 14),
	};
}

ts_err srv_store_unit(srv_db *db, int64_t id, wu_unit *out)
{
	sqlite3_stmt *st = srv_db_stmt(db, Q_UNIT_GET);
	sqlite3_bind_int64(st, 1, id);
	ts_err result = one_row(db, st);
	if (!result)
		unit_decode(st, out);
	sqlite3_reset(st);
	return result;
}

ts_err srv_store_unit_insert(srv_db *db, wu_unit *u)
{
	ts_err result = SRV_EXEC(db, Q_UNIT_INSERT, u->job_id, (int64_t)u->seq, (int64_t)u->start,
				 (int64_t)u->count, u->state, u->quorum, u->wanted, u->max_results, u->missing);
	if (!result)
		u->id = sqlite3_last_insert_rowid(srv_db_handle(db));
	return result;
}

ts_err srv_store_unit_put(srv_db *db, const wu_unit *u)
{
	return SRV_EXEC(db, Q_UNIT_PUT, u->id, u->state, u->quorum, u->wanted, u->max_results, u->n_results,
			u->missing, (int64_t)u->canon[0], (int64_t)u->canon[1], u->valid_at, u->valid_rank);
}

static void replica_decode(sqlite3_stmt *st, wu_replica *r)
{
	*r = (wu_replica){
		.id = sqlite3_column_int64(st, 0),
		.unit_id = sqlite3_column_int64(st, 1),
		.node_id = sqlite3_column_int64(st, 2),
		.volunteer = sqlite3_column_int64(st, 3),
		.state = sqlite3_column_int(st, 4),
		.leases = sqlite3_column_int(st, 5),
		.verdict = sqlite3_column_int(st, 6),
		.counted = sqlite3_column_int(st, 7),
		.deadline = sqlite3_column_int64(st, 8),
		.res = {col_u64(st, 9), col_u64(st, 10)},
	};
}

static ts_err replica_one(srv_db *db, sqlite3_stmt *st, wu_replica *out)
{
	ts_err result = one_row(db, st);
	if (!result)
		replica_decode(st, out);
	sqlite3_reset(st);
	return result;
}

ts_err srv_store_replica(srv_db *db, int64_t id, wu_replica *out)
{
	sqlite3_stmt *st = srv_db_stmt(db, Q_REPLICA_GET);
	sqlite3_bind_int64(st, 1, id);
	return replica_one(db, st, out);
}

ts_err srv_store_replica_of(srv_db *db, int64_t unit, int64_t node, wu_replica *out)
{
	sqlite3_stmt *st = srv_db_stmt(db, Q_REPLICA_FIND);
	sqlite3_bind_int64(st, 1, unit);
	sqlite3_bind_int64(st, 2, node);
	return replica_one(db, st, out);
}

ts_err srv_store_replica_insert(srv_db *db, wu_replica *r, int64_t now)
{
	ts_err result = SRV_EXEC(db, Q_REPLICA_INSERT, r->unit_id, r->node_id, r->volunteer, r->state,
				 r->deadline, r->leases, now);
	if (!result)
		r->id = sqlite3_last_insert_rowid(srv_db_handle(db));
	return result;
}

ts_err srv_store_replica_put(srv_db *db, const wu_replica *r)
{
	return SRV_EXEC(db, Q_REPLICA_PUT, r->id, r->state, r->deadline, r->leases, r->verdict, r->counted,
			(int64_t)r->res[0], (int64_t)r->res[1]);
}

ts_err srv_store_replica_put_report(srv_db *db, const wu_replica *r, double wall_s, int64_t now)
{
	sqlite3_stmt *st = srv_db_stmt(db, Q_REPLICA_PUT_REPORT);
	const int64_t v[] = {r->id, r->state, r->deadline, r->leases, r->verdict, r->counted,
			     (int64_t)r->res[0], (int64_t)r->res[1]};
	for (size_t i = 0; i < TS_ARRAY_LEN(v); i++)
		sqlite3_bind_int64(st, (int)i + 1, v[i]);
	sqlite3_bind_double(st, 9, wall_s);
	sqlite3_bind_int64(st, 10, now);
	return srv_db_exec(db, st);
}

ts_err srv_store_replicas_reported(srv_db *db, int64_t unit, wu_replica *out, int max, int *n)
{
	sqlite3_stmt *st = srv_db_stmt(db, Q_REPLICA_REPORTED);
	sqlite3_bind_int64(st, 1, unit);
	int row = 1;
	ts_err result = TS_OK;
	for (*n = 0; *n < max && !result;) {
		result = srv_db_step(db, st, &row);
		if (!row)
			break;
		replica_decode(st, &out[(*n)++]);
	}
	sqlite3_reset(st);
	return result;
}

ts_err srv_store_ids(srv_db *db, enum srv_stmt q, const int64_t *v, int nv, int64_t *ids, int max, int *n)
{
	sqlite3_stmt *st = srv_db_stmt(db, q);
	for (int i = 0; i < nv; i++)
		sqlite3_bind_int64(st, i + 1, v[i]);
	int row = 1;
	ts_err result = TS_OK;
	for (*n = 0; *n < max && !result;) {
		result = srv_db_step(db, st, &row);
		if (!row)
			break;
		ids[(*n)++] = sqlite3_column_int64(st, 0);
	}
	sqlite3_reset(st);
	return result;
}

static ts_err node_delta_write(srv_db *db, const srv_node_delta *d)
{
	if (!d->valid && !d->invalid && !d->counted && !d->reset)
		return TS_OK;
	return SRV_EXEC(db, Q_NODE_TRUST, d->node, d->valid, d->invalid, d->counted, d->reset, d->streak_add);
}

ts_err srv_store_node_trust(srv_db *db, srv_job_cache *c, int64_t node, const wu_trust *t)
{
	srv_node_delta *d = NULL;
	for (int i = 0; i < c->n_nodes && !d; i++)
		if (c->nodes[i].node == node)
			d = &c->nodes[i];
	if (!d && c->n_nodes < SRV_NODE_DELTAS)
		d = &c->nodes[c->n_nodes++], *d = (srv_node_delta){.node = node};
	if (!d) /* more nodes than slots in one request: this one is written now */
		return node_delta_write(db, &(srv_node_delta){node, t->valid, t->invalid, t->counted,
								t->streak_reset, t->valid});
	if (t->streak_reset) {
		d->reset = 1;
		d->streak_add = 0;
	}
	d->valid += t->valid;
	d->streak_add += t->valid;
	d->invalid += t->invalid;
	d->counted += t->counted;
	return TS_OK;
}

ts_err srv_store_flush(srv_db *db, srv_job_cache *c)
{
	ts_err result = TS_OK;
	for (int i = 0; i < c->n && !result; i++)
		result = job_flush(db, &c->jobs[i]);
	for (int i = 0; i < c->n_nodes && !result; i++)
		result = node_delta_write(db, &c->nodes[i]);
	c->n_nodes = 0;
	return result;
}

ts_err srv_store_node_info(srv_db *db, int64_t node, srv_node_info *out)
{
	sqlite3_stmt *st = srv_db_stmt(db, Q_NODE_INFO);
	sqlite3_bind_int64(st, 1, node);
	*out = (srv_node_info){.cores = 1, .volunteer = -node};
	ts_err result = one_row(db, st);
	if (result)
		return result == TS_ERR_NOT_FOUND ? TS_ERR_DB : result;
	const char *rates = (const char *)sqlite3_column_text(st, 1);
	out->cores = sqlite3_column_int(st, 0) > 0 ? sqlite3_column_int(st, 0) : 1;
	out->rates = rates ? json_loads(rates, 0, NULL) : NULL;
	out->streak = sqlite3_column_int64(st, 2);
	out->volunteer = sqlite3_column_int64(st, 3);
	out->slots = sqlite3_column_int64(st, 4);
	out->langs = sqlite3_column_int64(st, 5);
	sqlite3_reset(st);
	return TS_OK;
}
