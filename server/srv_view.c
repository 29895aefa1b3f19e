#include "srv_view.h"

#include <string.h>

#include "srv_health.h"
#include "srv_store.h"

#include "wu.h"

static json_t *col_int_or_null(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? json_null()
							  : json_integer(sqlite3_column_int64(st, i));
}

static json_t *col_json_or_null(sqlite3_stmt *st, int i)
{
	const char *text = (const char *)sqlite3_column_text(st, i);
	json_t *j = text ? json_loads(text, 0, NULL) : NULL;
	return j ? j : json_null();
}

static json_t *text_json_or_null(const char *text)
{
	json_t *j = text ? json_loads(text, 0, NULL) : NULL;
	return j ? j : json_null();
}

static json_t *time_or_null(int64_t t)
{
	return t ? json_integer(t) : json_null();
}

static ts_err job_nodes(srv_db *db, int64_t id, json_t *nodes)
{
	sqlite3_stmt *st = srv_db_stmt(db, Q_JOB_BY_NODE);
	sqlite3_bind_int64(st, 1, id);
	int row = 1;
	ts_err result = TS_OK;
	while (!result) {
		result = srv_db_step(db, st, &row);
		if (!row)
			break;
		json_array_append_new(nodes, json_pack("{s:I,s:s,s:I}", "node_id",
						       (json_int_t)sqlite3_column_int64(st, 0), "name",
						       (const char *)sqlite3_column_text(st, 1), "units",
						       (json_int_t)sqlite3_column_int64(st, 2)));
	}
	sqlite3_reset(st);
	return result;
}

/* Why an open program job may not move: no online node runs its language with enough slots. */
static ts_err program_note(srv_db *db, const srv_job *j, int64_t now, int64_t lost_s, json_t *job, int *noted)
{
	static const char *const langs[] = {"", ".py", ".c", "", ".sh"};
	sqlite3_stmt *st = srv_db_stmt(db, Q_JOB_PROGRAM_OFFER);
	sqlite3_bind_int64(st, 1, j->id);
	sqlite3_bind_int64(st, 2, now - lost_s);
	int row;
	ts_err result = srv_db_step(db, st, &row);
	if (!result && row && sqlite3_column_int64(st, 2) < sqlite3_column_int64(st, 0)) {
		int64_t need = sqlite3_column_int64(st, 0), lang = sqlite3_column_int64(st, 1);
		int64_t best = sqlite3_column_int64(st, 2);
		char note[256];
		snprintf(note, sizeof(note),
			 "waiting for a node that runs %s programs with %lld processes; the online ones offer %lld "
			 "(tessera-client run --programs, --slots N)", lang >= 0 && lang <= 4 ? langs[lang] : "",
			 (long long)need, (long long)best);
		json_object_set_new(job, "note", json_string(note));
		*noted = 1;
	}
	sqlite3_reset(st);
	return result;
}

/* Why an open job may not move: its quorum needs more distinct volunteers than are online. */
static ts_err job_note(srv_db *db, const srv_job *j, int64_t now, int64_t lost_s, json_t *job)
{
	int noted = 0;
	ts_err result = strcmp(j->kernel, "program") == 0 ? program_note(db, j, now, lost_s, job, &noted) : TS_OK;
	if (result || noted || j->quorum < 2)
		return result;
	int64_t volunteers = 0;
	result = SRV_QUERY_INT(db, Q_VOLUNTEERS_ONLINE, 0, &volunteers, now - lost_s);
	if (result || volunteers >= j->quorum)
		return result;
	char note[256];
	snprintf(note, sizeof(note),
		 "waiting for volunteers: quorum %d needs results from %d different volunteers (nodes "
		 "enrolled with different enrollment tokens); %lld online",
		 j->quorum, j->quorum, (long long)volunteers);
	json_object_set_new(job, "note", json_string(note));
	return TS_OK;
}

