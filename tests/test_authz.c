/* The authorization matrix: every route of the server's own table against every kind of
 * caller. A new route is covered the moment it is added to the table. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "srv_http.h"
#include "th_harness.h"
#include "ts_token.h"

enum caller { NONE, BOGUS, EXPIRED, REVOKED, USER, OTHER, ADMIN, NODE, DISABLED_USER, DISABLED_NODE, N_CALLERS };

static const char *const caller_names[N_CALLERS] = {
	"no token", "bad token", "expired", "revoked", "user", "other user", "admin", "node",
	"disabled user", "disabled node",
};

static th_server srv;
static char tokens[N_CALLERS][160];

static void setup(void)
{
	th_server_start(&srv);
}

static void teardown(void)
{
	th_server_stop(&srv);
}

static void login(const char *user, const char *password, char *out)
{
	char body[256];
	json_t *reply = NULL;
	snprintf(body, sizeof(body), "{\"username\":\"%s\",\"password\":\"%s\"}", user, password);
	cr_assert_eq(th_http(&srv, "POST", "/api/v1/login", NULL, body, strlen(body), 0, &reply), 200, "login %s", user);
	snprintf(out, 160, "%s", json_string_value(json_object_get(reply, "token")));
	json_decref(reply);
}

static int64_t add_user(const char *name)
{
	char body[256];
	json_t *reply = NULL;
	snprintf(body, sizeof(body), "{\"username\":\"%s\",\"password\":\"password-%s\",\"role\":\"user\"}", name, name);
	cr_assert_eq(th_http(&srv, "POST", "/api/v1/users", srv.admin_token, body, strlen(body), 0, &reply), 201);
	int64_t id = json_integer_value(json_object_get(reply, "id"));
	json_decref(reply);
	return id;
}

static void make_callers(void)
{
	char body[128], path[64];
	json_t *reply = NULL;
	snprintf(tokens[BOGUS], 160, "tsa.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
	snprintf(tokens[ADMIN], 160, "%s", srv.admin_token);
	int64_t alice = add_user("alice");
	int64_t bob = add_user("bob");
	int64_t carol = add_user("carol");
	/* Programs need a grant on top of the role: alice and bob have it (test_programs refuses
	 * those without). */
	for (int64_t who = alice; who <= bob; who++) {
		snprintf(path, sizeof(path), "/api/v1/users/%lld/grant", (long long)who);
		cr_assert_eq(th_http(&srv, "POST", path, srv.admin_token, "{\"grant\":\"programs\"}", 20, 0, NULL), 200);
	}
	login("alice", "password-alice", tokens[USER]);
	login("bob", "password-bob", tokens[OTHER]);
	login("carol", "password-carol", tokens[DISABLED_USER]);
	snprintf(path, sizeof(path), "/api/v1/users/%lld/disable", (long long)carol);
	cr_assert_eq(th_http(&srv, "POST", path, srv.admin_token, NULL, 0, 0, NULL), 200);
	/* An API token, then revoked. */
	snprintf(body, sizeof(body), "{\"name\":\"ci\"}");
	cr_assert_eq(th_http(&srv, "POST", "/api/v1/tokens", tokens[USER], body, strlen(body), 0, &reply), 201);
	snprintf(tokens[REVOKED], 160, "%s", json_string_value(json_object_get(reply, "token")));
	snprintf(path, sizeof(path), "/api/v1/tokens/%lld", (long long)json_integer_value(json_object_get(reply, "id")));
	json_decref(reply);
	cr_assert_eq(th_http(&srv, "DELETE", path, tokens[USER], NULL, 0, 0, NULL), 200);
	/* An expired session of alice's: the API cannot make one, the store can. */
	char hash[TS_TOKEN_HASH_HEX], sql[512];
	snprintf(tokens[EXPIRED], 160, "tss.EXPIREDEXPIREDEXPIREDEXPIREDEXPIREDEXPIREDX");
	ts_token_hash(tokens[EXPIRED], hash);
	snprintf(sql, sizeof(sql), "INSERT INTO tokens (hash, kind, user_id, expires_at, created_at)"
		 " SELECT '%s', 'session', id, 1000, 1 FROM users WHERE name = 'alice'", hash);
	th_db_exec(&srv, sql);
	th_enroll_node(&srv, "worker", tokens[NODE], 160);
	int64_t bad = th_enroll_node(&srv, "banned", tokens[DISABLED_NODE], 160);
	snprintf(path, sizeof(path), "/api/v1/nodes/%lld/disable", (long long)bad);
	cr_assert_eq(th_http(&srv, "POST", path, srv.admin_token, NULL, 0, 0, NULL), 200);
}

