/* srv_users: accounts and tokens: login, me, logout, users (admin), API tokens, enrollment
 * tokens. Every password KDF runs off the loop (srv_http_kdf); the handler's rest continues in
 * a *_done function. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "srv_http.h"
#include "srv_json.h"
#include "ts_token.h"
#include "ts_util.h"

#define TOKEN_TTL_MAX_S 31536000

static json_t *user_row(sqlite3_stmt *st)
{
	json_t *grants = json_array();
	if (grants && sqlite3_column_int(st, 6))
		json_array_append_new(grants, json_string("programs"));
	return json_pack("{s:I,s:s,s:s,s:b,s:I,s:I,s:o}", "id", (json_int_t)sqlite3_column_int64(st, 0),
			 "username", (const char *)sqlite3_column_text(st, 1), "role",
			 (const char *)sqlite3_column_text(st, 2), "disabled", sqlite3_column_int(st, 3),
			 "created_at", (json_int_t)sqlite3_column_int64(st, 4), "jobs",
			 (json_int_t)sqlite3_column_int64(st, 5), "grants", grants);
}

/* The user's view into r->reply; TS_ERR_NOT_FOUND with a message if there is none. */
static ts_err user_reply(srv_ctx *ctx, srv_req *r, int64_t id)
{
	sqlite3_stmt *st = srv_db_stmt(ctx->db, Q_USER_GET);
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	ts_err result = TS_OK;
	if (rc == SQLITE_ROW)
		r->reply = user_row(st);
	else if (rc != SQLITE_DONE)
		result = srv_db_error(ctx->db, rc, "user");
	sqlite3_reset(st);
	if (result || r->reply)
		return result;
	snprintf(r->why, sizeof(r->why), "no user %lld", (long long)id);
	return TS_ERR_NOT_FOUND;
}

/* Ends a read loop: TS_OK when it ran to SQLITE_DONE, else the store's error (with why), so
 * that a failed read never passes for "no more rows". Resets st. */
static ts_err rows_end(srv_ctx *ctx, srv_req *r, sqlite3_stmt *st, int rc, const char *what)
{
	ts_err result = rc == SQLITE_DONE ? TS_OK : srv_db_error(ctx->db, rc, what);
	sqlite3_reset(st);
	if (result)
		snprintf(r->why, sizeof(r->why), "the store could not read %s; retry", what);
	return result;
}

/* API tokens run scripts and services: they may not change passwords or manage tokens, so a
 * leaked one cannot lock its owner out or mint itself successors. */
static ts_err refuse_api_token(srv_req *r, const char *what)
{
	if (!srv_auth_is_api(&r->who))
		return TS_OK;
	snprintf(r->why, sizeof(r->why), "an API token cannot %s; log in with your password", what);
	return TS_ERR_FORBIDDEN;
}

static ts_err login_done(srv_ctx *ctx, srv_req *r, srv_pw_job *job)
{
	char token[TS_TOKEN_MAX], role[16] = "";
	int64_t expires = 0;
	ts_err result = srv_auth_login_finish(ctx->db, job, r->now, token, role, &expires);
	if (result == TS_ERR_UNAUTHORIZED)
		snprintf(r->why, sizeof(r->why), "wrong user name or password");
	else if (result == TS_ERR_FORBIDDEN)
		snprintf(r->why, sizeof(r->why), "this account is disabled");
	if (result)
		return result;
	r->reply = json_pack("{s:s,s:s,s:I}", "token", token, "role", role, "expires_at",
			     (json_int_t)expires);
	return TS_OK;
}

ts_err api_login(srv_ctx *ctx, srv_req *r)
{
	static const srv_field fields[] = {
		{"username", F_TEXT, 1, 1, 64},
		{"password", F_STR, 1, 1, SRV_PW_MAX},
	};
	ts_err result = srv_json_check(r->body, fields, TS_ARRAY_LEN(fields), r->why, sizeof(r->why));
	if (result)
		return result;
	srv_pw_job *job = srv_pw_job_new();
	if (!job)
		return TS_ERR_NOMEM;
	result = srv_auth_login_prepare(ctx->db, json_string_value(json_object_get(r->body, "username")),
					json_string_value(json_object_get(r->body, "password")), job);
	if (result) {
		srv_pw_job_free(job);
		return result;
	}
	return srv_http_kdf(ctx, r, job, login_done);
}