ts_err srv_view_job(srv_db *db, int64_t id, int with_nodes, int64_t now, int64_t lost_s, json_t **out,
		    int64_t *owner)
{
	srv_job j;
	ts_err result = srv_store_job(db, id, &j);
	if (result)
		return result;
	int open = strcmp(j.state, "queued") == 0 || strcmp(j.state, "running") == 0;
	int64_t n_units = (int64_t)j.split.n_units, done = (int64_t)j.units_done, leased = 0;
	json_t *job = json_pack(
		"{s:I,s:s,s:s,s:o,s:s,s:I,s:I,s:I,s:I,s:I,s:f,s:o,s:o,s:I,s:o,s:o,s:b}",
		"id", (json_int_t)j.id,
		"owner", j.owner,
		"kernel", j.kernel,
		"params", text_json_or_null(j.params),
		"state", j.state,
		"space", (json_int_t)j.split.space,
		"unit_size", (json_int_t)j.split.unit_size,
		"replication", (json_int_t)j.replication,
		"quorum", (json_int_t)j.quorum,
		"deadline_s", (json_int_t)j.deadline_s,
		"compute_s", j.compute_s,
		"result", text_json_or_null(j.result),
		"error", j.error ? json_string(j.error) : json_null(),
		"created_at", (json_int_t)j.created_at,
		"started_at", time_or_null(j.started_at),
		"finished_at", time_or_null(j.finished_at),
		"adaptive", j.adaptive);
	if (owner)
		*owner = j.owner_id;
	if (!job)
		result = TS_ERR_NOMEM;
	if (!result && open)
		result = SRV_QUERY_INT(db, Q_JOB_LEASED, 0, &leased, id);
	if (!result && open)
		result = job_note(db, &j, now, lost_s, job);
	if (!result) {
		json_object_set_new(job, "units", json_pack("{s:I,s:I,s:I,s:I}", "total", (json_int_t)n_units,
							    "done", (json_int_t)done, "leased", (json_int_t)leased,
							    "ready", (json_int_t)(open ? n_units - done - leased : 0)));
		json_object_set_new(job, "progress", json_real(n_units ? (double)done / (double)n_units : 0));
	}
	if (!result && with_nodes) {
		json_t *nodes = json_array();
		result = job_nodes(db, id, nodes);
		json_object_set_new(job, "nodes", nodes);
	}
	srv_store_job_free(&j);
	if (result) {
		json_decref(job);
		return result;
	}
	*out = job;
	return TS_OK;
}

json_t *srv_view_node(sqlite3_stmt *st, int64_t now, int64_t lost_s)
{
	int64_t seen = sqlite3_column_int64(st, 6);
	int64_t valid = sqlite3_column_int64(st, 8), invalid = sqlite3_column_int64(st, 9);
	const char *state = sqlite3_column_int(st, 4) ? "disabled" : now - seen > lost_s ? "lost" : "online";
	return json_pack("{s:I,s:s,s:s,s:I,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:o,s:o,s:o,s:o}",
			 "id", (json_int_t)sqlite3_column_int64(st, 0),
			 "name", (const char *)sqlite3_column_text(st, 1),
			 "platform", (const char *)sqlite3_column_text(st, 2),
			 "cores", (json_int_t)sqlite3_column_int64(st, 3),
			 "state", state,
			 "created_at", (json_int_t)sqlite3_column_int64(st, 5),
			 "last_seen", (json_int_t)seen,
			 "units_done", (json_int_t)sqlite3_column_int64(st, 7),
			 "valid", (json_int_t)valid,
			 "invalid", (json_int_t)invalid,
			 "streak", (json_int_t)sqlite3_column_int64(st, 10),
			 "reliability", wu_reliability(valid, invalid),
			 "rates", col_json_or_null(st, 11),
			 /* the volunteer: nodes enrolled with one token never share a unit */
			 "enroll_token_id", col_int_or_null(st, 12),
			 /* the latest heartbeat's machine, and the volunteer's pause (null: none) */
			 "health", srv_health_view(st, 13),
			 "paused", srv_health_paused(st, 19));
}