/* What a route's roles say about a caller: 0 allowed, else the status it must get. */
static long expected(const srv_route *route, enum caller c)
{
	if (route->roles == ROLE_ANY)
		return 0;
	switch (c) {
	case NONE: case BOGUS: case EXPIRED: case REVOKED:
		return 401;
	case DISABLED_USER: case DISABLED_NODE:
		return 403;
	case USER: case OTHER:
		return route->roles & ROLE_USER ? 0 : 403;
	case ADMIN:
		return route->roles & ROLE_ADMIN ? 0 : 403;
	case NODE:
		return route->roles & ROLE_NODE ? 0 : 403;
	default:
		return -1;
	}
}

static const char *method_str(enum evhttp_cmd_type m)
{
	return m == EVHTTP_REQ_GET ? "GET" : m == EVHTTP_REQ_POST ? "POST" : m == EVHTTP_REQ_DELETE ? "DELETE" : "PUT";
}

Test(authz, every_route_against_every_caller, .init = setup, .fini = teardown, .timeout = 120)
{
	size_t n;
	const srv_route *routes = srv_http_routes(&n);
	make_callers();
	int checked = 0;
	/* Logout revokes the caller's token: run it last. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < n; i++) {
			const srv_route *rt = &routes[i];
			if ((strcmp(rt->path, "/api/v1/logout") == 0) != pass)
				continue;
			char path[128];
			const char *hole = strstr(rt->path, "{id}"), *hash = strstr(rt->path, "{hash}");
			if (hole)
				snprintf(path, sizeof(path), "%.*s999999%s", (int)(hole - rt->path), rt->path, hole + 4);
			else if (hash)
				snprintf(path, sizeof(path), "%.*s%064d%s", (int)(hash - rt->path), rt->path, 0, hash + 6);
			else
				snprintf(path, sizeof(path), "%s", rt->path);
			for (int c = 0; c < N_CALLERS; c++) {
				json_t *reply = NULL;
				const char *body = rt->body == BODY_JSON ? "{}" : NULL;
				long status = th_http(&srv, method_str(rt->method), path, c == NONE ? NULL : tokens[c],
						      body, body ? 2 : 0, 0, &reply);
				long want = expected(rt, c);
				if (want)
					cr_expect_eq(status, want, "%s %s as %s: %ld, want %ld", method_str(rt->method),
						     path, caller_names[c], status, want);
				else
					cr_expect(status != 401 && status != 403 && status >= 200 && status < 500,
						  "%s %s as %s: %ld, want access", method_str(rt->method), path,
						  caller_names[c], status);
				/* Every error is the JSON error shape. */
				if (status >= 400 && strcmp(rt->path, "/metrics") != 0)
					cr_expect(json_is_object(json_object_get(reply, "error")), "%s %s as %s: no error body",
						  method_str(rt->method), path, caller_names[c]);
				json_decref(reply);
				checked++;
			}
		}
	}
	cr_expect_eq(checked, (int)n * N_CALLERS);
}

