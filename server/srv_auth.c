#include "srv_auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "ts_util.h"

#ifdef SRV_PW_LOG_N
#define PW_LOG_N SRV_PW_LOG_N /* the fuzz build: a cheap KDF so login can be explored */
#else
#define PW_LOG_N 15
#endif
#define PW_R 8
#define PW_P 1
#define PW_SALT 16
#define PW_LEN 32
#define PW_MAXMEM (64u << 20)

static int pw_derive(const char *password, const unsigned char *salt, size_t saltlen, int log_n,
		     int r, int p, unsigned char out[PW_LEN])
{
	return EVP_PBE_scrypt(password, strlen(password), salt, saltlen, (uint64_t)1 << log_n,
			      (uint64_t)r, (uint64_t)p, PW_MAXMEM, out, PW_LEN) == 1;
}

ts_err srv_auth_hash_password(const char *password, char out[SRV_PW_HASH_MAX])
{
	unsigned char salt[PW_SALT], dk[PW_LEN];
	char salt64[32], dk64[64];
	if (ts_random(salt, sizeof(salt)))
		return TS_ERR_INTERNAL;
	if (!pw_derive(password, salt, sizeof(salt), PW_LOG_N, PW_R, PW_P, dk))
		return TS_ERR_INTERNAL;
	ts_b64url_encode(salt, sizeof(salt), salt64);
	ts_b64url_encode(dk, sizeof(dk), dk64);
	snprintf(out, SRV_PW_HASH_MAX, "scrypt$%d$%d$%d$%s$%s", PW_LOG_N, PW_R, PW_P, salt64, dk64);
	return TS_OK;
}

int srv_auth_check_password(const char *password, const char *stored)
{
	int log_n, r, p;
	char salt64[64], dk64[64];
	unsigned char salt[48], want[48], got[PW_LEN];
	if (sscanf(stored, "scrypt$%d$%d$%d$%63[^$]$%63s", &log_n, &r, &p, salt64, dk64) != 5)
		return 0;
	if (log_n < 10 || log_n > 20 || r < 1 || r > 32 || p < 1 || p > 16)
		return 0;
	long saltlen = ts_b64url_decode(salt64, salt, sizeof(salt));
	if (saltlen <= 0 || ts_b64url_decode(dk64, want, sizeof(want)) != PW_LEN)
		return 0;
	if (!pw_derive(password, salt, (size_t)saltlen, log_n, r, p, got))
		return 0;
	return ts_ct_equal(got, want, PW_LEN);
}

/* The role a token kind and user role give. */
static int auth_role(const char *kind, const char *user_role)
{
	if (strcmp(kind, "node") == 0)
		return ROLE_NODE;
	if (strcmp(kind, "session") != 0 && strcmp(kind, "api") != 0)
		return ROLE_NONE; /* enrollment tokens only work in the enroll body */
	if (user_role && strcmp(user_role, "admin") == 0)
		return ROLE_ADMIN;
	if (user_role && strcmp(user_role, "user") == 0)
		return ROLE_USER;
	return ROLE_NONE;
}

int srv_auth_is_api(const srv_principal *p)
{
	return strcmp(p->kind, "api") == 0;
}

/* Steps Q_TOKEN_BY_HASH to the row of this hash. The lookup is by hash; the stored hash is
 * compared again in constant time so that no early-exit compare decides. TS_OK with *out on
 * its row; TS_ERR_UNAUTHORIZED (reset) when there is none; the store's error when the read
 * failed, which must not read as "no such token". */
static ts_err token_row(srv_db *db, const char hash[TS_TOKEN_HASH_HEX], sqlite3_stmt **out)
{
	sqlite3_stmt *st = srv_db_stmt(db, Q_TOKEN_BY_HASH);
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	ts_err result = TS_ERR_UNAUTHORIZED;
	if (rc == SQLITE_ROW) {
		const char *stored = (const char *)sqlite3_column_text(st, 0);
		if (stored && strlen(stored) == 64 && ts_ct_equal(stored, hash, 64)) {
			*out = st;
			return TS_OK;
		}
	} else if (rc != SQLITE_DONE) {
		result = srv_db_error(db, rc, "token lookup");
	}
	sqlite3_reset(st);
	*out = NULL;
	return result;
}

