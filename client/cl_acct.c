/* cl_acct: users, tokens and whoami for the tessera CLI. */
#include "cl_acct.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cl_args.h"
#include "cl_cli.h"
#include "ts_util.h"

/* What the server takes in a user name: safe in logs, pages and shells. */
#define USER_NAME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"

/* Options an account action may take; each action lists the ones it accepts. */
enum {
	OPT_ROLE = 1 << 0,
	OPT_YES = 1 << 1,
	OPT_JSON = 1 << 2,
	OPT_USES = 1 << 3,
	OPT_TTL = 1 << 4,
	OPT_API = 1 << 5,
};

/* One run of an account command: the parsed command line, then the login. */
struct acct_call {
	const char *action;
	const char *arg;  /* the NAME or ID after the action, or NULL */
	const char *arg2; /* the word after that (grant NAME GRANT), or NULL */
	const char *role;
	unsigned given; /* OPT_* seen on the command line */
	int64_t uses, ttl;
	cl_state_config cfg;
	cl_http *http;
};

struct acct_action {
	const char *name;
	int args_min, args_max; /* words after the action */
	unsigned opts;          /* OPT_* it accepts */
	int (*fn)(struct acct_call *c);
	const char *arg_name;   /* for "needs ..." */
};

static const struct option acct_options[] = {
	{"role", required_argument, NULL, 'r'}, {"yes", no_argument, NULL, 'y'},
	{"json", no_argument, NULL, 'j'},	{"uses", required_argument, NULL, 'u'},
	{"ttl", required_argument, NULL, 't'},	{"api", no_argument, NULL, 'a'},
	{"help", no_argument, NULL, 'h'},	{NULL, 0, NULL, 0},
};

static const char *acct_option_name(unsigned opt)
{
	switch (opt) {
	case OPT_ROLE: return "--role";
	case OPT_YES: return "--yes";
	case OPT_JSON: return "--json";
	case OPT_USES: return "--uses";
	case OPT_TTL: return "--ttl";
	default: return "--api";
	}
}

/* Parses options and "ACTION [ARG]" against the table, then connects and runs the action.
 * pick, when not NULL, may choose another row from the options given (token create --api). */
static int acct_run(int argc, char **argv, const struct acct_action *actions, size_t n,
		    const struct acct_action *(*pick)(const struct acct_action *a,
						      const struct acct_call *c))
{
	struct acct_call c;
	uint64_t v;
	int opt, rc;
	memset(&c, 0, sizeof(c));
	CL_ARGS_FOREACH_OPT(argc, argv, "h", acct_options, opt) {
		switch (opt) {
		case 'r': c.role = optarg; c.given |= OPT_ROLE; break;
		case 'y': c.given |= OPT_YES; break;
		case 'j': c.given |= OPT_JSON; break;
		case 'a': c.given |= OPT_API; break;
		case 'u':
		case 't':
			if (cl_args_u64(optarg, 1, INT64_MAX, &v) != 0)
				return cl_args_usage_error("--%s must be a positive integer, not '%s'",
							   opt == 'u' ? "uses" : "ttl", optarg);
			*(opt == 'u' ? &c.uses : &c.ttl) = (int64_t)v;
			c.given |= opt == 'u' ? OPT_USES : OPT_TTL;
			break;
		case 'h': return cl_args_help();
		default: return cl_args_usage_bad();
		}
	}
	char known[128] = "";
	for (size_t i = 0, used = 0; i < n; i++)
		if (i == 0 || strcmp(actions[i].name, actions[i - 1].name) != 0)
			used += (size_t)snprintf(known + used, sizeof(known) - used, "%s%s",
						 used ? ", " : "", actions[i].name);
	if (optind == argc)
		return cl_args_usage_error("needs an action: %s", known);
	c.action = argv[optind++];
	const struct acct_action *a = NULL;
	for (size_t i = 0; i < n && !a; i++)
		if (strcmp(actions[i].name, c.action) == 0)
			a = &actions[i];
	if (!a)
		return cl_args_usage_error("unknown action '%s' (known: %s)", c.action, known);
	if (pick)
		a = pick(a, &c);
	int words = argc - optind;
	/* "create --api" names the row when --api chose it. */
	const char *api = (c.given & OPT_API) && (a->opts & OPT_API) ? " --api" : "";
	if (words < a->args_min)
		return cl_args_usage_error("%s%s needs %s", c.action, api, a->arg_name);
	if (words > a->args_max)
		return cl_args_usage_error("unexpected argument '%s'", argv[optind + a->args_max]);
	c.arg = words ? argv[optind] : NULL;
	c.arg2 = words > 1 ? argv[optind + 1] : NULL;
	for (unsigned bit = 1; bit <= OPT_API; bit <<= 1)
		if ((c.given & bit) && !(a->opts & bit))
			return cl_args_usage_error("%s does not go with %s%s", acct_option_name(bit),
						   c.action, api);
	rc = a->fn(&c);
	memset(&c.cfg, 0, sizeof(c.cfg)); /* it holds the bearer token */
	cl_http_close(c.http);
	return rc;
}

