/* The CLI's account commands against a real server: users, API tokens and login with one,
 * enrollment token list and revoke, logout. Each step checks the exit status and what a person
 * would read; the server's side is checked through the API. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cl_acct.h"
#include "th_harness.h"

#define OUT_MAX 8192

static th_server srv;

static void setup(void)
{
	th_server_start(&srv);
}

static void teardown(void)
{
	th_server_stop(&srv);
}

/* A config dir of its own for each person (or script) in a test. */
static const char *cfg(const char *who)
{
	static char path[4][400];
	static int next;
	char *p = path[next++ % 4];
	snprintf(p, 400, "%s/cfg-%s", srv.dir, who);
	return p;
}

/* Runs tessera with config dir dir, the admin's password in $TESSERA_PASSWORD and one more
 * environment entry (NULL: none, or it overrides), then the arguments up to NULL. Its stdout
 * and stderr go to out. Returns the exit status. */
static int cli_va(const char *dir, const char *env_extra, const char *env_more, char *out, va_list ap)
{
	char env_cfg[512], env_pw[128];
	char *argv[16] = {(char *)th_bin("tessera")};
	int n = 1;
	for (const char *a; n < 15 && (a = va_arg(ap, const char *)) != NULL;)
		argv[n++] = (char *)a;
	argv[n] = NULL;
	snprintf(env_cfg, sizeof(env_cfg), "TESSERA_CONFIG=%s", dir);
	snprintf(env_pw, sizeof(env_pw), "TESSERA_PASSWORD=%s", TH_ADMIN_PASSWORD);
	char *env[] = {env_cfg, env_pw, (char *)env_extra, (char *)env_more, NULL};
	if (!env_extra)
		env[2] = (char *)env_more, env[3] = NULL;
	return th_run(argv, env, 30, out, OUT_MAX);
}

static int cli(const char *dir, const char *env_extra, char *out, ...)
{
	va_list ap;
	va_start(ap, out);
	int rc = cli_va(dir, env_extra, NULL, out, ap);
	va_end(ap);
	return rc;
}

/* cli with two more environment entries (the later one wins over the defaults). */
static int cli2(const char *dir, const char *env_extra, const char *env_more, char *out, ...)
{
	va_list ap;
	va_start(ap, out);
	int rc = cli_va(dir, env_extra, env_more, out, ap);
	va_end(ap);
	return rc;
}

/* Logs in as the admin with the pin, in dir. */
static void admin_login(const char *dir)
{
	char out[OUT_MAX];
	cr_assert_eq(cli(dir, NULL, out, "login", srv.url, "--user", "admin", "--pin", srv.pin, NULL),
		     0, "%s", out);
	cr_assert(strstr(out, "logged in as admin (admin)"), "%s", out);
}

/* The line of a table that mentions word (the whole output when none does). */
static const char *line_of(const char *out, const char *word, char *line, size_t cap)
{
	const char *at = strstr(out, word);
	if (!at)
		return out;
	const char *start = at, *end = strchr(at, '\n');
	while (start > out && start[-1] != '\n')
		start--;
	snprintf(line, cap, "%.*s", (int)(end ? end - start : (long)strlen(start)), start);
	return line;
}

/* The bearer token a config dir holds ("" after a logout). */
static void stored_token(const char *dir, char *token, size_t cap)
{
	char path[500];
	snprintf(path, sizeof(path), "%s/config.json", dir);
	json_t *j = json_load_file(path, 0, NULL);
	cr_assert(j, "cannot read %s", path);
	const char *t = json_string_value(json_object_get(j, "token"));
	snprintf(token, cap, "%s", t ? t : "");
	json_decref(j);
}

Test(acct, token_states_in_words)
{
	cr_expect_str_eq(cl_acct_token_state(1, 200, 5, 100), "revoked");
	cr_expect_str_eq(cl_acct_token_state(1, 50, 0, 100), "revoked", "revoked wins");
	cr_expect_str_eq(cl_acct_token_state(0, 100, 5, 100), "expired", "expiry is exclusive");
	cr_expect_str_eq(cl_acct_token_state(0, 200, 0, 100), "used up");
	cr_expect_str_eq(cl_acct_token_state(0, 200, 1, 100), "active");
	cr_expect_str_eq(cl_acct_token_state(0, 200, -1, 100), "active", "API tokens have no uses");
}

