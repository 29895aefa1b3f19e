#include "srv_view.h"

#include <string.h>

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

static json_t *col_str_or_null(sqlite3_stmt *st, int i)
{
	const char *text = (const char *)sqlite3_column_text(st, i);
	return text ? json_string(text) : json_null();
}

static json_t *job_nodes(srv_db *db, int64_t id)
{
	json_t *nodes = json_array();
	sqlite3_stmt *st = srv_db_stmt(db, Q_JOB_BY_NODE);
	sqlite3_bind_int64(st, 1, id);
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(nodes, json_pack("{s:I,s:s,s:I}", "node_id",
						       (json_int_t)sqlite3_column_int64(st, 0), "name",
						       (const char *)sqlite3_column_text(st, 1), "units",
						       (json_int_t)sqlite3_column_int64(st, 2)));
	sqlite3_reset(st);
	return nodes;
}

ts_err srv_view_job(srv_db *db, int64_t id, int with_nodes, int64_t now, json_t **out,
		    int64_t *owner)
{
	sqlite3_stmt *st = srv_db_stmt(db, Q_JOB_GET);
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_reset(st);
		return TS_ERR_NOT_FOUND;
	}
	int64_t n_units = sqlite3_column_int64(st, 7), done = sqlite3_column_int64(st, 9);
	const char *state = (const char *)sqlite3_column_text(st, 4);
	json_t *job = json_pack(
		"{s:I,s:s,s:s,s:o,s:s,s:I,s:I,s:I,s:I,s:I,s:f,s:o,s:o,s:I,s:o,s:o}",
		"id", (json_int_t)sqlite3_column_int64(st, 0),
		"owner", (const char *)sqlite3_column_text(st, 1),
		"kernel", (const char *)sqlite3_column_text(st, 2),
		"params", col_json_or_null(st, 3),
		"state", state,
		"space", (json_int_t)sqlite3_column_int64(st, 5),
		"unit_size", (json_int_t)sqlite3_column_int64(st, 6),
		"replication", (json_int_t)sqlite3_column_int64(st, 10),
		"quorum", (json_int_t)sqlite3_column_int64(st, 11),
		"deadline_s", (json_int_t)sqlite3_column_int64(st, 12),
		"compute_s", sqlite3_column_double(st, 15),
		"result", col_json_or_null(st, 16),
		"error", col_str_or_null(st, 17),
		"created_at", (json_int_t)sqlite3_column_int64(st, 18),
		"started_at", col_int_or_null(st, 19),
		"finished_at", col_int_or_null(st, 20));
	if (job)
		json_object_set_new(job, "adaptive", json_boolean(sqlite3_column_int(st, 22)));
	if (owner)
		*owner = sqlite3_column_int64(st, 21);
	int open = strcmp(state, "queued") == 0 || strcmp(state, "running") == 0;
	sqlite3_reset(st);
	if (!job)
		return TS_ERR_NOMEM;

	int64_t leased = 0;
	if (open) {
		st = srv_db_stmt(db, Q_JOB_LEASED);
		sqlite3_bind_int64(st, 1, id);
		if (sqlite3_step(st) == SQLITE_ROW)
			leased = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
	}
	json_object_set_new(job, "units", json_pack("{s:I,s:I,s:I,s:I}", "total", (json_int_t)n_units,
						    "done", (json_int_t)done, "leased", (json_int_t)leased,
						    "ready", (json_int_t)(open ? n_units - done - leased : 0)));
	json_object_set_new(job, "progress", json_real(n_units ? (double)done / (double)n_units : 0));
	if (with_nodes)
		json_object_set_new(job, "nodes", job_nodes(db, id));
	*out = job;
	return TS_OK;
}

json_t *srv_view_node(sqlite3_stmt *st, int64_t now, int64_t lost_s)
{
	int64_t seen = sqlite3_column_int64(st, 6);
	int64_t valid = sqlite3_column_int64(st, 8), invalid = sqlite3_column_int64(st, 9);
	const char *state = sqlite3_column_int(st, 4) ? "disabled" : now - seen > lost_s ? "lost" : "online";
	return json_pack("{s:I,s:s,s:s,s:I,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:o}",
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
			 "rates", col_json_or_null(st, 11));
}
