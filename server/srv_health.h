/* srv_health: node health from heartbeats (load, memory, temperature, uptime) and the pause of
 * the volunteer's controls: the request check (pure: tests call it directly), the store's row,
 * the node view's "health" object and the /metrics gauges. */
#ifndef SRV_HEALTH_H
#define SRV_HEALTH_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <sqlite3.h>

#include "srv_db.h"
#include "ts_err.h"

/* What one heartbeat said. has_*: the field was there. */
typedef struct srv_health {
	int present; /* the heartbeat had "health" or "paused": the row is replaced */
	int has_load, has_mem, has_temp, has_uptime;
	double load1, temp_c;
	int64_t mem_total, mem_available, uptime_s;
	const char *paused; /* "busy", "hot", "hours", "battery" (static), or NULL: computing */
} srv_health;

/* The heartbeat fields srv_health_check reads, for the route's field table. */
#define SRV_HEALTH_FIELDS {"health", F_OBJ, 0, 0, 0}, {"paused", F_TEXT_NULL, 0, 1, 16}

/* Checks body's "health" ({"load1", "mem_total_bytes", "mem_available_bytes", "temp_c",
 * "uptime_s"}, each optional, each in a sane range) and "paused" (null or a known reason) into
 * out. TS_ERR_BAD_REQUEST with why when a field is of the wrong type or absurd. */
ts_err srv_health_check(const json_t *body, srv_health *out, char *why, size_t whylen);

/* Replaces the node's row when h->present; nothing otherwise (an older client). */
ts_err srv_health_store(srv_db *db, int64_t node_id, int64_t now, const srv_health *h);

/* The node view's "health" from the columns at col (at, load1, mem_total_bytes,
 * mem_available_bytes, temp_c, uptime_s) and "paused" (col + 6): a new object, or JSON null
 * for a node that never sent any. */
json_t *srv_health_view(sqlite3_stmt *st, int col);
json_t *srv_health_paused(sqlite3_stmt *st, int col);

/* The reasons a node may be paused for, NULL-terminated (the metrics' reason label). */
extern const char *const srv_health_reasons[];

#endif