Test(users, add_list_disable_enable_passwd_remove, .init = setup, .fini = teardown, .timeout = 60)
{
	char out[OUT_MAX], line[256];
	const char *admin = cfg("admin"), *alice = cfg("alice");
	admin_login(admin);

	cr_expect_eq(cli(admin, "TESSERA_NEW_PASSWORD=alice-pass-1", out, "users", "add", "alice", NULL), 0,
		     "%s", out);
	cr_expect(strstr(out, "user alice added (user"), "%s", out);
	cr_expect_eq(cli(admin, "TESSERA_NEW_PASSWORD=alice-pass-1", out, "users", "add", "alice", NULL), 1);
	cr_expect(strstr(out, "exists"), "a second alice: %s", out);
	cr_expect_eq(cli(admin, "TESSERA_NEW_PASSWORD=short", out, "users", "add", "bob", NULL), 1);
	cr_expect(strstr(out, "at least 8 characters"), "%s", out);
	cr_expect_eq(cli(admin, "TESSERA_NEW_PASSWORD=bob-pass-12", out, "users", "add", "bob", "--role",
			 "root", NULL), 2);
	cr_expect(strstr(out, "--role must be user or admin"), "%s", out);
	cr_expect_eq(cli(admin, "TESSERA_NEW_PASSWORD=bob-pass-12", out, "users", "add", "b o b", NULL), 2);
	cr_expect(strstr(out, "user name"), "%s", out);
	/* No password anywhere: no terminal to ask on, nothing is created. */
	cr_expect_eq(cli(admin, NULL, out, "users", "add", "carol", NULL), 1);
	cr_expect(strstr(out, "TESSERA_NEW_PASSWORD"), "%s", out);

	cr_expect_eq(cli(admin, NULL, out, "users", "list", NULL), 0, "%s", out);
	line_of(out, "alice", line, sizeof(line));
	cr_expect(strstr(line, "alice") && strstr(line, "user") && strstr(line, "active"), "%s", out);
	cr_expect(!strstr(out, "bob") && !strstr(out, "carol"), "refused users were created: %s", out);

	cr_expect_eq(cli(alice, "TESSERA_PASSWORD=alice-pass-1", out, "login", srv.url, "--user", "alice",
			 "--pin", srv.pin, NULL), 0, "%s", out);
	cr_expect(strstr(out, "logged in as alice (user)"), "%s", out);
	cr_expect_eq(cli(alice, NULL, out, "users", "list", NULL), 1, "a user listed users");
	cr_expect(strstr(out, "not allowed"), "%s", out);

	/* Disabled: the session in hand is refused at once, and so is a new login. */
	cr_expect_eq(cli(admin, NULL, out, "users", "disable", "alice", NULL), 0, "%s", out);
	cr_expect(strstr(out, "user alice disabled"), "%s", out);
	cli(admin, NULL, out, "users", "list", NULL);
	cr_expect(strstr(line_of(out, "alice", line, sizeof(line)), "disabled"), "%s", out);
	cr_expect_eq(cli(alice, NULL, out, "jobs", NULL), 1);
	cr_expect(strstr(out, "disabled"), "%s", out);
	cr_expect_eq(cli(alice, "TESSERA_PASSWORD=alice-pass-1", out, "login", srv.url, "--user", "alice",
			 NULL), 1, "a disabled user logged in: %s", out);
	cr_expect(strstr(out, "login failed: this account is disabled"), "%s", out);
	cr_expect_eq(cli(admin, NULL, out, "users", "disable", "nobody", NULL), 1);
	cr_expect(strstr(out, "no user 'nobody'"), "%s", out);

	cr_expect_eq(cli(admin, NULL, out, "users", "enable", "alice", NULL), 0, "%s", out);
	cr_expect(strstr(out, "user alice enabled"), "%s", out);
	/* The stored pin is reused: the password is all a new login needs. */
	cr_expect_eq(cli(alice, "TESSERA_PASSWORD=alice-pass-1", out, "login", srv.url, "--user", "alice",
			 NULL), 0, "%s", out);

	/* A user changes its own password, giving the current one; the old one stops working. */
	cr_expect_eq(cli2(alice, "TESSERA_NEW_PASSWORD=alice-pass-2", "TESSERA_PASSWORD=wrong-pass-1", out,
			  "users", "passwd", NULL), 1, "changed with a wrong current password: %s", out);
	cr_expect(strstr(out, "current password is wrong"), "%s", out);
	cr_expect_eq(cli2(alice, "TESSERA_NEW_PASSWORD=alice-pass-2", "TESSERA_PASSWORD=", out,
			  "users", "passwd", NULL), 1, "changed without the current password: %s", out);
	cr_expect(strstr(out, "no current password"), "%s", out);
	cr_expect_eq(cli2(alice, "TESSERA_NEW_PASSWORD=alice-pass-2", "TESSERA_PASSWORD=alice-pass-1", out,
			  "users", "passwd", NULL), 0, "%s", out);
	cr_expect(strstr(out, "your password was changed"), "%s", out);
	cr_expect_eq(cli(alice, "TESSERA_NEW_PASSWORD=alice-pass-2", out, "users", "passwd", "admin", NULL),
		     1, "a user changed the admin's password");
	cr_expect(strstr(out, "not allowed"), "%s", out);
	cr_expect_eq(cli(alice, "TESSERA_PASSWORD=alice-pass-1", out, "login", srv.url, "--user", "alice",
			 NULL), 1);
	cr_expect(strstr(out, "wrong user name or password"), "%s", out);
	cr_expect_eq(cli(alice, "TESSERA_PASSWORD=alice-pass-2", out, "login", srv.url, "--user", "alice",
			 NULL), 0, "%s", out);
	/* An admin resets it: alice's sessions end. */
	cr_expect_eq(cli(admin, "TESSERA_NEW_PASSWORD=alice-pass-3", out, "users", "passwd", "alice", NULL),
		     0, "%s", out);
	cr_expect(strstr(out, "password of alice changed"), "%s", out);
	cr_expect_eq(cli(alice, NULL, out, "jobs", NULL), 1);
	cr_expect(strstr(out, "session expired or revoked"), "%s", out);
	cr_expect_eq(cli(alice, "TESSERA_PASSWORD=alice-pass-3", out, "login", srv.url, "--user", "alice",
			 NULL), 0, "%s", out);

	/* Remove: only with --yes when nobody can be asked (stdin is /dev/null here). */
	cr_expect_eq(cli(admin, NULL, out, "users", "remove", "alice", NULL), 2);
	cr_expect(strstr(out, "--yes"), "%s", out);
	cli(admin, NULL, out, "users", "list", NULL);
	cr_expect(strstr(out, "alice"), "alice was removed without --yes: %s", out);
	cr_expect_eq(cli(admin, NULL, out, "users", "remove", "alice", "--yes", NULL), 0, "%s", out);
	cr_expect(strstr(out, "user alice removed"), "%s", out);
	cr_expect_eq(cli(admin, NULL, out, "users", "list", NULL), 0);
	cr_expect(!strstr(out, "alice") && strstr(out, "admin"), "%s", out);
	cr_expect_eq(cli(alice, NULL, out, "jobs", NULL), 1, "a removed user's session still works");
	cr_expect_eq(cli(alice, "TESSERA_PASSWORD=alice-pass-3", out, "login", srv.url, "--user", "alice",
			 NULL), 1, "a removed user logged in");
	cr_expect_eq(cli(admin, NULL, out, "users", "remove", "admin", "--yes", NULL), 1);
	cr_expect(strstr(out, "last active admin"), "%s", out);
}