Test(authz, users_see_and_touch_only_their_own, .init = setup, .fini = teardown, .timeout = 60)
{
	char path[96], body[128];
	json_t *reply = NULL;
	make_callers();
	const char *job = "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000},\"units\":2}";
	cr_assert_eq(th_http(&srv, "POST", "/api/v1/jobs", tokens[USER], job, strlen(job), 0, &reply), 201);
	int64_t id = json_integer_value(json_object_get(reply, "id"));
	json_decref(reply);
	snprintf(path, sizeof(path), "/api/v1/jobs/%lld", (long long)id);
	cr_expect_eq(th_http(&srv, "GET", path, tokens[OTHER], NULL, 0, 0, NULL), 403);
	cr_expect_eq(th_http(&srv, "DELETE", path, tokens[OTHER], NULL, 0, 0, NULL), 403);
	cr_expect_eq(th_http(&srv, "GET", path, tokens[USER], NULL, 0, 0, NULL), 200);
	cr_expect_eq(th_http(&srv, "GET", path, tokens[ADMIN], NULL, 0, 0, NULL), 200);
	snprintf(path, sizeof(path), "/api/v1/jobs/%lld/units", (long long)id);
	cr_expect_eq(th_http(&srv, "GET", path, tokens[OTHER], NULL, 0, 0, NULL), 403);
	/* Listings: bob sees none of alice's jobs; the admin sees them all. */
	cr_assert_eq(th_http(&srv, "GET", "/api/v1/jobs", tokens[OTHER], NULL, 0, 0, &reply), 200);
	cr_expect_eq(json_array_size(json_object_get(reply, "jobs")), 0);
	json_decref(reply);
	cr_assert_eq(th_http(&srv, "GET", "/api/v1/jobs", tokens[ADMIN], NULL, 0, 0, &reply), 200);
	cr_expect_eq(json_array_size(json_object_get(reply, "jobs")), 1);
	json_decref(reply);
	/* Passwords: your own, or an admin's say. */
	int64_t alice = th_db_int(&srv, "SELECT id FROM users WHERE name = 'alice'");
	snprintf(path, sizeof(path), "/api/v1/users/%lld/password", (long long)alice);
	snprintf(body, sizeof(body), "{\"password\":\"new-password-1\",\"current_password\":\"password-bob\"}");
	cr_expect_eq(th_http(&srv, "POST", path, tokens[OTHER], body, strlen(body), 0, NULL), 403);
	snprintf(body, sizeof(body), "{\"password\":\"new-password-1\",\"current_password\":\"password-alice\"}");
	cr_expect_eq(th_http(&srv, "POST", path, tokens[USER], body, strlen(body), 0, NULL), 200);
	/* Tokens: bob cannot revoke alice's. */
	snprintf(body, sizeof(body), "{\"name\":\"script\"}");
	cr_assert_eq(th_http(&srv, "POST", "/api/v1/tokens", tokens[USER], body, strlen(body), 0, &reply), 201);
	snprintf(path, sizeof(path), "/api/v1/tokens/%lld", (long long)json_integer_value(json_object_get(reply, "id")));
	char api[160];
	snprintf(api, sizeof(api), "%s", json_string_value(json_object_get(reply, "token")));
	json_decref(reply);
	cr_expect_eq(th_http(&srv, "DELETE", path, tokens[OTHER], NULL, 0, 0, NULL), 404);
	cr_expect_eq(th_http(&srv, "GET", "/api/v1/me", api, NULL, 0, 0, NULL), 200);
	cr_expect_eq(th_http(&srv, "DELETE", path, tokens[USER], NULL, 0, 0, NULL), 200);
	cr_expect_eq(th_http(&srv, "GET", "/api/v1/me", api, NULL, 0, 0, NULL), 401, "a revoked token still works");
}

