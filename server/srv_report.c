/* srv_report: the report route. Each result is checked (shape, kernel, plausibility for its
 * unit's range), recorded on its replica, and its unit validated: valid (counted into the job
 * exactly once), wait, more replicas, or a failed job. Judging a result is what earns or costs a
 * node trust; a node caught lying has its recent single-replica results checked again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "srv_http.h"
#include "srv_json.h"
#include "srv_prog.h"
#include "srv_store.h"
#include "srv_work.h"
#include "ts_util.h"

#define REPORT_MAX_RESULTS 64
#define JUDGE_MAX (WU_EXTRA_RESULTS + 20) /* replicas of one unit: R <= 16 plus the extras */
#define RECHECK_MAX 256                   /* single results of a liar checked again per catch */

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

/* The job's aggregate again from its valid units, after a unit left the valid set. */
static ts_err job_rebuild(srv_db *db, srv_work_job *j)
{
	kern_partial acc = j->k->zero();
	sqlite3_stmt *st = srv_db_stmt(db, Q_JOB_VALID_PARTIALS);
	sqlite3_bind_int64(st, 1, j->row.id);
	int64_t done = 0;
	int row = 1;
	ts_err result = TS_OK;
	while (!result) {
		result = srv_db_step(db, st, &row);
		if (!row)
			break;
		kern_partial p = {{(uint64_t)sqlite3_column_int64(st, 0), (uint64_t)sqlite3_column_int64(st, 1)}};
		j->k->combine(&acc, &p);
		done++;
	}
	sqlite3_reset(st);
	if (result)
		return result;
	j->row.acc[0] = acc.v[0];
	j->row.acc[1] = acc.v[1];
	j->row.units_done = (uint64_t)done;
	j->dirty = 1; /* written by srv_store_flush */
	return TS_OK;
}

/* A node was caught lying: the units of running jobs that became valid on its word alone
 * (adaptive single replicas) open again with their job's replication, and leave the job's
 * aggregate until they validate again. */
static ts_err recheck_liar(srv_db *db, srv_job_cache *c, int64_t node, int64_t now)
{
	int64_t ids[RECHECK_MAX];
	int n;
	ts_err result = SRV_IDS(db, Q_REPLICA_RECHECK, ids, RECHECK_MAX, &n, node, RECHECK_MAX);
	int64_t touched[RECHECK_MAX];
	int n_touched = 0;
	for (int i = 0; i < n && !result; i++) {
		wu_replica rep;
		wu_unit u;
		srv_work_job *j;
		result = srv_store_replica(db, ids[i], &rep);
		if (!result)
			result = srv_store_unit(db, rep.unit_id, &u);
		if (!result && srv_job_cache_full(c))
			break; /* the rest wait for the next catch: this request has touched enough jobs */
		if (!result)
			result = srv_store_work_job(db, c, u.job_id, now, &j);
		if (result || !j || !wu_recheck(&u, &rep, j->row.replication, j->row.quorum))
			continue;
		result = srv_store_unit_put(db, &u);
		if (!result)
			result = srv_store_replica_put(db, &rep);
		if (!result)
			result = srv_store_node_trust(db, c, node, &(wu_trust){.counted = -1});
		c->made_work = 1;
		int seen = 0;
		for (int k = 0; k < n_touched; k++)
			seen |= touched[k] == j->row.id;
		if (!seen)
			touched[n_touched++] = j->row.id;
	}
	for (int k = 0; k < n_touched && !result; k++) {
		srv_work_job *j;
		result = srv_store_work_job(db, c, touched[k], now, &j);
		if (!result && j)
			result = job_rebuild(db, j);
	}
	if (!result && n_touched)
		fprintf(stderr, "node %lld caught lying: %d single results of %d jobs checked again\n",
			(long long)node, n, n_touched);
	return result;
}

/* Judges the unit's results against its canonical one and updates the nodes' standing. With
 * count set, the first matching result is the one aggregated. */
static ts_err judge_results(srv_db *db, srv_job_cache *c, const wu_unit *u, int count, int64_t now)
{
	wu_replica reps[JUDGE_MAX];
	int n;
	ts_err result = srv_store_replicas_reported(db, u->id, reps, JUDGE_MAX, &n);
	for (int i = 0; i < n && !result; i++) {
		if (reps[i].verdict != WU_J_PENDING)
			continue;
		wu_trust t = wu_judge(&reps[i], u->canon, u->quorum, count);
		if (t.counted)
			count = 0;
		result = srv_store_replica_put(db, &reps[i]);
		if (!result)
			result = srv_store_node_trust(db, c, reps[i].node_id, &t);
		if (!result && t.invalid)
			result = recheck_liar(db, c, reps[i].node_id, now);
	}
	return result;
}