Test(tokens, api_token_login_jobs_and_revoke, .init = setup, .fini = teardown, .timeout = 60)
{
	char out[OUT_MAX], line[256], token[160] = "", env_token[200], id[32] = "";
	const char *admin = cfg("admin"), *script = cfg("script"), *other = cfg("other");
	admin_login(admin);
	th_submit(&srv, "{\"kernel\":\"montecarlo_pi\",\"params\":{\"samples\":1000},\"units\":2}");

	cr_assert_eq(cli(admin, NULL, out, "token", "create", "--api", "ci", "--ttl", "3600", NULL), 0,
		     "%s", out);
	cr_assert(strstr(out, "tsa."), "no API token printed: %s", out);
	sscanf(strstr(out, "tsa."), "%159s", token);
	cr_expect(strstr(out, "cannot be shown again"), "%s", out);
	cr_assert(strstr(out, "(id "), "%s", out);
	sscanf(strstr(out, "(id ") + 4, "%31[0-9]", id);
	cr_expect_eq(cli(admin, NULL, out, "token", "create", "--api", NULL), 2);
	cr_expect(strstr(out, "needs a token NAME"), "%s", out);
	cr_expect_eq(cli(admin, NULL, out, "token", "create", "--api", "x", "--uses", "2", NULL), 2);

	cr_expect_eq(cli(admin, NULL, out, "token", "list", "--api", NULL), 0, "%s", out);
	cr_expect(strstr(line_of(out, " ci ", line, sizeof(line)), "active"), "%s", out);

	/* A script logs in with it and lists the jobs. */
	cr_expect_eq(cli(script, NULL, out, "login", srv.url, "--token", token, "--pin", srv.pin, NULL), 0,
		     "%s", out);
	cr_expect(strstr(out, "logged in as admin (admin)") && strstr(out, "API token"), "%s", out);
	cr_expect_eq(cli(script, NULL, out, "jobs", NULL), 0, "%s", out);
	cr_expect(strstr(out, "montecarlo_pi") && strstr(out, "queued"), "%s", out);
	cr_expect_eq(cli(script, NULL, out, "whoami", NULL), 0, "%s", out);
	cr_expect(strstr(out, "admin (admin") && strstr(out, "API token, expires"), "%s", out);
	/* The same from $TESSERA_TOKEN. */
	snprintf(env_token, sizeof(env_token), "TESSERA_TOKEN=%s", token);
	cr_expect_eq(cli(other, env_token, out, "login", srv.url, "--pin", srv.pin, NULL), 0, "%s", out);
	cr_expect(strstr(out, "API token"), "%s", out);
	/* Not a token for people: refused before anything is sent. */
	cr_expect_eq(cli(other, NULL, out, "login", srv.url, "--token", "tsn.AAAA", "--pin", srv.pin, NULL),
		     2);
	cr_expect(strstr(out, "API token"), "%s", out);

	cr_expect_eq(cli(admin, NULL, out, "token", "revoke", "--api", id, NULL), 0, "%s", out);
	cr_expect(strstr(out, "API token") && strstr(out, "revoked"), "%s", out);
	cr_expect_eq(cli(script, NULL, out, "jobs", NULL), 1, "a revoked API token listed jobs");
	cr_expect(strstr(out, "API token expired or revoked"), "%s", out);
	cr_expect_eq(cli(admin, NULL, out, "token", "list", "--api", NULL), 0);
	cr_expect(strstr(line_of(out, " ci ", line, sizeof(line)), "revoked"), "%s", out);
	cr_expect_eq(cli(other, NULL, out, "login", srv.url, "--token", token, NULL), 1);
	cr_expect(strstr(out, "unknown, expired or revoked"), "%s", out);
	cr_expect_eq(cli(admin, NULL, out, "token", "revoke", "--api", "9999", NULL), 1);
	cr_expect(strstr(out, "no API token 9999"), "%s", out);
	cr_expect_eq(cli(admin, NULL, out, "token", "revoke", "--api", "ci", NULL), 2);
}