Test(authz, account_lifecycle, .init = setup, .fini = teardown, .timeout = 60)
{
	char path[96], tok[160], body[160];
	json_t *reply = NULL;
	int64_t id = add_user("dave");
	/* Names are checked, duplicates refused, roles limited. */
	const char *bad[] = {
		"{\"username\":\"da ve\",\"password\":\"password-1\"}",
		"{\"username\":\"dave\",\"password\":\"password-1\"}",
		"{\"username\":\"eve\",\"password\":\"short\"}",
		"{\"username\":\"eve\",\"password\":\"password-1\",\"role\":\"root\"}",
	};
	const long want[] = {400, 409, 400, 400};
	for (int i = 0; i < 4; i++)
		cr_expect_eq(th_http(&srv, "POST", "/api/v1/users", srv.admin_token, bad[i], strlen(bad[i]), 0, NULL),
			     want[i], "%s", bad[i]);
	login("dave", "password-dave", tok);
	/* Disabling refuses the user's live session at once; enabling lets it back. */
	snprintf(path, sizeof(path), "/api/v1/users/%lld/disable", (long long)id);
	cr_assert_eq(th_http(&srv, "POST", path, srv.admin_token, NULL, 0, 0, NULL), 200);
	cr_expect_eq(th_http(&srv, "GET", "/api/v1/me", tok, NULL, 0, 0, NULL), 403);
	snprintf(body, sizeof(body), "{\"username\":\"dave\",\"password\":\"password-dave\"}");
	cr_expect_eq(th_http(&srv, "POST", "/api/v1/login", NULL, body, strlen(body), 0, NULL), 403);
	snprintf(path, sizeof(path), "/api/v1/users/%lld/enable", (long long)id);
	cr_assert_eq(th_http(&srv, "POST", path, srv.admin_token, NULL, 0, 0, NULL), 200);
	cr_expect_eq(th_http(&srv, "GET", "/api/v1/me", tok, NULL, 0, 0, NULL), 200);
	/* A password reset by the admin ends dave's sessions. */
	snprintf(path, sizeof(path), "/api/v1/users/%lld/password", (long long)id);
	snprintf(body, sizeof(body), "{\"password\":\"another-password\"}");
	cr_assert_eq(th_http(&srv, "POST", path, srv.admin_token, body, strlen(body), 0, NULL), 200);
	cr_expect_eq(th_http(&srv, "GET", "/api/v1/me", tok, NULL, 0, 0, NULL), 401);
	login("dave", "another-password", tok);
	/* Removal: tokens die, the name is free again, the last admin cannot go. */
	snprintf(path, sizeof(path), "/api/v1/users/%lld", (long long)id);
	cr_assert_eq(th_http(&srv, "DELETE", path, srv.admin_token, NULL, 0, 0, NULL), 200);
	cr_expect_eq(th_http(&srv, "GET", "/api/v1/me", tok, NULL, 0, 0, NULL), 401);
	cr_expect_eq(th_http(&srv, "DELETE", path, srv.admin_token, NULL, 0, 0, NULL), 404);
	add_user("dave");
	int64_t admin = th_db_int(&srv, "SELECT id FROM users WHERE name = 'admin'");
	snprintf(path, sizeof(path), "/api/v1/users/%lld", (long long)admin);
	cr_expect_eq(th_http(&srv, "DELETE", path, srv.admin_token, NULL, 0, 0, &reply), 409);
	json_decref(reply);
	snprintf(path, sizeof(path), "/api/v1/users/%lld/disable", (long long)admin);
	cr_expect_eq(th_http(&srv, "POST", path, srv.admin_token, NULL, 0, 0, NULL), 409);
	/* Logout revokes the session used. */
	login("dave", "password-dave", tok);
	cr_expect_eq(th_http(&srv, "POST", "/api/v1/logout", tok, NULL, 0, 0, NULL), 200);
	cr_expect_eq(th_http(&srv, "GET", "/api/v1/me", tok, NULL, 0, 0, NULL), 401);
}

Test(authz, enrollment_tokens_are_listed_and_revocable, .init = setup, .fini = teardown, .timeout = 60)
{
	json_t *reply = NULL;
	char path[64], body[512];
	const char *req = "{\"uses\":3,\"ttl_s\":600}";
	cr_assert_eq(th_http(&srv, "POST", "/api/v1/enroll-tokens", srv.admin_token, req, strlen(req), 0, &reply), 201);
	int64_t id = json_integer_value(json_object_get(reply, "id"));
	const char *cmd = json_string_value(json_object_get(reply, "command"));
	cr_expect(cmd && strstr(cmd, "tessera-client enroll https://127.0.0.1:"), "command: %s", cmd ? cmd : "(none)");
	snprintf(body, sizeof(body), "{\"token\":\"%s\",\"name\":\"n\",\"platform\":\"p\",\"cores\":1}",
		 json_string_value(json_object_get(reply, "token")));
	json_decref(reply);
	cr_assert_eq(th_http(&srv, "GET", "/api/v1/enroll-tokens", srv.admin_token, NULL, 0, 0, &reply), 200);
	cr_expect_eq(json_integer_value(json_object_get(json_array_get(json_object_get(reply, "tokens"), 0), "uses_left")), 3);
	json_decref(reply);
	snprintf(path, sizeof(path), "/api/v1/enroll-tokens/%lld", (long long)id);
	cr_assert_eq(th_http(&srv, "DELETE", path, srv.admin_token, NULL, 0, 0, NULL), 200);
	cr_expect_eq(th_http(&srv, "POST", "/api/v1/nodes/enroll", NULL, body, strlen(body), 0, NULL), 401,
		     "a revoked enrollment token still enrolls");
}