/* Counts a valid unit's canonical result into its job (written at the request's end), and
 * finishes the job with its last. */
static ts_err job_account(srv_db *db, srv_work_job *j, const wu_unit *u, int64_t now)
{
	if (!j->k->compute) {
		/* A program unit whose outcome is a failure fails its job with it. */
		int failed;
		ts_err result = srv_prog_unit_settled(db, j, u, now, &failed);
		if (result || failed)
			return result;
	}
	kern_partial acc = {{j->row.acc[0], j->row.acc[1]}}, p = {{u->canon[0], u->canon[1]}};
	j->k->combine(&acc, &p);
	j->row.acc[0] = acc.v[0];
	j->row.acc[1] = acc.v[1];
	j->row.units_done++;
	j->dirty = 1;
	return j->row.units_done == j->row.split.n_units ? srv_store_job_finish(db, j, NULL, now) : TS_OK;
}

/* The unit is valid with canon: counted into its job first, then its results judged (judging
 * may catch a liar and rebuild the job's aggregate, which must already hold this unit). */
static ts_err unit_valid(srv_db *db, srv_job_cache *c, srv_work_job *j, wu_unit *u, const uint64_t canon[2],
			 int64_t now)
{
	wu_settle_valid(u, canon, now, (int64_t)j->row.units_done + 1);
	ts_err result = srv_store_unit_put(db, u);
	if (!result)
		result = job_account(db, j, u, now);
	return result ? result : judge_results(db, c, u, 1, now);
}

/* After the result in rep (reported, not yet written): valid (aggregate it), wait, ask for more
 * replicas, or fail the job. */
static ts_err unit_validate(srv_db *db, srv_job_cache *c, srv_work_job *j, wu_unit *u, wu_replica *rep,
			    double wall_s, int64_t now)
{
	if (u->quorum == 1) {
		/* Quorum 1 (the default): this result is the canonical one; nothing to group. */
		wu_settle_valid(u, rep->res, now, (int64_t)j->row.units_done + 1);
		wu_trust t = wu_judge(rep, u->canon, u->quorum, 1);
		ts_err result = srv_store_replica_put_report(db, rep, wall_s, now);
		if (!result)
			result = srv_store_node_trust(db, c, rep->node_id, &t);
		if (!result)
			result = srv_store_unit_put(db, u);
		return result ? result : job_account(db, j, u, now);
	}
	wu_tally t = {.quorum = u->quorum, .max_results = u->max_results, .results = u->n_results};
	uint64_t top[2] = {0, 0};
	int64_t inflight = 0;
	ts_err result = srv_store_replica_put_report(db, rep, wall_s, now);
	if (result)
		return result;
	sqlite3_stmt *st = srv_db_stmt(db, Q_UNIT_LARGEST);
	sqlite3_bind_int64(st, 1, u->id);
	int row;
	result = srv_db_step(db, st, &row);
	if (row) {
		top[0] = (uint64_t)sqlite3_column_int64(st, 0);
		top[1] = (uint64_t)sqlite3_column_int64(st, 1);
		t.largest = sqlite3_column_int(st, 2);
		sqlite3_reset(st);
	}
	if (!result)
		result = SRV_QUERY_INT(db, Q_UNIT_INFLIGHT, 0, &inflight, u->id);
	if (result)
		return result;
	t.inflight = (int)inflight;
	int more;
	char why[200];
	switch (wu_unit_next(&t, &more)) {
	case WU_NEXT_VALID:
		return unit_valid(db, c, j, u, top, now);
	case WU_NEXT_MORE:
		wu_want_more(u, t.inflight, more);
		c->made_work = 1;
		return srv_store_unit_put(db, u);
	case WU_NEXT_WAIT:
		return srv_store_unit_put(db, u);
	case WU_NEXT_FAIL:
		snprintf(why, sizeof(why), "unit %lld [%llu, +%llu): no %d matching results among %d",
			 (long long)u->id, (unsigned long long)u->start, (unsigned long long)u->count,
			 t.quorum, t.results);
		wu_settle_failed(u);
		result = srv_store_unit_put(db, u);
		return result ? result : srv_store_job_finish(db, j, why, now);
	}
	return TS_ERR_INTERNAL;
}

/* Handles one result. Store failures return an error; a refused result gets a reason in
 * *reason and changes nothing. */
