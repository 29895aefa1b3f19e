/* srv_api: handlers for people (jobs, nodes). Accounts and login are in srv_users.c, work
 * routes in srv_work.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kern.h"
#include "srv_http.h"
#include "srv_json.h"
#include "srv_prog.h"
#include "srv_store.h"
#include "srv_view.h"
#include "srv_work.h"
#include "ts_token.h"
#include "ts_util.h"
#include "wu.h"

#define JOB_LIST_MAX 200

ts_err api_healthz(srv_ctx *ctx, srv_req *r)
{
	r->reply = json_pack("{s:s,s:s}", "status", "ok", "version", TESSERA_VERSION);
	return TS_OK;
}

ts_err api_job_submit(srv_ctx *ctx, srv_req *r)
{
	static const srv_field fields[] = {
		{"kernel", F_TEXT, 1, 1, 64},
		{"params", F_OBJ, 1, 0, 0},
		{"unit_size", F_INT, 0, 1, 1e18},
		{"units", F_INT, 0, 1, (double)WU_MAX_UNITS},
		{"replication", F_INT, 0, 1, 16},
		{"quorum", F_INT, 0, 1, 16},
		{"deadline_s", F_INT, 0, 2, 604800},
		{"adaptive", F_BOOL, 0, 0, 0},
	};
	kern_args args;
	wu_split split;
	char *params = NULL;
	ts_err result = srv_json_check(r->body, fields, TS_ARRAY_LEN(fields), r->why, sizeof(r->why));
	if (result)
		return result;
	const char *name = json_string_value(json_object_get(r->body, "kernel"));
	const kern *k = kern_find(name);
	if (!k) {
		char q[SRV_QUOTE_MAX];
		int n = snprintf(r->why, sizeof(r->why), "unknown kernel '%s'; known:", srv_json_quote(name, q));
		for (const kern *const *t = kern_table(); *t && n < (int)sizeof(r->why); t++)
			n += snprintf(r->why + n, sizeof(r->why) - (size_t)n, " %s", (*t)->name);
		return TS_ERR_BAD_REQUEST;
	}
	json_t *jparams = json_object_get(r->body, "params");
	result = k->parse(jparams, &args, r->why, sizeof(r->why));
	if (result)
		return result;
	int64_t replication = srv_json_int(r->body, "replication", 1);
	int64_t quorum = srv_json_int(r->body, "quorum", 1);
	if (quorum > replication) {
		snprintf(r->why, sizeof(r->why), "quorum (%lld) cannot exceed replication (%lld)",
			 (long long)quorum, (long long)replication);
		return TS_ERR_BAD_REQUEST;
	}
	result = wu_split_make(args.space, (uint64_t)srv_json_int(r->body, "unit_size", 0),
			       (uint64_t)srv_json_int(r->body, "units", 0), k->default_unit, &split,
			       r->why, sizeof(r->why));
	if (result)
		return result;
	/* A program: the submitter may run them, its files are theirs; its lease outlasts its limit. */
	kern_prog prog = {.np = 0};
	int64_t deadline_s = srv_json_int(r->body, "deadline_s", 600);
	if (!k->compute) {
		result = kern_prog_parse(jparams, &prog, r->why, sizeof(r->why));
		if (!result)
			result = srv_prog_submit_check(ctx, r, &prog, split.n_units);
		if (result)
			return result;
		deadline_s = srv_json_int(r->body, "deadline_s", prog.time_s + 300);
		if (deadline_s < prog.time_s + 30) {
			snprintf(r->why, sizeof(r->why), "deadline_s (%lld) must be at least time_s + 30 (%lld)",
				 (long long)deadline_s, (long long)prog.time_s + 30);
			return TS_ERR_BAD_REQUEST;
		}
	}
	params = json_dumps(jparams, JSON_COMPACT | JSON_SORT_KEYS);
	if (!params)
		return TS_ERR_NOMEM;
	kern_partial zero = k->zero();
	sqlite3_stmt *st = srv_db_stmt(ctx->db, Q_JOB_INSERT);
	sqlite3_bind_int64(st, 1, r->who.user_id);
	sqlite3_bind_text(st, 2, k->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, params, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 4, (int64_t)split.space);
	sqlite3_bind_int64(st, 5, (int64_t)split.unit_size);
	sqlite3_bind_int64(st, 6, (int64_t)split.n_units);
	sqlite3_bind_int64(st, 7, replication);
	sqlite3_bind_int64(st, 8, quorum);
	sqlite3_bind_int64(st, 9, deadline_s);
	sqlite3_bind_int64(st, 10, (int64_t)zero.v[0]);
	sqlite3_bind_int64(st, 11, (int64_t)zero.v[1]);
	sqlite3_bind_int64(st, 12, r->now);
	sqlite3_bind_int(st, 13, json_is_true(json_object_get(r->body, "adaptive")));
	free(params);
	result = srv_db_exec(ctx->db, st);
	if (result)
		return result;
	int64_t id = sqlite3_last_insert_rowid(srv_db_handle(ctx->db));
	if (!k->compute && (result = srv_prog_submitted(ctx->db, id, &prog)))
		return result;
	if (!ctx->quiet) {
		char who[4 * sizeof(r->who.name)];
		fprintf(stderr, "job %lld: %s by %s, %llu units of %llu\n", (long long)id, k->name,
			ts_escape_ctrl(r->who.name, who, sizeof(who)), (unsigned long long)split.n_units,
			(unsigned long long)split.unit_size);
	}
	r->status = 201;
	srv_http_work_hint(ctx); /* waiting nodes get its units at once */
	return srv_view_job(ctx->db, id, 0, r->now, ctx->node_timeout_s, &r->reply, NULL);
}