ts_err srv_auth_bearer(srv_db *db, const char *header, int64_t now, srv_principal *p)
{
	char hash[TS_TOKEN_HASH_HEX];
	memset(p, 0, sizeof(*p));
	if (!header || strncasecmp(header, "Bearer ", 7) != 0)
		return TS_ERR_UNAUTHORIZED;
	const char *token = header + 7;
	while (*token == ' ')
		token++;
	if (*token == '\0' || strlen(token) >= TS_TOKEN_MAX)
		return TS_ERR_UNAUTHORIZED;
	ts_token_hash(token, hash);
	sqlite3_stmt *st;
	ts_err result = token_row(db, hash, &st);
	if (result)
		return result;
	result = TS_ERR_UNAUTHORIZED;
	const char *kind = (const char *)sqlite3_column_text(st, 1);
	int role = auth_role(kind ? kind : "", (const char *)sqlite3_column_text(st, 7));
	if (role == ROLE_NONE || sqlite3_column_int(st, 6))
		goto out;
	if (sqlite3_column_type(st, 5) != SQLITE_NULL && sqlite3_column_int64(st, 5) <= now)
		goto out;
	if (sqlite3_column_int(st, 9)) {
		result = TS_ERR_FORBIDDEN;
		goto out;
	}
	p->role = role;
	p->token_id = sqlite3_column_int64(st, 10);
	p->expires_at = sqlite3_column_int64(st, 5);
	p->last_seen = sqlite3_column_int64(st, 11);
	p->user_id = sqlite3_column_int64(st, 2);
	p->node_id = sqlite3_column_int64(st, 3);
	const char *name = (const char *)sqlite3_column_text(st, 8);
	snprintf(p->name, sizeof(p->name), "%s", name ? name : "");
	snprintf(p->kind, sizeof(p->kind), "%s", kind);
	result = TS_OK;
out:
	sqlite3_reset(st);
	return result;
}

static ts_err auth_issue(srv_db *db, const char *kind, int64_t user_id, int64_t node_id,
			 int64_t uses, int64_t expires_at, const unsigned char *pin, const char *name,
			 int64_t now, char out[TS_TOKEN_MAX]);

ts_err srv_auth_issue(srv_db *db, const char *kind, int64_t user_id, int64_t node_id,
		      int64_t uses, int64_t expires_at, const unsigned char *pin, int64_t now,
		      char out[TS_TOKEN_MAX])
{
	return auth_issue(db, kind, user_id, node_id, uses, expires_at, pin, NULL, now, out);
}

ts_err srv_auth_issue_named(srv_db *db, const char *kind, int64_t user_id, const char *name,
			    int64_t expires_at, int64_t now, char out[TS_TOKEN_MAX], int64_t *id)
{
	ts_err result = auth_issue(db, kind, user_id, 0, 0, expires_at, NULL, name, now, out);
	*id = result ? 0 : sqlite3_last_insert_rowid(srv_db_handle(db));
	return result;
}

static ts_err auth_issue(srv_db *db, const char *kind, int64_t user_id, int64_t node_id,
			 int64_t uses, int64_t expires_at, const unsigned char *pin, const char *name,
			 int64_t now, char out[TS_TOKEN_MAX])
{
	static const struct {
		const char *kind, *prefix;
	} kinds[] = {
		{"session", TS_TOKEN_SESSION},
		{"api", TS_TOKEN_API},
		{"node", TS_TOKEN_NODE},
		{"enroll", TS_TOKEN_ENROLL},
	};
	char hash[TS_TOKEN_HASH_HEX], secret[TS_TOKEN_MAX];
	const char *prefix = NULL;
	ts_err result;
	for (size_t i = 0; i < TS_ARRAY_LEN(kinds); i++)
		if (strcmp(kinds[i].kind, kind) == 0)
			prefix = kinds[i].prefix;
	if (!prefix)
		return TS_ERR_INTERNAL;
	if (pin) {
		result = ts_token_make_enroll(pin, out);
		if (!result)
			result = ts_token_parse_enroll(out, secret, NULL);
		if (result)
			return result;
		ts_token_hash(secret, hash);
	} else {
		result = ts_token_make(prefix, out);
		if (result)
			return result;
		ts_token_hash(out, hash);
	}
	sqlite3_stmt *st = srv_db_stmt(db, Q_TOKEN_INSERT);
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
	user_id ? sqlite3_bind_int64(st, 3, user_id) : sqlite3_bind_null(st, 3);
	node_id ? sqlite3_bind_int64(st, 4, node_id) : sqlite3_bind_null(st, 4);
	uses ? sqlite3_bind_int64(st, 5, uses) : sqlite3_bind_null(st, 5);
	expires_at ? sqlite3_bind_int64(st, 6, expires_at) : sqlite3_bind_null(st, 6);
	sqlite3_bind_int64(st, 7, now);
	srv_db_bind_text(st, 8, name);
	return srv_db_exec(db, st);
}

/* The row of a live enrollment token (not revoked, its volunteer not disabled): st is left on
 * it for the caller to read and reset; hash gets the token's hash. Uses and expiry are the
 * caller's: they limit new nodes only. */
static ts_err enroll_row(srv_db *db, const char *token, char hash[TS_TOKEN_HASH_HEX], sqlite3_stmt **st)
{
	char secret[TS_TOKEN_MAX];
	if (strlen(token) >= TS_TOKEN_MAX || ts_token_parse_enroll(token, secret, NULL))
		return TS_ERR_UNAUTHORIZED;
	ts_token_hash(secret, hash);
	ts_err result = token_row(db, hash, st);
	if (result)
		return result;
	const char *kind = (const char *)sqlite3_column_text(*st, 1);
	if (kind && strcmp(kind, "enroll") == 0 && !sqlite3_column_int(*st, 6) && !sqlite3_column_int(*st, 9))
		return TS_OK;
	sqlite3_reset(*st);
	return TS_ERR_UNAUTHORIZED;
}