/* Changes a password as token; returns the status, and the error message into msg. */
static long set_password(int64_t user, const char *token, const char *body, char *msg, size_t cap)
{
	char path[96];
	json_t *reply = NULL;
	snprintf(path, sizeof(path), "/api/v1/users/%lld/password", (long long)user);
	long status = th_http(&srv, "POST", path, token, body, strlen(body), 0, &reply);
	const char *m = json_string_value(json_object_get(json_object_get(reply, "error"), "message"));
	snprintf(msg, cap, "%s", m ? m : "");
	json_decref(reply);
	return status;
}

Test(authz, own_password_change_needs_the_current_one, .init = setup, .fini = teardown, .timeout = 60)
{
	char msg[256];
	make_callers();
	int64_t alice = th_db_int(&srv, "SELECT id FROM users WHERE name = 'alice'");
	int64_t bob = th_db_int(&srv, "SELECT id FROM users WHERE name = 'bob'");
	int64_t admin = th_db_int(&srv, "SELECT id FROM users WHERE name = 'admin'");
	/* A session left open is not enough to take the account over. */
	cr_expect_eq(set_password(alice, tokens[USER], "{\"password\":\"taken-over-1\"}", msg, sizeof(msg)), 400);
	cr_expect(strstr(msg, "current_password"), "message: %s", msg);
	cr_expect_eq(set_password(alice, tokens[USER], "{\"password\":\"taken-over-1\",\"current_password\":\"guess-1\"}",
				  msg, sizeof(msg)), 403);
	cr_expect(strstr(msg, "current password is wrong"), "message: %s", msg);
	cr_expect_eq(th_http(&srv, "GET", "/api/v1/me", tokens[USER], NULL, 0, 0, NULL), 200,
		     "a wrong current password ended the session");
	cr_expect_eq(set_password(alice, tokens[USER],
				  "{\"password\":\"new-password-1\",\"current_password\":\"password-alice\"}",
				  msg, sizeof(msg)), 200, "%s", msg);
	login("alice", "new-password-1", tokens[USER]);
	/* An admin sets another user's password without it, but not their own. */
	cr_expect_eq(set_password(bob, tokens[ADMIN], "{\"password\":\"reset-by-admin\"}", msg, sizeof(msg)), 200, "%s", msg);
	login("bob", "reset-by-admin", tokens[OTHER]);
	cr_expect_eq(set_password(admin, tokens[ADMIN], "{\"password\":\"admin-password-2\"}", msg, sizeof(msg)), 400);
	char body[256];
	snprintf(body, sizeof(body), "{\"password\":\"admin-password-2\",\"current_password\":\"%s\"}", TH_ADMIN_PASSWORD);
	cr_expect_eq(set_password(admin, tokens[ADMIN], body, msg, sizeof(msg)), 200, "%s", msg);
}

/* Makes an API token for session; returns its id. */
static int64_t api_token(const char *session, char *out)
{
	json_t *reply = NULL;
	const char *body = "{\"name\":\"script\"}";
	cr_assert_eq(th_http(&srv, "POST", "/api/v1/tokens", session, body, strlen(body), 0, &reply), 201);
	snprintf(out, 160, "%s", json_string_value(json_object_get(reply, "token")));
	int64_t id = json_integer_value(json_object_get(reply, "id"));
	json_decref(reply);
	return id;
}

