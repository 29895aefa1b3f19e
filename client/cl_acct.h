/* cl_acct: the tessera CLI's account commands: `users`, `token` and `whoami`, and their text
 * views of the API's user and token objects.
 *
 * Commands follow cl_args_cmd's contract (argv[0] is "tessera NAME"; they return the exit
 * status: 0, 1 when the request failed, 2 for a usage error) and are run through
 * cl_args_dispatch, which their usage messages need. Users are addressed by name; the id the
 * API wants is looked up with GET /api/v1/users (GET /api/v1/me for oneself). */
#ifndef CL_ACCT_H
#define CL_ACCT_H

#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

/* users list [--json] | add NAME [--role user|admin] | disable NAME | enable NAME |
 * passwd [NAME] | remove NAME [--yes] */
int cl_acct_users(int argc, char **argv);
/* token create [--uses N] [--ttl S] | create --api NAME [--ttl S] | list [--api] [--json] |
 * revoke [--api] ID */
int cl_acct_token(int argc, char **argv);
/* whoami [--json] */
int cl_acct_whoami(int argc, char **argv);

/* Tables of GET /api/v1/users, /tokens and /enroll-tokens' arrays; now decides "expired". */
void cl_acct_print_users(FILE *f, const json_t *users);
void cl_acct_print_api_tokens(FILE *f, const json_t *tokens, int64_t now);
void cl_acct_print_enroll_tokens(FILE *f, const json_t *tokens, int64_t now);

/* A token's state in words: "revoked", "expired", "used up" (uses_left 0, for enrollment
 * tokens; pass -1 for API tokens) or "active". */
const char *cl_acct_token_state(int revoked, int64_t expires_at, int64_t uses_left, int64_t now);

#endif
