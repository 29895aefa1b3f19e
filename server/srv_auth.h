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

typedef struct srv_principal {
	int role;           /* one enum srv_role bit, or ROLE_NONE */
	int64_t user_id;    /* people */
	int64_t node_id;    /* nodes */
	char name[64];      /* user name, for logs and job owners */
	int64_t token_id;   /* the token used, so logout can revoke it */
	int64_t expires_at; /* its expiry, 0 for none */
	int64_t last_seen;  /* nodes: when the store last saw it */
} srv_principal;

ts_err srv_auth_hash_password(const char *password, char out[SRV_PW_HASH_MAX]);
/* 1 if password matches the stored hash. */
int srv_auth_check_password(const char *password, const char *stored);

/* Resolves "Bearer <token>" (header may be NULL): TS_ERR_UNAUTHORIZED for none, unknown,
 * expired or revoked tokens (and enrollment tokens, which are not bearer tokens),
 * TS_ERR_FORBIDDEN for a disabled user or node. */
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

/* Login: checks the name and password and issues a session token. Unknown users cost the same
 * time as known ones. */
ts_err srv_auth_login(srv_db *db, const char *user, const char *password, int64_t now,
		      char token[TS_TOKEN_MAX], char role[16], int64_t *expires_at);

#endif
