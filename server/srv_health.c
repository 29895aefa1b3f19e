/* srv_health: one field table for the check, one row per node in node_health. */
#include "srv_health.h"

#include <stdio.h>
#include <string.h>

#include "srv_json.h"
#include "ts_util.h"

const char *const srv_health_reasons[] = {"busy", "hot", "hours", "battery", NULL};

/* Ranges wide enough for any machine, narrow enough that a garbled number is refused: a
 * 4096-core box at load 1e6, 2^50 bytes (a pebibyte) of memory, a century of uptime. */
static const srv_field health_fields[] = {
	{"load1", F_NUM, 0, 0, 1e6},
	{"mem_total_bytes", F_INT, 0, 1, 1125899906842624.0},
	{"mem_available_bytes", F_INT, 0, 0, 1125899906842624.0},
	{"temp_c", F_NUM, 0, -60, 200},
	{"uptime_s", F_INT, 0, 0, 3155760000.0},
};

ts_err srv_health_check(const json_t *body, srv_health *out, char *why, size_t whylen)
{
	memset(out, 0, sizeof(*out));
	const json_t *h = body ? json_object_get(body, "health") : NULL;
	const json_t *paused = body ? json_object_get(body, "paused") : NULL;
	out->present = h || paused;
	if (h) {
		char inner[200];
		if (srv_json_check(h, health_fields, TS_ARRAY_LEN(health_fields), inner, sizeof(inner))) {
			snprintf(why, whylen, "health: %s", inner);
			return TS_ERR_BAD_REQUEST;
		}
		const json_t *total = json_object_get(h, "mem_total_bytes");
		const json_t *avail = json_object_get(h, "mem_available_bytes");
		if (!total != !avail) {
			snprintf(why, whylen, "health: mem_total_bytes and mem_available_bytes go together");
			return TS_ERR_BAD_REQUEST;
		}
		if (total && json_integer_value(avail) > json_integer_value(total)) {
			snprintf(why, whylen, "health: mem_available_bytes is more than mem_total_bytes");
			return TS_ERR_BAD_REQUEST;
		}
		out->has_load = json_object_get(h, "load1") != NULL;
		out->load1 = json_number_value(json_object_get(h, "load1"));
		out->has_mem = total != NULL;
		out->mem_total = json_integer_value(total);
		out->mem_available = json_integer_value(avail);
		out->has_temp = json_object_get(h, "temp_c") != NULL;
		out->temp_c = json_number_value(json_object_get(h, "temp_c"));
		out->has_uptime = json_object_get(h, "uptime_s") != NULL;
		out->uptime_s = json_integer_value(json_object_get(h, "uptime_s"));
	}
	if (paused && !json_is_null(paused)) {
		const char *s = json_string_value(paused);
		for (const char *const *r = srv_health_reasons; s && *r; r++)
			if (strcmp(*r, s) == 0)
				out->paused = *r;
		if (!out->paused) {
			snprintf(why, whylen, "'paused' must be null, \"busy\", \"hot\", \"hours\" or \"battery\"");
			return TS_ERR_BAD_REQUEST;
		}
	}
	return TS_OK;
}

ts_err srv_health_store(srv_db *db, int64_t node_id, int64_t now, const srv_health *h)
{
	if (!h->present)
		return TS_OK;
	sqlite3_stmt *st = srv_db_stmt(db, Q_HEALTH_PUT);
	sqlite3_clear_bindings(st); /* what this heartbeat lacks is NULL, not the last one's */
	sqlite3_bind_int64(st, 1, node_id);
	sqlite3_bind_int64(st, 2, now);
	if (h->has_load)
		sqlite3_bind_double(st, 3, h->load1);
	if (h->has_mem) {
		sqlite3_bind_int64(st, 4, h->mem_total);
		sqlite3_bind_int64(st, 5, h->mem_available);
	}
	if (h->has_temp)
		sqlite3_bind_double(st, 6, h->temp_c);
	if (h->has_uptime)
		sqlite3_bind_int64(st, 7, h->uptime_s);
	srv_db_bind_text(st, 8, h->paused);
	return srv_db_exec(db, st);
}

static json_t *col_num(sqlite3_stmt *st, int i)
{
	switch (sqlite3_column_type(st, i)) {
	case SQLITE_NULL: return json_null();
	case SQLITE_INTEGER: return json_integer((json_int_t)sqlite3_column_int64(st, i));
	default: return json_real(sqlite3_column_double(st, i));
	}
}

json_t *srv_health_view(sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return json_null();
	return json_pack("{s:I,s:o,s:o,s:o,s:o,s:o}", "at", (json_int_t)sqlite3_column_int64(st, col),
			 "load1", col_num(st, col + 1), "mem_total_bytes", col_num(st, col + 2),
			 "mem_available_bytes", col_num(st, col + 3), "temp_c", col_num(st, col + 4),
			 "uptime_s", col_num(st, col + 5));
}

json_t *srv_health_paused(sqlite3_stmt *st, int col)
{
	const char *p = (const char *)sqlite3_column_text(st, col);
	return p ? json_string(p) : json_null();
}