Test(authz, api_tokens_cannot_manage_passwords_or_tokens, .init = setup, .fini = teardown, .timeout = 60)
{
	char api[160], admin_api[160], msg[256], path[64];
	json_t *reply = NULL;
	make_callers();
	int64_t alice = th_db_int(&srv, "SELECT id FROM users WHERE name = 'alice'");
	int64_t bob = th_db_int(&srv, "SELECT id FROM users WHERE name = 'bob'");
	int64_t id = api_token(tokens[USER], api);
	api_token(tokens[ADMIN], admin_api);
	/* It works for what it is for... */
	cr_expect_eq(th_http(&srv, "GET", "/api/v1/me", api, NULL, 0, 0, NULL), 200);
	cr_expect_eq(th_http(&srv, "GET", "/api/v1/jobs", api, NULL, 0, 0, NULL), 200);
	/* ...but cannot change a password, even knowing the current one... */
	cr_expect_eq(set_password(alice, api, "{\"password\":\"new-password-1\",\"current_password\":\"password-alice\"}",
				  msg, sizeof(msg)), 403);
	cr_expect(strstr(msg, "API token"), "message: %s", msg);
	cr_expect_eq(set_password(bob, admin_api, "{\"password\":\"new-password-1\"}", msg, sizeof(msg)), 403);
	login("alice", "password-alice", tokens[USER]);
	login("bob", "password-bob", tokens[OTHER]);
	/* ...nor list, mint or revoke tokens. */
	cr_expect_eq(th_http(&srv, "GET", "/api/v1/tokens", api, NULL, 0, 0, &reply), 403);
	const char *m = json_string_value(json_object_get(json_object_get(reply, "error"), "message"));
	cr_expect(m && strstr(m, "API token"), "message: %s", m ? m : "(none)");
	json_decref(reply);
	const char *body = "{\"name\":\"more\"}";
	cr_expect_eq(th_http(&srv, "POST", "/api/v1/tokens", api, body, strlen(body), 0, NULL), 403);
	cr_expect_eq(th_http(&srv, "POST", "/api/v1/tokens", admin_api, body, strlen(body), 0, NULL), 403);
	snprintf(path, sizeof(path), "/api/v1/tokens/%lld", (long long)id);
	cr_expect_eq(th_http(&srv, "DELETE", path, api, NULL, 0, 0, NULL), 403);
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM tokens WHERE kind = 'api' AND revoked = 0"), 2,
		     "the two API tokens made here, no more, none revoked");
	/* A session still manages them. */
	cr_expect_eq(th_http(&srv, "GET", "/api/v1/tokens", tokens[USER], NULL, 0, 0, NULL), 200);
	cr_expect_eq(th_http(&srv, "DELETE", path, tokens[USER], NULL, 0, 0, NULL), 200);
	cr_expect_eq(th_http(&srv, "GET", "/api/v1/me", api, NULL, 0, 0, NULL), 401);
}

/* A session in hand must not make guessing the current password cheap: password changes count
 * against the login rate. */
Test(authz, current_password_guesses_are_rate_limited, .fini = teardown, .timeout = 60)
{
	static const char *const args[] = {"--login-rate", "5", NULL};
	char msg[256];
	th_server_start_args(&srv, args); /* its admin login takes one of the 5 */
	int64_t admin = th_db_int(&srv, "SELECT id FROM users WHERE name = 'admin'");
	int wrong = 0, limited = 0;
	for (int i = 0; i < 10; i++) {
		long status = set_password(admin, srv.admin_token,
					   "{\"password\":\"new-password-1\",\"current_password\":\"guess-1\"}",
					   msg, sizeof(msg));
		cr_expect(status == 403 || status == 429, "guess %d: HTTP %ld (%s)", i, status, msg);
		wrong += status == 403;
		limited += status == 429;
	}
	cr_expect_leq(wrong, 4, "%d guesses were checked with a login rate of 5 per minute", wrong);
	cr_expect_geq(limited, 6);
}