ts_err api_me(srv_ctx *ctx, srv_req *r)
{
	int64_t programs = 0;
	ts_err result = SRV_QUERY_INT(ctx->db, Q_USER_MAY_PROGRAMS, 0, &programs, r->who.user_id);
	if (result)
		return result;
	json_t *grants = json_array();
	if (grants && programs)
		json_array_append_new(grants, json_string("programs"));
	r->reply = json_pack("{s:I,s:s,s:s,s:o,s:o}", "id", (json_int_t)r->who.user_id, "username",
			     r->who.name, "role", r->who.role == ROLE_ADMIN ? "admin" : "user", "expires_at",
			     r->who.expires_at ? json_integer(r->who.expires_at) : json_null(), "grants",
			     grants ? grants : json_array());
	return r->reply ? TS_OK : TS_ERR_NOMEM;
}

ts_err api_logout(srv_ctx *ctx, srv_req *r)
{
	ts_err result = SRV_EXEC(ctx->db, Q_TOKEN_REVOKE, r->who.token_id);
	if (!result)
		r->reply = json_pack("{s:b}", "ok", 1);
	return result;
}

ts_err api_user_list(srv_ctx *ctx, srv_req *r)
{
	json_t *users = json_array();
	sqlite3_stmt *st = srv_db_stmt(ctx->db, Q_USER_LIST);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(users, user_row(st));
	ts_err result = rows_end(ctx, r, st, rc, "the users");
	if (result) {
		json_decref(users);
		return result;
	}
	r->reply = json_pack("{s:o}", "users", users);
	return TS_OK;
}

/* User names: letters, digits and . _ - so they are safe in logs, pages and shells. */
static int name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n < 1 || n > 64)
		return 0;
	return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

static ts_err user_add_done(srv_ctx *ctx, srv_req *r, srv_pw_job *job);

ts_err api_user_add(srv_ctx *ctx, srv_req *r)
{
	static const srv_field fields[] = {
		{"username", F_TEXT, 1, 1, 64},
		{"password", F_STR, 1, 8, SRV_PW_MAX},
		{"role", F_STR, 0, 4, 5},
	};
	ts_err result = srv_json_check(r->body, fields, TS_ARRAY_LEN(fields), r->why, sizeof(r->why));
	if (result)
		return result;
	const char *name = json_string_value(json_object_get(r->body, "username"));
	json_t *jrole = json_object_get(r->body, "role");
	const char *role = jrole ? json_string_value(jrole) : "user";
	if (!name_ok(name)) {
		snprintf(r->why, sizeof(r->why), "user names use letters, digits, '.', '_' and '-'");
		return TS_ERR_BAD_REQUEST;
	}
	if (strcmp(role, "user") != 0 && strcmp(role, "admin") != 0) {
		snprintf(r->why, sizeof(r->why), "role must be 'user' or 'admin'");
		return TS_ERR_BAD_REQUEST;
	}
	srv_pw_job *job = srv_pw_job_new();
	if (job) {
		job->hash = 1;
		snprintf(job->new_password, sizeof(job->new_password), "%s",
			 json_string_value(json_object_get(r->body, "password")));
	}
	return srv_http_kdf(ctx, r, job, user_add_done);
}

/* api_user_add after the new password's hash: the body was checked there. */
static ts_err user_add_done(srv_ctx *ctx, srv_req *r, srv_pw_job *job)
{
	const char *name = json_string_value(json_object_get(r->body, "username"));
	json_t *jrole = json_object_get(r->body, "role");
	const char *role = jrole ? json_string_value(jrole) : "user";
	ts_err result = job->hashed_result;
	if (result)
		return result;
	sqlite3_stmt *st = srv_db_stmt(ctx->db, Q_USER_INSERT);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, job->hashed, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, role, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 4, r->now);
	result = srv_db_exec(ctx->db, st);
	if (result == TS_ERR_CONFLICT)
		snprintf(r->why, sizeof(r->why), "user '%s' exists", name);
	if (result)
		return result;
	if (!ctx->quiet) {
		char by[4 * sizeof(r->who.name)];
		fprintf(stderr, "user %s (%s) added by %s\n", name, role,
			ts_escape_ctrl(r->who.name, by, sizeof(by)));
	}
	r->status = 201;
	return user_reply(ctx, r, sqlite3_last_insert_rowid(srv_db_handle(ctx->db)));
}