ts_err srv_auth_use_enroll(srv_db *db, const char *token, int64_t now, int64_t *token_id)
{
	char hash[TS_TOKEN_HASH_HEX];
	sqlite3_stmt *st;
	ts_err result = enroll_row(db, token, hash, &st);
	if (result)
		return result;
	result = TS_ERR_UNAUTHORIZED;
	if (sqlite3_column_int64(st, 4) <= 0 || sqlite3_column_int64(st, 5) <= now)
		goto out;
	*token_id = sqlite3_column_int64(st, 10);
	sqlite3_reset(st);
	st = srv_db_stmt(db, Q_TOKEN_USE);
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	result = srv_db_exec(db, st);
	if (!result && sqlite3_changes(srv_db_handle(db)) != 1)
		result = TS_ERR_UNAUTHORIZED;
out:
	sqlite3_reset(st);
	return result;
}

ts_err srv_auth_enroll_live(srv_db *db, const char *token, int64_t *token_id)
{
	char hash[TS_TOKEN_HASH_HEX];
	sqlite3_stmt *st;
	ts_err result = enroll_row(db, token, hash, &st);
	if (result)
		return result;
	*token_id = sqlite3_column_int64(st, 10);
	sqlite3_reset(st);
	return TS_OK;
}

/* A fixed hash to check against when the user does not exist, so the answer takes as long. */
static const char dummy_hash[] = "scrypt$15$8$1$AAAAAAAAAAAAAAAAAAAAAA$"
				 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

srv_pw_job *srv_pw_job_new(void)
{
	return calloc(1, sizeof(srv_pw_job));
}

void srv_pw_job_free(srv_pw_job *job)
{
	if (!job)
		return;
	OPENSSL_cleanse(job, sizeof(*job));
	free(job);
}

void srv_pw_job_run(void *arg)
{
	srv_pw_job *job = arg;
	if (job->check)
		job->match = srv_auth_check_password(job->password, job->stored);
	if (job->hash && (!job->check || job->match))
		job->hashed_result = srv_auth_hash_password(job->new_password, job->hashed);
}

ts_err srv_auth_login_prepare(srv_db *db, const char *user, const char *password, srv_pw_job *job)
{
	ts_err result = TS_OK;
	sqlite3_stmt *st = srv_db_stmt(db, Q_USER_BY_NAME);
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	job->check = 1;
	snprintf(job->password, sizeof(job->password), "%s", password);
	snprintf(job->stored, sizeof(job->stored), "%s", dummy_hash);
	if (rc == SQLITE_ROW) {
		job->user_id = sqlite3_column_int64(st, 0);
		snprintf(job->stored, sizeof(job->stored), "%s", (const char *)sqlite3_column_text(st, 1));
		snprintf(job->role, sizeof(job->role), "%s", (const char *)sqlite3_column_text(st, 2));
		job->disabled = sqlite3_column_int(st, 3);
	} else if (rc != SQLITE_DONE) {
		result = srv_db_error(db, rc, "user lookup");
	}
	sqlite3_reset(st);
	return result;
}

ts_err srv_auth_login_finish(srv_db *db, const srv_pw_job *job, int64_t now,
			     char token[TS_TOKEN_MAX], char role[16], int64_t *expires_at)
{
	if (!job->match || !job->user_id)
		return TS_ERR_UNAUTHORIZED;
	if (job->disabled)
		return TS_ERR_FORBIDDEN;
	snprintf(role, 16, "%s", job->role);
	*expires_at = now + SRV_SESSION_TTL_S;
	return srv_auth_issue(db, "session", job->user_id, 0, 0, *expires_at, NULL, now, token);
}

ts_err srv_auth_login(srv_db *db, const char *user, const char *password, int64_t now,
		      char token[TS_TOKEN_MAX], char role[16], int64_t *expires_at)
{
	srv_pw_job *job = srv_pw_job_new();
	if (!job)
		return TS_ERR_NOMEM;
	ts_err result = srv_auth_login_prepare(db, user, password, job);
	if (!result) {
		srv_pw_job_run(job);
		result = srv_auth_login_finish(db, job, now, token, role, expires_at);
	}
	srv_pw_job_free(job);
	return result;
}

ts_err srv_auth_user_hash(srv_db *db, const char *name, char out[SRV_PW_HASH_MAX])
{
	sqlite3_stmt *st = srv_db_stmt(db, Q_USER_BY_NAME);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	ts_err result = TS_ERR_NOT_FOUND;
	if (rc == SQLITE_ROW) {
		snprintf(out, SRV_PW_HASH_MAX, "%s", (const char *)sqlite3_column_text(st, 1));
		result = TS_OK;
	} else if (rc != SQLITE_DONE) {
		result = srv_db_error(db, rc, "user lookup");
	}
	sqlite3_reset(st);
	return result;
}
