/* srv_work: node liveness for the work routes: heartbeats, the lost-node sweep, disabling nodes.
 * Leasing is srv_lease.c, reporting and validation srv_report.c, the transitions workunits/wu.c. */
#include <stdio.h>
#include <stdlib.h>

#include "srv_health.h"
#include "srv_http.h"
#include "srv_json.h"
#include "srv_prog.h"
#include "srv_store.h"
#include "srv_work.h"
#include "ts_util.h"

ts_err srv_work_node_seen(srv_db *db, srv_req *r)
{
	/* Liveness is kept to the second: a node's many requests in one second write it once
	 * (and a report that carries a fetch, once). */
	if (r->who.last_seen >= r->now)
		return TS_OK;
	ts_err result = SRV_EXEC(db, Q_NODE_SEEN, r->who.node_id, r->now);
	if (!result)
		r->who.last_seen = r->now;
	return result;
}

ts_err api_node_heartbeat(srv_ctx *ctx, srv_req *r)
{
	static const srv_field fields[] = {
		{"rates", F_OBJ, 0, 0, 0},
		{"programs", F_OBJ_NULL, 0, 0, 0},
		SRV_HEALTH_FIELDS,
	};
	char *rates = NULL;
	srv_health health;
	/* Every field is checked before anything is written: a bad one changes nothing. */
	ts_err result = r->body ? srv_json_check(r->body, fields, TS_ARRAY_LEN(fields), r->why, sizeof(r->why)) : TS_OK;
	if (!result)
		result = srv_health_check(r->body, &health, r->why, sizeof(r->why));
	if (!result && r->body)
		result = srv_json_rates(json_object_get(r->body, "rates"), &rates, r->why, sizeof(r->why));
	if (!result && rates) {
		sqlite3_stmt *st = srv_db_stmt(ctx->db, Q_NODE_SET_RATES);
		sqlite3_bind_int64(st, 1, r->who.node_id);
		sqlite3_bind_text(st, 2, rates, -1, SQLITE_TRANSIENT);
		result = srv_db_exec(ctx->db, st);
	}
	free(rates);
	json_t *programs = r->body ? json_object_get(r->body, "programs") : NULL;
	if (!result && programs)
		result = srv_prog_node_caps(ctx->db, r->who.node_id, programs, r->why, sizeof(r->why));
	if (!result)
		result = srv_health_store(ctx->db, r->who.node_id, r->now, &health);
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
	if (released)
		srv_http_work_hint(ctx);
	return result;
}

ts_err srv_work_node_set_disabled(srv_ctx *ctx, int64_t node, int disabled, int64_t now)
{
	ts_err result = SRV_EXEC(ctx->db, Q_NODE_SET_DISABLED, node, disabled);
	if (!result && disabled)
		result = SRV_EXEC(ctx->db, Q_NODE_RELEASE, node, now);
	return result;
}

ts_err srv_work_volunteer_disable(srv_ctx *ctx, int64_t enroll_token, int64_t now, int *n)
{
	int64_t ids[256];
	ts_err result = TS_OK;
	*n = 0;
	for (int got = 256; !result && got == 256;) {
		result = SRV_IDS(ctx->db, Q_NODES_OF_VOLUNTEER, ids, 256, &got, enroll_token, 256);
		for (int i = 0; i < got && !result; i++)
			result = srv_work_node_set_disabled(ctx, ids[i], 1, now);
		*n += result ? 0 : got;
	}
	return result;
}