/* Refuses to leave the grid without an active admin. */
static ts_err keep_an_admin(srv_ctx *ctx, srv_req *r)
{
	sqlite3_stmt *st = srv_db_stmt(ctx->db, Q_USER_OTHER_ADMINS);
	sqlite3_bind_int64(st, 1, r->id);
	int rc = sqlite3_step(st);
	int64_t others = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	ts_err result = rc == SQLITE_ROW ? TS_OK : srv_db_error(ctx->db, rc, "admins");
	sqlite3_reset(st);
	if (result || others > 0)
		return result;
	st = srv_db_stmt(ctx->db, Q_USER_GET);
	sqlite3_bind_int64(st, 1, r->id);
	rc = sqlite3_step(st);
	int is_admin = rc == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 2), "admin") == 0;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		result = srv_db_error(ctx->db, rc, "user");
	sqlite3_reset(st);
	if (result || !is_admin)
		return result;
	snprintf(r->why, sizeof(r->why), "this is the last active admin");
	return TS_ERR_CONFLICT;
}

static ts_err user_set_disabled(srv_ctx *ctx, srv_req *r, int disabled)
{
	ts_err result = user_reply(ctx, r, r->id);
	if (result)
		return result;
	json_decref(r->reply);
	r->reply = NULL;
	if (disabled && (result = keep_an_admin(ctx, r)))
		return result;
	result = SRV_EXEC(ctx->db, Q_USER_SET_DISABLED, r->id, disabled);
	return result ? result : user_reply(ctx, r, r->id);
}

ts_err api_user_disable(srv_ctx *ctx, srv_req *r)
{
	return user_set_disabled(ctx, r, 1);
}

ts_err api_user_enable(srv_ctx *ctx, srv_req *r)
{
	return user_set_disabled(ctx, r, 0);
}

/* Grants: {"grant": "programs"} (the only one: who may run code on the volunteers' nodes). */
static ts_err user_set_grant(srv_ctx *ctx, srv_req *r, int on)
{
	static const srv_field fields[] = {
		{"grant", F_TEXT, 1, 1, 32},
	};
	ts_err result = srv_json_check(r->body, fields, TS_ARRAY_LEN(fields), r->why, sizeof(r->why));
	if (result)
		return result;
	const char *grant = json_string_value(json_object_get(r->body, "grant"));
	if (strcmp(grant, "programs") != 0) {
		char q[SRV_QUOTE_MAX];
		snprintf(r->why, sizeof(r->why), "unknown grant '%s'; known: programs", srv_json_quote(grant, q));
		return TS_ERR_BAD_REQUEST;
	}
	result = SRV_EXEC(ctx->db, Q_USER_SET_PROGRAMS, r->id, on);
	if (result)
		return result;
	if (sqlite3_changes(srv_db_handle(ctx->db)) == 0) {
		snprintf(r->why, sizeof(r->why), "no user %lld", (long long)r->id);
		return TS_ERR_NOT_FOUND;
	}
	return user_reply(ctx, r, r->id);
}

ts_err api_user_grant(srv_ctx *ctx, srv_req *r)
{
	return user_set_grant(ctx, r, 1);
}

ts_err api_user_revoke(srv_ctx *ctx, srv_req *r)
{
	return user_set_grant(ctx, r, 0);
}

/* api_user_password after the KDF: the current password checked (self-service), the new one
 * hashed. */
static ts_err user_password_done(srv_ctx *ctx, srv_req *r, srv_pw_job *job)
{
	if (job->check && !job->match) {
		/* 403, not 401: the session is fine, and a client must not take this as a logout. */
		snprintf(r->why, sizeof(r->why), "the current password is wrong");
		return TS_ERR_FORBIDDEN;
	}
	if (job->hashed_result)
		return job->hashed_result;
	ts_err result = srv_db_begin(ctx->db);
	if (result)
		return result;
	sqlite3_stmt *st = srv_db_stmt(ctx->db, Q_USER_SET_PASSWORD);
	sqlite3_bind_int64(st, 1, r->id);
	sqlite3_bind_text(st, 2, job->hashed, -1, SQLITE_TRANSIENT);
	result = srv_db_exec(ctx->db, st);
	/* A new password ends the user's other sessions (a stolen one among them). */
	if (!result)
		result = SRV_EXEC(ctx->db, Q_TOKEN_REVOKE_USER, r->id, r->who.token_id);
	if (!result)
		result = srv_db_commit(ctx->db);
	return result ? result : user_reply(ctx, r, r->id);
}