static ts_err report_one(srv_db *db, srv_job_cache *c, srv_req *r, const json_t *item,
			 const char **reason, uint64_t *indices)
{
	int64_t unit = json_integer_value(json_object_get(item, "unit_id"));
	json_t *wall = json_object_get(item, "wall_s");
	double wall_s = wall ? json_number_value(wall) : 0;
	wu_unit u = {.state = 0};
	wu_replica rep = {.state = 0};
	ts_err result = srv_store_replica_of(db, unit, r->who.node_id, &rep);
	if (result == TS_ERR_NOT_FOUND)
		result = TS_OK; /* not this node's: the verdict says so */
	else if (!result)
		result = srv_store_unit(db, unit, &u);
	if (result)
		return result;
	enum wu_verdict v = wu_report_verdict(u.state, rep.state);
	*reason = v == WU_DUPLICATE ? NULL : wu_verdict_reason(v);
	if (v != WU_ACCEPT && v != WU_LATE)
		return TS_OK;
	if (json_object_get(item, "error")) {
		/* The node cannot compute it (an unknown kernel, say): its slot goes back to the unit,
		 * and the unit never comes back to this node. */
		*reason = NULL;
		if (!wu_give_back(&u, &rep))
			return TS_OK;
		c->made_work = 1;
		result = srv_store_replica_put_report(db, &rep, wall_s, r->now);
		return result ? result : srv_store_unit_put(db, &u);
	}
	srv_work_job *j;
	result = srv_store_work_job(db, c, u.job_id, r->now, &j);
	if (result)
		return result;
	if (!j) {
		*reason = wu_verdict_reason(WU_REJECT_STATE);
		return TS_OK;
	}
	kern_partial p;
	if (j->k->partial_from_json(json_object_get(item, "result"), &p)) {
		*reason = "malformed result for this kernel";
		return TS_OK;
	}
	if (!j->k->partial_plausible(&j->args, u.start, u.count, &p)) { /* args parsed once per job */
		*reason = "impossible result for this unit";
		return TS_OK;
	}
	*indices = u.count;
	if (!j->k->compute && v == WU_ACCEPT) {
		/* A program's outcome is kept with its replica: the job's output is made of them. */
		result = srv_prog_output_put(db, rep.id, json_object_get(item, "result"));
		if (result)
			return result;
	}
	wu_result(&u, &rep, p.v);
	j->wall_pending += wall_s; /* written with the job's next update, or at the end */
	if (v == WU_ACCEPT) {
		*reason = NULL;
		return unit_validate(db, c, j, &u, &rep, wall_s, r->now);
	}
	/* Late: not needed, but it still tells how reliable the node is. */
	result = srv_store_replica_put_report(db, &rep, wall_s, r->now);
	return result || u.state != WU_VALID ? result : judge_results(db, c, &u, 0, r->now);
}

ts_err api_work_report(srv_ctx *ctx, srv_req *r)
{
	static const srv_field fields[] = {
		{"results", F_ARR, 1, 1, REPORT_MAX_RESULTS},
		{"fetch", F_OBJ, 0, 0, 0},
	};
	srv_job_cache cache = {.n = 0};
	json_t *accepted = json_array(), *rejected = json_array(), *units = NULL;
	ts_err result = srv_json_check(r->body, fields, TS_ARRAY_LEN(fields), r->why, sizeof(r->why));
	json_t *results = json_object_get(r->body, "results"), *fetch = json_object_get(r->body, "fetch");
	if (!result)
		result = report_check(results, r->why, sizeof(r->why));
	if (!result && fetch && (result = srv_lease_check(fetch, r->why, sizeof(r->why)))) {
		char why[sizeof(r->why)];
		memcpy(why, r->why, sizeof(why));
		snprintf(r->why, sizeof(r->why), "fetch: %.*s", (int)sizeof(r->why) - 8, why);
	}
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
	result = srv_store_flush(ctx->db, &cache);
	if (!result)
		result = srv_work_node_seen(ctx->db, r);
	if (result)
		goto out;
	srv_rate_add(&ctx->rate, r->now, done, indices);
	if (cache.made_work)
		srv_http_work_hint(ctx);
	for (int k = 0; k < cache.n && !ctx->quiet; k++) {
		const char *state = cache.jobs[k].row.state;
		if (strcmp(state, "done") == 0 || strcmp(state, "failed") == 0)
			fprintf(stderr, "job %lld: %s\n", (long long)cache.jobs[k].row.id, state);
	}
	/* Report and fetch in one round trip (as BOINC's scheduler RPC does): the next units
	 * come after this report's results are in, in the same transaction. */
	if (fetch && (result = srv_lease_fill(ctx, r, fetch, &units)))
		goto out;
	r->reply = json_pack("{s:O,s:O}", "accepted", accepted, "rejected", rejected);
	if (r->reply && units && json_object_set(r->reply, "units", units))
		result = TS_ERR_NOMEM;
	if (!r->reply)
		result = TS_ERR_NOMEM;
out:
	json_decref(units);
	srv_job_cache_free(&cache);
	json_decref(accepted);
	json_decref(rejected);
	return result;
}
