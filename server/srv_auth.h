/* srv_auth: passwords, tokens and who is asking.
 *
 * Passwords: scrypt (OpenSSL EVP_PBE_scrypt) with a 16-byte per-user salt, N=2^15, r=8, p=1
 * (32 MiB, ~0.1 s per check), stored as "scrypt$15$8$1$<salt>$<hash>" in base64url.
 * Tokens: 256 random bits, only their SHA-256 stored (common/ts_token.h). */
#ifndef SRV_AUTH_H
#define SRV_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "srv_db.h"
#include "ts_err.h"
#include "ts_token.h"

/* Roles as bits, so a route names the set it admits. */
enum srv_role {
	ROLE_NONE = 0,
	ROLE_USER = 1 << 0,
	ROLE_ADMIN = 1 << 1,
	ROLE_NODE = 1 << 2,
};
#define ROLE_ANY (-1)
#define ROLE_PEOPLE (ROLE_USER | ROLE_ADMIN)

#define SRV_SESSION_TTL_S (12 * 3600)
#define SRV_PW_HASH_MAX 160
#define SRV_PW_MAX 1024 /* bytes of a password */

typedef struct srv_principal {
	int role;           /* one enum srv_role bit, or ROLE_NONE */
	int64_t user_id;    /* people */
	int64_t node_id;    /* nodes */
	char name[64];      /* user name, for logs and job owners */
	int64_t token_id;   /* the token used, so logout can revoke it */
	int64_t expires_at; /* its expiry, 0 for none */
	int64_t last_seen;  /* nodes: when the store last saw it */
	char kind[12];      /* the token's kind: "session", "api" or "node" */
} srv_principal;

/* Whether p came with an API token (which may not manage passwords or tokens). */
int srv_auth_is_api(const srv_principal *p);


/* Password work, done off the event loop (srv_kdf) or inline: first an optional check of
 * `password` against `stored`, then, if asked and the check (if any) passed, a new hash of
 * `new_password`. Only the buffers here are touched, so any thread may run it. The user_id,
 * role and disabled fields carry what the handler looked up across the KDF. */
typedef struct srv_pw_job {
	int check, hash;                   /* what to do */
	char password[SRV_PW_MAX + 1];     /* check: the password given */
	char stored[SRV_PW_HASH_MAX];      /* check: the stored hash */
	char new_password[SRV_PW_MAX + 1]; /* hash: the password to hash */
	int match;                         /* out: check passed */
	ts_err hashed_result;              /* out: hash's result */
	char hashed[SRV_PW_HASH_MAX];      /* out: the new hash */
	int64_t user_id;
	int disabled;
	char role[16];
} srv_pw_job;

/* A zeroed job on the heap (NULL: out of memory); free wipes the passwords. */
srv_pw_job *srv_pw_job_new(void);
void srv_pw_job_free(srv_pw_job *job);
/* Runs the job's KDFs (a srv_kdf_work: arg is the job). */
void srv_pw_job_run(void *job);

ts_err srv_auth_hash_password(const char *password, char out[SRV_PW_HASH_MAX]);
/* 1 if password matches the stored hash. */
int srv_auth_check_password(const char *password, const char *stored);

/* Resolves "Bearer <token>" (header may be NULL): TS_ERR_UNAUTHORIZED for none, unknown,
 * expired or revoked tokens (and enrollment tokens, which are not bearer tokens),
 * TS_ERR_FORBIDDEN for a disabled user or node, TS_ERR_UNAVAILABLE or TS_ERR_DB when the
 * store cannot answer (never 401 then: clients take 401 as revocation and stop). */
ts_err srv_auth_bearer(srv_db *db, const char *header, int64_t now, srv_principal *p);

/* Stores the hash of a new token of kind ("session", "enroll", "node", "api") and writes the
 * token into out. For "enroll", pin is the 32-byte digest to embed; else NULL. */
ts_err srv_auth_issue(srv_db *db, const char *kind, int64_t user_id, int64_t node_id,
		      int64_t uses, int64_t expires_at, const unsigned char *pin, int64_t now,
		      char out[TS_TOKEN_MAX]);
/* The same for a named API token; *id gets the new token's id. */
ts_err srv_auth_issue_named(srv_db *db, const char *kind, int64_t user_id, const char *name,
			    int64_t expires_at, int64_t now, char out[TS_TOKEN_MAX], int64_t *id);

/* Checks and consumes one use of an enrollment token (call inside a transaction); *token_id
 * gets its id, which names the volunteer its nodes belong to. */
ts_err srv_auth_use_enroll(srv_db *db, const char *token, int64_t now, int64_t *token_id);

/* Whether an enrollment token is still one (not revoked, its admin not disabled), whatever its
 * uses and expiry: a BOINC host sends it as its account key on every RPC. *token_id: its id. */
ts_err srv_auth_enroll_live(srv_db *db, const char *token, int64_t *token_id);

/* Login in two halves around the KDF. prepare looks the user up and fills job (a check
 * against the user's hash, or a fixed one for unknown users, so they cost the same time);
 * TS_ERR_UNAVAILABLE or TS_ERR_DB when the store fails. finish, after srv_pw_job_run, issues
 * the session: TS_ERR_UNAUTHORIZED for a wrong name or password, TS_ERR_FORBIDDEN for a
 * disabled account. */
ts_err srv_auth_login_prepare(srv_db *db, const char *user, const char *password, srv_pw_job *job);
ts_err srv_auth_login_finish(srv_db *db, const srv_pw_job *job, int64_t now,
			     char token[TS_TOKEN_MAX], char role[16], int64_t *expires_at);
/* Both halves with the KDF inline (blocks for the KDF: not for the event loop). */
ts_err srv_auth_login(srv_db *db, const char *user, const char *password, int64_t now,
		      char token[TS_TOKEN_MAX], char role[16], int64_t *expires_at);
/* The stored hash of the user called name into out; TS_ERR_NOT_FOUND when there is none. */
ts_err srv_auth_user_hash(srv_db *db, const char *name, char out[SRV_PW_HASH_MAX]);

#endif