/* Changing one's own password takes the current one (a session left open must not be enough
 * to take the account over); an admin setting another user's does not. */
ts_err api_user_password(srv_ctx *ctx, srv_req *r)
{
	static const srv_field fields[] = {
		{"password", F_STR, 1, 8, SRV_PW_MAX},
		{"current_password", F_STR, 0, 1, SRV_PW_MAX},
	};
	ts_err result = srv_json_check(r->body, fields, TS_ARRAY_LEN(fields), r->why, sizeof(r->why));
	if (result || (result = refuse_api_token(r, "change passwords")))
		return result;
	int self = r->id == r->who.user_id;
	if (r->who.role != ROLE_ADMIN && !self) {
		snprintf(r->why, sizeof(r->why), "only admins change other users' passwords");
		return TS_ERR_FORBIDDEN;
	}
	const char *current = json_string_value(json_object_get(r->body, "current_password"));
	if (self && !current) {
		snprintf(r->why, sizeof(r->why), "current_password is required to change your own password");
		return TS_ERR_BAD_REQUEST;
	}
	result = user_reply(ctx, r, r->id);
	if (result)
		return result;
	json_decref(r->reply);
	r->reply = NULL;
	srv_pw_job *job = srv_pw_job_new();
	if (!job)
		return TS_ERR_NOMEM;
	if (self) {
		job->check = 1;
		snprintf(job->password, sizeof(job->password), "%s", current);
		result = srv_auth_user_hash(ctx->db, r->who.name, job->stored);
		if (result) {
			srv_pw_job_free(job);
			return result;
		}
	}
	job->hash = 1;
	snprintf(job->new_password, sizeof(job->new_password), "%s",
		 json_string_value(json_object_get(r->body, "password")));
	return srv_http_kdf(ctx, r, job, user_password_done);
}

ts_err api_user_delete(srv_ctx *ctx, srv_req *r)
{
	int64_t jobs[256];
	int n = 0;
	ts_err result = user_reply(ctx, r, r->id);
	if (result)
		return result;
	json_decref(r->reply);
	r->reply = NULL;
	if ((result = keep_an_admin(ctx, r)))
		return result;
	if ((result = srv_db_begin(ctx->db)))
		return result;
	/* The user's tokens die with it and its open jobs stop handing out work. */
	result = SRV_EXEC(ctx->db, Q_TOKEN_REVOKE_USER, r->id, 0);
	sqlite3_stmt *st = srv_db_stmt(ctx->db, Q_USER_OPEN_JOBS);
	sqlite3_bind_int64(st, 1, r->id);
	int rc = SQLITE_DONE;
	while (n < 256 && (rc = sqlite3_step(st)) == SQLITE_ROW)
		jobs[n++] = sqlite3_column_int64(st, 0);
	ts_err read = rows_end(ctx, r, st, rc == SQLITE_ROW ? SQLITE_DONE : rc, "the user's jobs");
	if (!result)
		result = read;
	for (int i = 0; i < n && !result; i++) {
		result = SRV_EXEC(ctx->db, Q_JOB_CANCEL, jobs[i], r->now);
		if (!result)
			result = SRV_EXEC(ctx->db, Q_UNIT_DROP_JOB, jobs[i]);
		if (!result)
			result = SRV_EXEC(ctx->db, Q_REPLICA_DROP_JOB, jobs[i]);
	}
	if (!result)
		result = SRV_EXEC(ctx->db, Q_USER_DELETE, r->id);
	if (!result)
		result = srv_db_commit(ctx->db);
	if (result)
		return result;
	r->reply = json_pack("{s:b}", "ok", 1);
	return TS_OK;
}