/* "2024-05-01 12:00" in local time, "-" for none. */
static void acct_time(json_int_t t, char *out, size_t outlen)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (t <= 0 || !localtime_r(&tt, &tm) || !strftime(out, outlen, "%Y-%m-%d %H:%M", &tm))
		snprintf(out, outlen, "-");
}

static json_int_t acct_int(const json_t *obj, const char *key)
{
	return json_integer_value(json_object_get(obj, key));
}

static const char *acct_str(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));
	return s ? s : "?";
}

const char *cl_acct_token_state(int revoked, int64_t expires_at, int64_t uses_left, int64_t now)
{
	if (revoked)
		return "revoked";
	if (expires_at > 0 && expires_at <= now)
		return "expired";
	if (uses_left == 0)
		return "used up";
	return "active";
}

/* "programs", "-" for none; admins may do everything: "(admin)". */
static void acct_grants(const json_t *u, char *out, size_t outlen)
{
	size_t i, used = 0;
	const json_t *g;
	out[0] = '\0';
	json_array_foreach(json_object_get(u, "grants"), i, g) {
		if (json_is_string(g) && used < outlen)
			used += (size_t)snprintf(out + used, outlen - used, "%s%s", used ? "," : "",
						 json_string_value(g));
	}
	if (!out[0])
		snprintf(out, outlen, "%s", strcmp(acct_str(u, "role"), "admin") == 0 ? "(admin)" : "-");
}

void cl_acct_print_users(FILE *f, const json_t *users)
{
	size_t i;
	json_t *u;
	if (json_array_size(users) == 0) {
		fprintf(f, "no users\n");
		return;
	}
	fprintf(f, "%5s  %-24s  %-5s  %-8s  %6s  %-16s  %s\n", "ID", "NAME", "ROLE", "STATE", "JOBS",
		"CREATED", "GRANTS");
	json_array_foreach(users, i, u) {
		char created[32], grants[128];
		acct_time(acct_int(u, "created_at"), created, sizeof(created));
		acct_grants(u, grants, sizeof(grants));
		fprintf(f, "%5" JSON_INTEGER_FORMAT "  %-24s  %-5s  %-8s  %6" JSON_INTEGER_FORMAT "  %-16s  %s\n",
			acct_int(u, "id"), acct_str(u, "username"), acct_str(u, "role"),
			json_is_true(json_object_get(u, "disabled")) ? "disabled" : "active",
			acct_int(u, "jobs"), created, grants);
	}
}