Test(tokens, enrollment_token_list_and_revoke, .init = setup, .fini = teardown, .timeout = 60)
{
	char out[OUT_MAX], line[256], token[160] = "", id[32], state[400], node[500];
	const char *admin = cfg("admin");
	admin_login(admin);

	/* Unchanged for scripts: the token alone first, the enroll command after. */
	cr_assert_eq(cli(admin, NULL, out, "token", "create", "--uses", "3", NULL), 0, "%s", out);
	cr_assert_eq(sscanf(out, "%159s", token), 1);
	cr_expect_eq(strncmp(token, "tse1.", 5), 0, "%s", out);
	cr_expect(strstr(out, "enroll a node with: tessera-client enroll"), "%s", out);

	cr_expect_eq(cli(admin, NULL, out, "token", "list", "--json", NULL), 0, "%s", out);
	json_t *list = json_loads(out, 0, NULL);
	cr_assert(list, "token list --json: %s", out);
	json_t *first = json_array_get(json_object_get(list, "tokens"), 0);
	snprintf(id, sizeof(id), "%lld", (long long)json_integer_value(json_object_get(first, "id")));
	cr_expect_eq(json_integer_value(json_object_get(first, "uses_left")), 3);
	json_decref(list);
	cr_expect_eq(cli(admin, NULL, out, "token", "list", NULL), 0, "%s", out);
	cr_expect(strstr(out, "USES LEFT"), "%s", out);
	line_of(out, "active", line, sizeof(line));
	cr_expect(strstr(line, id) && strstr(line, " 3 "), "%s", out);

	cr_expect_eq(cli(admin, NULL, out, "token", "revoke", id, NULL), 0, "%s", out);
	cr_expect(strstr(out, "enrollment token") && strstr(out, "revoked"), "%s", out);
	cr_expect_eq(cli(admin, NULL, out, "token", "list", NULL), 0);
	cr_expect(strstr(out, "revoked") && !strstr(out, "active"), "%s", out);

	/* A revoked token enrolls nobody. */
	snprintf(state, sizeof(state), "%s/node", srv.dir);
	char *argv[] = {(char *)th_bin("tessera-client"), "enroll", srv.url, token, "--state", state,
			"--no-bench", NULL};
	cr_expect_eq(th_run(argv, NULL, 30, out, sizeof(out)), 1, "a revoked token enrolled: %s", out);
	cr_expect(strstr(out, "enrollment refused") && strstr(out, "revoked"), "%s", out);
	snprintf(node, sizeof(node), "%s/node.json", state);
	cr_expect_neq(access(node, F_OK), 0, "a refused enrollment left credentials");
	cr_expect_eq(th_db_int(&srv, "SELECT count(*) FROM nodes"), 0);

	cr_expect_eq(cli(admin, NULL, out, "token", "revoke", "9999", NULL), 1);
	cr_expect(strstr(out, "no enrollment token 9999"), "%s", out);
	cr_expect_eq(cli(admin, NULL, out, "token", "revoke", NULL), 2);
	cr_expect_eq(cli(admin, NULL, out, "token", "rotate", NULL), 2);
	cr_expect(strstr(out, "unknown action 'rotate'"), "%s", out);
}