ts_err api_token_list(srv_ctx *ctx, srv_req *r)
{
	ts_err result = refuse_api_token(r, "list tokens");
	if (result)
		return result;
	json_t *tokens = json_array();
	sqlite3_stmt *st = srv_db_stmt(ctx->db, Q_TOKEN_LIST);
	sqlite3_bind_int64(st, 1, r->who.user_id);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(tokens, json_pack("{s:I,s:s,s:I,s:I,s:b}", "id",
			(json_int_t)sqlite3_column_int64(st, 0), "name",
			(const char *)sqlite3_column_text(st, 1), "created_at",
			(json_int_t)sqlite3_column_int64(st, 2), "expires_at",
			(json_int_t)sqlite3_column_int64(st, 3), "revoked", sqlite3_column_int(st, 4)));
	if ((result = rows_end(ctx, r, st, rc, "the tokens"))) {
		json_decref(tokens);
		return result;
	}
	r->reply = json_pack("{s:o}", "tokens", tokens);
	return TS_OK;
}

ts_err api_token_create(srv_ctx *ctx, srv_req *r)
{
	static const srv_field fields[] = {
		{"name", F_TEXT, 1, 1, 64}, /* listed to its owner: no control characters */
		{"ttl_s", F_INT, 0, 60, TOKEN_TTL_MAX_S},
	};
	char token[TS_TOKEN_MAX];
	int64_t id;
	ts_err result = srv_json_check(r->body, fields, TS_ARRAY_LEN(fields), r->why, sizeof(r->why));
	if (result || (result = refuse_api_token(r, "create tokens")))
		return result;
	const char *name = json_string_value(json_object_get(r->body, "name"));
	int64_t expires = r->now + srv_json_int(r->body, "ttl_s", 90 * 86400);
	result = srv_auth_issue_named(ctx->db, "api", r->who.user_id, name, expires, r->now, token, &id);
	if (result)
		return result;
	r->status = 201;
	r->reply = json_pack("{s:I,s:s,s:s,s:I}", "id", (json_int_t)id, "name", name, "token", token,
			     "expires_at", (json_int_t)expires);
	return TS_OK;
}

/* Revokes token r->id of one of the kinds in `kind`, if the caller may. */
static ts_err token_revoke(srv_ctx *ctx, srv_req *r, const char *kind)
{
	sqlite3_stmt *st = srv_db_stmt(ctx->db, Q_TOKEN_GET);
	sqlite3_bind_int64(st, 1, r->id);
	int rc = sqlite3_step(st);
	int found = rc == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 1), kind) == 0;
	int64_t owner = found ? sqlite3_column_int64(st, 2) : 0;
	ts_err result = rows_end(ctx, r, st, rc == SQLITE_ROW ? SQLITE_DONE : rc, "the token");
	if (result)
		return result;
	if (!found || (r->who.role != ROLE_ADMIN && owner != r->who.user_id)) {
		/* Someone else's token looks the same as none: ids are not secrets, but no need to say. */
		snprintf(r->why, sizeof(r->why), "no such token");
		return TS_ERR_NOT_FOUND;
	}
	result = SRV_EXEC(ctx->db, Q_TOKEN_REVOKE, r->id);
	if (!result)
		r->reply = json_pack("{s:b}", "ok", 1);
	return result;
}

ts_err api_token_revoke(srv_ctx *ctx, srv_req *r)
{
	ts_err result = refuse_api_token(r, "revoke tokens");
	return result ? result : token_revoke(ctx, r, "api");
}

ts_err api_enroll_list(srv_ctx *ctx, srv_req *r)
{
	json_t *tokens = json_array();
	sqlite3_stmt *st = srv_db_stmt(ctx->db, Q_ENROLL_LIST);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(tokens, json_pack("{s:I,s:I,s:I,s:b,s:I}", "id",
			(json_int_t)sqlite3_column_int64(st, 0), "uses_left",
			(json_int_t)sqlite3_column_int64(st, 1), "expires_at",
			(json_int_t)sqlite3_column_int64(st, 2), "revoked", sqlite3_column_int(st, 3),
			"created_at", (json_int_t)sqlite3_column_int64(st, 4)));
	ts_err result = rows_end(ctx, r, st, rc, "the enrollment tokens");
	if (result) {
		json_decref(tokens);
		return result;
	}
	r->reply = json_pack("{s:o}", "tokens", tokens);
	return TS_OK;
}

ts_err api_enroll_revoke(srv_ctx *ctx, srv_req *r)
{
	return token_revoke(ctx, r, "enroll");
}