void cl_acct_print_api_tokens(FILE *f, const json_t *tokens, int64_t now)
{
	size_t i;
	json_t *t;
	if (json_array_size(tokens) == 0) {
		fprintf(f, "no API tokens\n");
		return;
	}
	fprintf(f, "%5s  %-24s  %-7s  %-16s  %s\n", "ID", "NAME", "STATE", "EXPIRES", "CREATED");
	json_array_foreach(tokens, i, t) {
		char expires[32], created[32];
		acct_time(acct_int(t, "expires_at"), expires, sizeof(expires));
		acct_time(acct_int(t, "created_at"), created, sizeof(created));
		fprintf(f, "%5" JSON_INTEGER_FORMAT "  %-24s  %-7s  %-16s  %s\n", acct_int(t, "id"),
			acct_str(t, "name"),
			cl_acct_token_state(json_is_true(json_object_get(t, "revoked")),
					    acct_int(t, "expires_at"), -1, now),
			expires, created);
	}
}

void cl_acct_print_enroll_tokens(FILE *f, const json_t *tokens, int64_t now)
{
	size_t i;
	json_t *t;
	if (json_array_size(tokens) == 0) {
		fprintf(f, "no enrollment tokens\n");
		return;
	}
	fprintf(f, "%5s  %-7s  %9s  %-16s  %s\n", "ID", "STATE", "USES LEFT", "EXPIRES", "CREATED");
	json_array_foreach(tokens, i, t) {
		char expires[32], created[32];
		acct_time(acct_int(t, "expires_at"), expires, sizeof(expires));
		acct_time(acct_int(t, "created_at"), created, sizeof(created));
		fprintf(f, "%5" JSON_INTEGER_FORMAT "  %-7s  %9" JSON_INTEGER_FORMAT "  %-16s  %s\n",
			acct_int(t, "id"),
			cl_acct_token_state(json_is_true(json_object_get(t, "revoked")),
					    acct_int(t, "expires_at"), acct_int(t, "uses_left"), now),
			acct_int(t, "uses_left"), expires, created);
	}
}

/* Connects with the stored login; every action that talks to the server starts here. */
static int acct_connect(struct acct_call *c)
{
	return cl_cli_connect(&c->cfg, &c->http, NULL);
}

static int acct_request(struct acct_call *c, const char *method, const char *path,
			const json_t *body, json_t **reply)
{
	return cl_cli_request(&c->cfg, c->http, method, path, body, reply);
}

/* The user called name, from GET /api/v1/users (a new reference in *user). */
static int users_find(struct acct_call *c, const char *name, json_t **user)
{
	json_t *reply = NULL, *u;
	size_t i;
	*user = NULL;
	if (acct_request(c, "GET", "/api/v1/users", NULL, &reply) != 0)
		return -1;
	json_array_foreach(json_object_get(reply, "users"), i, u) {
		if (strcmp(acct_str(u, "username"), name) == 0) {
			*user = json_incref(u);
			break;
		}
	}
	json_decref(reply);
	if (!*user) {
		fprintf(stderr, "no user '%s' (tessera users list shows them)\n", name);
		return -1;
	}
	return 0;
}

static int users_list(struct acct_call *c)
{
	json_t *reply = NULL;
	int rc = CL_EXIT_ERROR;
	if (acct_connect(c) != 0 || acct_request(c, "GET", "/api/v1/users", NULL, &reply) != 0)
		goto out;
	if (c->given & OPT_JSON)
		cl_cli_print_json(reply);
	else
		cl_acct_print_users(stdout, json_object_get(reply, "users"));
	rc = CL_EXIT_OK;
out:
	json_decref(reply);
	return rc;
}