/* Loads a job the caller may see (its owner or an admin). */
static ts_err job_visible(srv_ctx *ctx, srv_req *r, int with_nodes)
{
	int64_t owner = 0;
	ts_err result = srv_view_job(ctx->db, r->id, with_nodes, r->now, ctx->node_timeout_s, &r->reply, &owner);
	if (result == TS_ERR_NOT_FOUND)
		snprintf(r->why, sizeof(r->why), "no job %lld", (long long)r->id);
	if (result)
		return result;
	if (r->who.role != ROLE_ADMIN && owner != r->who.user_id) {
		json_decref(r->reply);
		r->reply = NULL;
		snprintf(r->why, sizeof(r->why), "job %lld is not yours", (long long)r->id);
		return TS_ERR_FORBIDDEN;
	}
	return TS_OK;
}

ts_err api_job_get(srv_ctx *ctx, srv_req *r)
{
	return job_visible(ctx, r, 1);
}

ts_err api_job_list(srv_ctx *ctx, srv_req *r)
{
	int admin = r->who.role == ROLE_ADMIN;
	sqlite3_stmt *st = srv_db_stmt(ctx->db, admin ? Q_JOB_LIST_ALL : Q_JOB_LIST_OWNER);
	json_t *jobs = json_array();
	ts_err result = TS_OK;
	if (admin) {
		sqlite3_bind_int(st, 1, JOB_LIST_MAX);
	} else {
		sqlite3_bind_int64(st, 1, r->who.user_id);
		sqlite3_bind_int(st, 2, JOB_LIST_MAX);
	}
	/* Collect ids first: the view reuses prepared statements. */
	int64_t ids[JOB_LIST_MAX];
	int n = 0, row;
	while (n < JOB_LIST_MAX && !(result = srv_db_step(ctx->db, st, &row)) && row)
		ids[n++] = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	for (int i = 0; i < n && !result; i++) {
		json_t *job = NULL;
		result = srv_view_job(ctx->db, ids[i], 0, r->now, ctx->node_timeout_s, &job, NULL);
		if (!result)
			json_array_append_new(jobs, job);
	}
	if (result) {
		json_decref(jobs);
		return result;
	}
	r->reply = json_pack("{s:o}", "jobs", jobs);
	return TS_OK;
}

ts_err api_job_cancel(srv_ctx *ctx, srv_req *r)
{
	ts_err result = job_visible(ctx, r, 0);
	if (result)
		return result;
	json_decref(r->reply);
	r->reply = NULL;
	sqlite3_stmt *st = srv_db_stmt(ctx->db, Q_JOB_CANCEL);
	sqlite3_bind_int64(st, 1, r->id);
	sqlite3_bind_int64(st, 2, r->now);
	result = srv_db_exec(ctx->db, st);
	if (result)
		return result;
	if (sqlite3_changes(srv_db_handle(ctx->db)) == 0) {
		snprintf(r->why, sizeof(r->why), "job %lld has already finished", (long long)r->id);
		return TS_ERR_CONFLICT;
	}
	/* Cancelled jobs hand out nothing more, and their open leases are dropped. */
	result = srv_store_job_drop(ctx->db, r->id);
	return result ? result : srv_view_job(ctx->db, r->id, 0, r->now, ctx->node_timeout_s, &r->reply, NULL);
}