Test(logout, revokes_the_session_on_the_server, .init = setup, .fini = teardown, .timeout = 60)
{
	char out[OUT_MAX], token[160], after[160];
	const char *admin = cfg("admin");
	admin_login(admin);
	stored_token(admin, token, sizeof(token));
	cr_assert_eq(th_http(&srv, "GET", "/api/v1/me", token, NULL, 0, 0, NULL), 200);

	cr_expect_eq(cli(admin, NULL, out, "logout", NULL), 0, "%s", out);
	cr_expect(strstr(out, "revoked on the server"), "%s", out);
	cr_expect_eq(th_http(&srv, "GET", "/api/v1/me", token, NULL, 0, 0, NULL), 401,
		     "the session still works after logout");
	stored_token(admin, after, sizeof(after));
	cr_expect_str_empty(after, "the token was kept locally");
	cr_expect_eq(cli(admin, NULL, out, "jobs", NULL), 1);
	cr_expect(strstr(out, "not logged in"), "%s", out);
	cr_expect_eq(cli(admin, NULL, out, "logout", NULL), 0);
	cr_expect(strstr(out, "not logged in"), "%s", out);

	/* With the server down the session is forgotten here all the same, and that is said. */
	admin_login(admin);
	stored_token(admin, token, sizeof(token));
	th_server_kill(&srv, SIGTERM);
	cr_expect_eq(cli(admin, NULL, out, "logout", NULL), 1, "%s", out);
	cr_expect(strstr(out, "cannot reach") && strstr(out, "forgot the session here only"), "%s", out);
	stored_token(admin, after, sizeof(after));
	cr_expect_str_empty(after, "the token was kept locally");
	th_server_restart(&srv);
	cr_expect_eq(th_http(&srv, "GET", "/api/v1/me", token, NULL, 0, 0, NULL), 200,
		     "the message said the session stays valid on the server");
}