static int users_add(struct acct_call *c)
{
	char password[CL_CLI_PASSWORD_MAX];
	const char *role = c->role ? c->role : "user";
	json_t *body = NULL, *reply = NULL;
	int rc = CL_EXIT_ERROR;
	if (strcmp(role, "user") != 0 && strcmp(role, "admin") != 0)
		return cl_args_usage_error("--role must be user or admin, not '%s'", role);
	size_t len = strlen(c->arg);
	if (len < 1 || len > 64 || strspn(c->arg, USER_NAME_CHARS) != len)
		return cl_args_usage_error("a user name has 1 to 64 letters, digits, '.', '_' or '-', "
					   "not '%s'", c->arg);
	if (acct_connect(c) != 0 || cl_cli_new_password(c->arg, password, sizeof(password)) != 0)
		goto out;
	if (!(body = json_pack("{s:s,s:s,s:s}", "username", c->arg, "password", password, "role",
			       role)))
		goto out;
	if (acct_request(c, "POST", "/api/v1/users", body, &reply) != 0)
		goto out;
	printf("user %s added (%s, id %" JSON_INTEGER_FORMAT ")\n", c->arg, role,
	       acct_int(reply, "id"));
	rc = CL_EXIT_OK;
out:
	if (body)
		json_object_del(body, "password");
	memset(password, 0, sizeof(password));
	json_decref(body);
	json_decref(reply);
	return rc;
}

/* users disable|enable NAME */
static int users_set_state(struct acct_call *c)
{
	char path[96];
	json_t *user = NULL, *reply = NULL;
	int rc = CL_EXIT_ERROR;
	if (acct_connect(c) != 0 || users_find(c, c->arg, &user) != 0)
		goto out;
	snprintf(path, sizeof(path), "/api/v1/users/%" JSON_INTEGER_FORMAT "/%s", acct_int(user, "id"),
		 c->action);
	if (acct_request(c, "POST", path, NULL, &reply) != 0)
		goto out;
	if (strcmp(c->action, "disable") == 0)
		printf("user %s disabled: its logins and tokens are refused until enabled\n", c->arg);
	else
		printf("user %s enabled\n", c->arg);
	rc = CL_EXIT_OK;
out:
	json_decref(user);
	json_decref(reply);
	return rc;
}

/* The current password, for changing one's own: $TESSERA_PASSWORD, else asked once. */
static int current_password(const char *user, char *out, size_t outlen)
{
	char prompt[CL_STATE_NAME_MAX + 64];
	const char *env = getenv(CL_CLI_PASSWORD_ENV);
	if (env && *env) {
		if (strlen(env) >= outlen) {
			fprintf(stderr, "$%s is longer than %zu characters\n", CL_CLI_PASSWORD_ENV, outlen - 1);
			return -1;
		}
		snprintf(out, outlen, "%s", env);
		return 0;
	}
	snprintf(prompt, sizeof(prompt), "current password for %s: ", user);
	if (cl_cli_read_password(prompt, out, outlen) != 0) {
		fprintf(stderr, "no current password: set $%s or run on a terminal\n", CL_CLI_PASSWORD_ENV);
		return -1;
	}
	return 0;
}

/* users passwd [NAME]: yourself (any role, with the current password) or, for admins, anyone. */
static int users_passwd(struct acct_call *c)
{
	char password[CL_CLI_PASSWORD_MAX], current[CL_CLI_PASSWORD_MAX] = "", path[96];
	json_t *me = NULL, *user = NULL, *body = NULL, *reply = NULL;
	int rc = CL_EXIT_ERROR, self;
	if (acct_connect(c) != 0 || acct_request(c, "GET", "/api/v1/me", NULL, &me) != 0)
		goto out;
	const char *name = c->arg ? c->arg : acct_str(me, "username");
	self = strcmp(name, acct_str(me, "username")) == 0;
	if (self)
		user = json_incref(me);
	else if (users_find(c, name, &user) != 0)
		goto out;
	if (self && current_password(name, current, sizeof(current)) != 0)
		goto out;
	if (cl_cli_new_password(name, password, sizeof(password)) != 0)
		goto out;
	if (!(body = json_pack("{s:s}", "password", password)))
		goto out;
	if (self && json_object_set_new(body, "current_password", json_string(current)) != 0)
		goto out;
	snprintf(path, sizeof(path), "/api/v1/users/%" JSON_INTEGER_FORMAT "/password",
		 acct_int(user, "id"));
	if (acct_request(c, "POST", path, body, &reply) != 0)
		goto out;
	if (self)
		printf("your password was changed; your other sessions and API tokens were revoked\n");
	else
		printf("password of %s changed; its sessions and API tokens were revoked\n", name);
	rc = CL_EXIT_OK;
out:
	if (body) {
		json_object_del(body, "password");
		json_object_del(body, "current_password");
	}
	memset(password, 0, sizeof(password));
	memset(current, 0, sizeof(current));
	json_decref(me);
	json_decref(user);
	json_decref(body);
	json_decref(reply);
	return rc;
}