ts_err api_enroll_token(srv_ctx *ctx, srv_req *r)
{
	static const srv_field fields[] = {
		{"uses", F_INT, 0, 1, 10000},
		{"ttl_s", F_INT, 0, 60, 31536000},
	};
	char token[TS_TOKEN_MAX], pin[TS_PIN_MAX];
	ts_err result = srv_json_check(r->body, fields, TS_ARRAY_LEN(fields), r->why, sizeof(r->why));
	if (result)
		return result;
	int64_t uses = srv_json_int(r->body, "uses", 1);
	int64_t expires = r->now + srv_json_int(r->body, "ttl_s", 86400);
	result = srv_auth_issue(ctx->db, "enroll", r->who.user_id, 0, uses, expires, ctx->pin, r->now,
				token);
	if (result)
		return result;
	int64_t id = sqlite3_last_insert_rowid(srv_db_handle(ctx->db));
	ts_pin_format(ctx->pin, pin);
	/* The ready command names the server as this request reached it. */
	const char *host = r->call->host;
	char command[512], boinc[512];
	const char *shown = host && strlen(host) < 256 && !strpbrk(host, " \t'\"`$;&|<>") ? host : "SERVER:8443";
	snprintf(command, sizeof(command), "tessera-client enroll https://%s %s", shown, token);
	/* The same token is a BOINC account key (docs/BOINC.md). */
	snprintf(boinc, sizeof(boinc), "boinccmd --project_attach https://%s/boinc/ %s", shown, token);
	r->status = 201;
	r->reply = json_pack("{s:I,s:s,s:I,s:I,s:s,s:s,s:s}", "id", (json_int_t)id, "token", token, "uses",
			     (json_int_t)uses, "expires_at", (json_int_t)expires, "pin", pin, "command", command,
			     "boinc_command", boinc);
	return TS_OK;
}

ts_err api_node_enroll(srv_ctx *ctx, srv_req *r)
{
	static const srv_field fields[] = {
		{"token", F_TEXT, 1, 1, TS_TOKEN_MAX - 1},
		{"name", F_TEXT, 1, 1, 64},     /* shown to admins and logged: no control characters */
		{"platform", F_TEXT, 1, 1, 64},
		{"cores", F_INT, 1, 1, 4096},
		{"rates", F_OBJ, 0, 0, 0},
		{"programs", F_OBJ_NULL, 0, 0, 0},
	};
	char token[TS_TOKEN_MAX], *rates = NULL;
	ts_err result = srv_json_check(r->body, fields, TS_ARRAY_LEN(fields), r->why, sizeof(r->why));
	if (!result)
		result = srv_json_rates(json_object_get(r->body, "rates"), &rates, r->why, sizeof(r->why));
	if (result)
		return result;
	int64_t volunteer = 0;
	result = srv_auth_use_enroll(ctx->db, json_string_value(json_object_get(r->body, "token")), r->now,
				     &volunteer);
	if (result) {
		if (result == TS_ERR_UNAUTHORIZED)
			snprintf(r->why, sizeof(r->why), "enrollment token is invalid, expired, revoked or used up");
		free(rates);
		return result;
	}
	sqlite3_stmt *st = srv_db_stmt(ctx->db, Q_NODE_INSERT);
	const char *name = json_string_value(json_object_get(r->body, "name"));
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, json_string_value(json_object_get(r->body, "platform")), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, srv_json_int(r->body, "cores", 1));
	sqlite3_bind_int64(st, 4, r->now);
	srv_db_bind_text(st, 5, rates);
	sqlite3_bind_int64(st, 6, volunteer); /* the token it came with: one volunteer, one vote */
	free(rates);
	result = srv_db_exec(ctx->db, st);
	if (result)
		return result;
	int64_t node = sqlite3_last_insert_rowid(srv_db_handle(ctx->db));
	json_t *programs = json_object_get(r->body, "programs");
	if (programs && (result = srv_prog_node_caps(ctx->db, node, programs, r->why, sizeof(r->why))))
		return result; /* the dispatcher rolls the enrollment back */
	result = srv_auth_issue(ctx->db, "node", 0, node, 0, 0, NULL, r->now, token);
	if (result)
		return result;
	if (!ctx->quiet) {
		char shown[4 * 64 + 1];
		fprintf(stderr, "node %lld enrolled: %s\n", (long long)node,
			ts_escape_ctrl(name, shown, sizeof(shown)));
	}
	r->status = 201;
	r->reply = json_pack("{s:I,s:s}", "node_id", (json_int_t)node, "node_token", token);
	return TS_OK;
}