static int users_remove(struct acct_call *c)
{
	char path[96], question[CL_STATE_NAME_MAX + 160];
	json_t *user = NULL, *reply = NULL;
	int rc = CL_EXIT_ERROR;
	int yes = (c->given & OPT_YES) != 0;
	if (!yes && !isatty(STDIN_FILENO))
		return cl_args_usage_error("stdin is not a terminal, so there is nobody to ask: "
					   "give --yes to remove %s",
					   c->arg);
	if (acct_connect(c) != 0 || users_find(c, c->arg, &user) != 0)
		goto out;
	snprintf(question, sizeof(question),
		 "remove user %s (id %" JSON_INTEGER_FORMAT ", %" JSON_INTEGER_FORMAT
		 " jobs)? Its tokens are revoked and its open jobs cancelled.",
		 c->arg, acct_int(user, "id"), acct_int(user, "jobs"));
	if (!yes && !cl_cli_confirm(question)) {
		fprintf(stderr, "not removed\n");
		goto out;
	}
	snprintf(path, sizeof(path), "/api/v1/users/%" JSON_INTEGER_FORMAT, acct_int(user, "id"));
	if (acct_request(c, "DELETE", path, NULL, &reply) != 0)
		goto out;
	printf("user %s removed\n", c->arg);
	rc = CL_EXIT_OK;
out:
	json_decref(user);
	json_decref(reply);
	return rc;
}

/* users grant|revoke NAME GRANT */
static int users_grant(struct acct_call *c)
{
	char path[96];
	json_t *user = NULL, *body = NULL, *reply = NULL;
	int rc = CL_EXIT_ERROR, grant = strcmp(c->action, "grant") == 0;
	size_t len = strlen(c->arg2);
	if (len < 1 || len > 32 || strspn(c->arg2, "abcdefghijklmnopqrstuvwxyz_") != len)
		return cl_args_usage_error("'%s' is not a grant (known: programs)", c->arg2);
	if (acct_connect(c) != 0 || users_find(c, c->arg, &user) != 0)
		goto out;
	if (!(body = json_pack("{s:s}", "grant", c->arg2)))
		goto out;
	snprintf(path, sizeof(path), "/api/v1/users/%" JSON_INTEGER_FORMAT "/%s", acct_int(user, "id"),
		 c->action);
	if (acct_request(c, "POST", path, body, &reply) != 0)
		goto out;
	int admin = strcmp(acct_str(user, "role"), "admin") == 0;
	if (strcmp(c->arg2, "programs") != 0)
		printf("user %s: %s %s\n", c->arg, c->arg2, grant ? "granted" : "revoked");
	else if (grant)
		printf("user %s may now run programs%s\n", c->arg, admin ? " (as an admin it always could)" : "");
	else
		printf("user %s may no longer run programs%s\n", c->arg,
		       admin ? " (but as an admin it still may)" : "");
	rc = CL_EXIT_OK;
out:
	json_decref(user);
	json_decref(body);
	json_decref(reply);
	return rc;
}

static const struct acct_action users_actions[] = {
	{"list", 0, 0, OPT_JSON, users_list, NULL},
	{"add", 1, 1, OPT_ROLE, users_add, "a user NAME"},
	{"disable", 1, 1, 0, users_set_state, "a user NAME"},
	{"enable", 1, 1, 0, users_set_state, "a user NAME"},
	{"passwd", 0, 1, 0, users_passwd, NULL},
	{"remove", 1, 1, OPT_YES, users_remove, "a user NAME"},
	{"grant", 2, 2, 0, users_grant, "a user NAME and a grant (programs)"},
	{"revoke", 2, 2, 0, users_grant, "a user NAME and a grant (programs)"},
};

int cl_acct_users(int argc, char **argv)
{
	return acct_run(argc, argv, users_actions, TS_ARRAY_LEN(users_actions), NULL);
}

/* token create: an enrollment token. Its output is relied on by scripts: the token alone on
 * stdout, the enroll command on stderr. */
static int token_create_enroll(struct acct_call *c)
{
	json_t *body = json_object(), *reply = NULL;
	int rc = CL_EXIT_ERROR;
	if (!body)
		goto out;
	if (c->given & OPT_USES)
		json_object_set_new(body, "uses", json_integer((json_int_t)c->uses));
	if (c->given & OPT_TTL)
		json_object_set_new(body, "ttl_s", json_integer((json_int_t)c->ttl));
	if (acct_connect(c) != 0 ||
	    acct_request(c, "POST", "/api/v1/enroll-tokens", body, &reply) != 0)
		goto out;
	const char *token = json_string_value(json_object_get(reply, "token"));
	if (!token) {
		fprintf(stderr, "token create: the server's reply has no token\n");
		goto out;
	}
	printf("%s\n", token);
	fflush(stdout);
	fprintf(stderr, "enroll a node with: tessera-client enroll %s %s\n", cl_http_url(c->http),
		token);
	/* The same token is a BOINC account key (docs/BOINC.md). */
	fprintf(stderr, "or attach a BOINC client: boinccmd --project_attach %s/boinc/ %s\n",
		cl_http_url(c->http), token);
	rc = CL_EXIT_OK;
out:
	json_decref(body);
	json_decref(reply);
	return rc;
}

/* token create --api NAME: the token on stdout, once. */
static int token_create_api(struct acct_call *c)
{
	char expires[32];
	json_t *body = NULL, *reply = NULL;
	int rc = CL_EXIT_ERROR;
	if (!*c->arg || strlen(c->arg) > 64)
		return cl_args_usage_error("an API token's NAME has 1 to 64 characters");
	if (!(body = json_pack("{s:s}", "name", c->arg)))
		goto out;
	if (c->given & OPT_TTL)
		json_object_set_new(body, "ttl_s", json_integer((json_int_t)c->ttl));
	if (acct_connect(c) != 0 || acct_request(c, "POST", "/api/v1/tokens", body, &reply) != 0)
		goto out;
	const char *token = json_string_value(json_object_get(reply, "token"));
	if (!token) {
		fprintf(stderr, "token create: the server's reply has no token\n");
		goto out;
	}
	printf("%s\n", token);
	fflush(stdout);
	acct_time(acct_int(reply, "expires_at"), expires, sizeof(expires));
	fprintf(stderr,
		"API token '%s' (id %" JSON_INTEGER_FORMAT ", expires %s). Store it now: it cannot "
		"be shown again.\nuse it with: tessera login %s --token TOKEN (or $%s), or send "
		"'Authorization: Bearer TOKEN'\n",
		c->arg, acct_int(reply, "id"), expires, cl_http_url(c->http), CL_CLI_TOKEN_ENV);
	rc = CL_EXIT_OK;
out:
	json_decref(body);
	json_decref(reply);
	return rc;
}

static int token_list(struct acct_call *c)
{
	int api = (c->given & OPT_API) != 0, rc = CL_EXIT_ERROR;
	json_t *reply = NULL;
	if (acct_connect(c) != 0 ||
	    acct_request(c, "GET", api ? "/api/v1/tokens" : "/api/v1/enroll-tokens", NULL, &reply) != 0)
		goto out;
	if (c->given & OPT_JSON)
		cl_cli_print_json(reply);
	else if (api)
		cl_acct_print_api_tokens(stdout, json_object_get(reply, "tokens"), ts_now());
	else
		cl_acct_print_enroll_tokens(stdout, json_object_get(reply, "tokens"), ts_now());
	rc = CL_EXIT_OK;
out:
	json_decref(reply);
	return rc;
}