ts_err api_node_list(srv_ctx *ctx, srv_req *r)
{
	json_t *nodes = json_array();
	sqlite3_stmt *st = srv_db_stmt(ctx->db, Q_NODE_LIST);
	ts_err result;
	int row;
	while (!(result = srv_db_step(ctx->db, st, &row)) && row)
		json_array_append_new(nodes, srv_view_node(st, r->now, ctx->node_timeout_s));
	sqlite3_reset(st);
	if (result) {
		json_decref(nodes);
		return result;
	}
	r->reply = json_pack("{s:o}", "nodes", nodes);
	return r->reply ? TS_OK : TS_ERR_NOMEM;
}

/* Disabling a node refuses its token at once and ends its leases, so its units go elsewhere. */
static ts_err node_set_disabled(srv_ctx *ctx, srv_req *r, int disabled)
{
	sqlite3_stmt *st = srv_db_stmt(ctx->db, Q_NODE_GET);
	sqlite3_bind_int64(st, 1, r->id);
	int found;
	ts_err result = srv_db_step(ctx->db, st, &found);
	sqlite3_reset(st);
	if (!result && !found) {
		snprintf(r->why, sizeof(r->why), "no node %lld", (long long)r->id);
		return TS_ERR_NOT_FOUND;
	}
	if (!result)
		result = srv_work_node_set_disabled(ctx, r->id, disabled, r->now);
	if (result)
		return result;
	st = srv_db_stmt(ctx->db, Q_NODE_GET);
	sqlite3_bind_int64(st, 1, r->id);
	result = srv_db_step(ctx->db, st, &found);
	if (found)
		r->reply = srv_view_node(st, r->now, ctx->node_timeout_s);
	sqlite3_reset(st);
	if (result)
		return result;
	if (!ctx->quiet) {
		char by[4 * sizeof(r->who.name)];
		fprintf(stderr, "node %lld %s by %s\n", (long long)r->id, disabled ? "disabled" : "enabled",
			ts_escape_ctrl(r->who.name, by, sizeof(by)));
	}
	return r->reply ? TS_OK : TS_ERR_DB;
}

ts_err api_node_disable(srv_ctx *ctx, srv_req *r)
{
	return node_set_disabled(ctx, r, 1);
}

ts_err api_node_enable(srv_ctx *ctx, srv_req *r)
{
	return node_set_disabled(ctx, r, 0);
}

/* Disables every node of one volunteer (the nodes enrolled with one enrollment token) and
 * revokes the token, so that volunteer can enroll no more nodes with it. */
ts_err api_enroll_disable_nodes(srv_ctx *ctx, srv_req *r)
{
	sqlite3_stmt *st = srv_db_stmt(ctx->db, Q_TOKEN_GET);
	sqlite3_bind_int64(st, 1, r->id);
	int row;
	ts_err result = srv_db_step(ctx->db, st, &row);
	int found = row && strcmp((const char *)sqlite3_column_text(st, 1), "enroll") == 0;
	sqlite3_reset(st);
	if (result)
		return result;
	if (!found) {
		snprintf(r->why, sizeof(r->why), "no enrollment token %lld", (long long)r->id);
		return TS_ERR_NOT_FOUND;
	}
	int n = 0;
	result = srv_work_volunteer_disable(ctx, r->id, r->now, &n);
	if (!result)
		result = SRV_EXEC(ctx->db, Q_TOKEN_REVOKE, r->id);
	if (result)
		return result;
	if (!ctx->quiet) {
		char by[4 * sizeof(r->who.name)];
		fprintf(stderr, "enrollment token %lld revoked and its %d nodes disabled by %s\n", (long long)r->id,
			n, ts_escape_ctrl(r->who.name, by, sizeof(by)));
	}
	r->reply = json_pack("{s:I,s:i,s:b}", "enroll_token_id", (json_int_t)r->id, "disabled", n, "revoked", 1);
	return r->reply ? TS_OK : TS_ERR_NOMEM;
}