static int token_revoke(struct acct_call *c)
{
	int api = (c->given & OPT_API) != 0, rc = CL_EXIT_ERROR, status = 0;
	const char *what = api ? "API token" : "enrollment token";
	char path[96], msg[CL_HTTP_MSG_MAX];
	uint64_t id;
	if (cl_args_u64(c->arg, 1, INT64_MAX, &id) != 0)
		return cl_args_usage_error("a token id is a positive integer, not '%s' (tessera "
					   "token list%s shows them)",
					   c->arg, api ? " --api" : "");
	snprintf(path, sizeof(path), "/api/v1/%s/%llu", api ? "tokens" : "enroll-tokens",
		 (unsigned long long)id);
	if (acct_connect(c) != 0)
		return CL_EXIT_ERROR;
	ts_err e = cl_http_request(c->http, "DELETE", path, NULL, &status, NULL, msg, sizeof(msg));
	if (e == TS_OK) {
		printf("%s %llu revoked\n", what, (unsigned long long)id);
		rc = CL_EXIT_OK;
	} else if (status == 404) {
		fprintf(stderr, "no %s %llu (tessera token list%s shows them)\n", what,
			(unsigned long long)id, api ? " --api" : "");
	} else {
		cl_cli_request_failed(&c->cfg, status, msg);
	}
	return rc;
}

static const struct acct_action token_actions[] = {
	{"create", 0, 0, OPT_USES | OPT_TTL, token_create_enroll, NULL},
	{"create", 1, 1, OPT_TTL | OPT_API, token_create_api, "a token NAME"},
	{"list", 0, 0, OPT_API | OPT_JSON, token_list, NULL},
	{"revoke", 1, 1, OPT_API, token_revoke, "a token ID"},
};

/* create with --api is another row: it names the token and makes an API token. */
static const struct acct_action *token_pick(const struct acct_action *a, const struct acct_call *c)
{
	return a == &token_actions[0] && (c->given & OPT_API) ? &token_actions[1] : a;
}

int cl_acct_token(int argc, char **argv)
{
	return acct_run(argc, argv, token_actions, TS_ARRAY_LEN(token_actions), token_pick);
}

int cl_acct_whoami(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	struct acct_call c;
	json_t *me = NULL;
	int opt, as_json = 0, rc = CL_EXIT_ERROR;
	memset(&c, 0, sizeof(c));
	CL_ARGS_FOREACH_OPT(argc, argv, "jh", opts, opt) {
		switch (opt) {
		case 'j': as_json = 1; break;
		case 'h': return cl_args_help();
		default: return cl_args_usage_bad();
		}
	}
	if (optind != argc)
		return cl_args_usage_error("unexpected argument '%s'", argv[optind]);
	if (acct_connect(&c) != 0 || acct_request(&c, "GET", "/api/v1/me", NULL, &me) != 0)
		goto out;
	if (as_json) {
		cl_cli_print_json(me);
	} else {
		char expires[32];
		json_t *exp = json_object_get(me, "expires_at");
		acct_time(json_is_integer(exp) ? json_integer_value(exp) : 0, expires, sizeof(expires));
		printf("%s (%s, id %" JSON_INTEGER_FORMAT ") at %s\n", acct_str(me, "username"),
		       acct_str(me, "role"), acct_int(me, "id"), cl_http_url(c.http));
		printf("%s, %s%s\n", cl_cli_is_api_token(c.cfg.token) ? "API token" : "session",
		       json_is_integer(exp) ? "expires " : "does not expire",
		       json_is_integer(exp) ? expires : "");
	}
	rc = CL_EXIT_OK;
out:
	memset(&c.cfg, 0, sizeof(c.cfg));
	json_decref(me);
	cl_http_close(c.http);
	return rc;
}
