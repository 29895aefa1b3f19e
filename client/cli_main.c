/* tessera: the user and admin command line. Log in, submit jobs, watch them; the account
 * commands (users, token, whoami) live in cl_acct. */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cl_acct.h"
#include "cl_args.h"
#include "cl_cli.h"
#include "cl_http.h"
#include "cl_job.h"
#include "cl_prog.h"
#include "cl_state.h"
#include "cl_submit.h"
#include "cl_watch.h"
#include "ts_token.h"
#include "ts_util.h"

#define CONFIG_ENV CL_CLI_CONFIG_ENV
#define CONFIG_HOME CL_CLI_CONFIG_HOME

static volatile sig_atomic_t interrupted;

/* Options of commands that take only --help (and maybe --json). */
static int parse_simple(int argc, char **argv, int *as_json)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	int opt;
	CL_ARGS_FOREACH_OPT(argc, argv, as_json ? "jh" : "h", opts, opt) {
		switch (opt) {
		case 'j':
			if (!as_json)
				return cl_args_usage_error("unknown option --json");
			*as_json = 1;
			break;
		case 'h': return cl_args_help(), -1;
		default: return cl_args_usage_bad();
		}
	}
	return 0;
}

static int parse_id(const char *s, int64_t *id)
{
	uint64_t v;
	if (cl_args_u64(s, 1, INT64_MAX, &v) != 0)
		return cl_args_usage_error("a job id is a positive integer, not '%s'", s);
	*id = (int64_t)v;
	return 0;
}

/* Checks --token's form before it is sent anywhere: a node's or an enrollment token would
 * be refused by the server anyway, with a less helpful message. */
static int login_token_check(const char *token, size_t max)
{
	if (strncmp(token, TS_TOKEN_API ".", sizeof(TS_TOKEN_API)) != 0 &&
	    strncmp(token, TS_TOKEN_SESSION ".", sizeof(TS_TOKEN_SESSION)) != 0)
		return cl_args_usage_error("--token takes an API token (tsa.…, from 'tessera token "
					   "create --api NAME'), not a node or enrollment token");
	if (strlen(token) >= max)
		return cl_args_usage_error("--token is too long");
	return 0;
}

/* Sends the password to /login; fills in the role, token and expiry of cfg. */
static int login_password(cl_http *http, const char *password, cl_state_config *cfg)
{
	char msg[CL_HTTP_MSG_MAX], shown[4 * CL_HTTP_MSG_MAX];
	int status = 0, rc = -1;
	json_t *body = json_pack("{s:s,s:s}", "username", cfg->user, "password", password), *reply = NULL;
	ts_err e = body ? cl_http_request(http, "POST", "/api/v1/login", body, &status, &reply, msg,
					  sizeof(msg))
			: TS_ERR_NOMEM;
	if (e) {
		fprintf(stderr, status ? "login failed: %s\n" : "%s\n",
			msg[0] ? ts_escape_ctrl(msg, shown, sizeof(shown)) : ts_strerror(e));
		goto out;
	}
	const char *token = json_string_value(json_object_get(reply, "token"));
	const char *role = json_string_value(json_object_get(reply, "role"));
	if (!token || strlen(token) >= sizeof(cfg->token) || !role) {
		fprintf(stderr, "login failed: the server's reply has no token and role\n");
		goto out;
	}
	snprintf(cfg->role, sizeof(cfg->role), "%s", role);
	snprintf(cfg->token, sizeof(cfg->token), "%s", token);
	cfg->expires_at = (int64_t)json_integer_value(json_object_get(reply, "expires_at"));
	rc = 0;
out:
	/* The password is a secret: do not leave it in memory. */
	if (body)
		json_object_del(body, "password");
	json_decref(body);
	json_decref(reply);
	return rc;
}

/* Checks cfg->token (already set on http) with /me; fills in the user, role and expiry. */
static int login_token(cl_http *http, cl_state_config *cfg)
{
	char msg[CL_HTTP_MSG_MAX], shown[4 * CL_HTTP_MSG_MAX];
	int status = 0, rc = -1;
	json_t *me = NULL;
	ts_err e = cl_http_request(http, "GET", "/api/v1/me", NULL, &status, &me, msg, sizeof(msg));
	if (e) {
		if (status == 401)
			fprintf(stderr, "login failed: the token is unknown, expired or revoked\n");
		else
			fprintf(stderr, status ? "login failed: %s\n" : "%s\n",
				ts_escape_ctrl(msg, shown, sizeof(shown)));
		goto out;
	}
	const char *user = json_string_value(json_object_get(me, "username"));
	const char *role = json_string_value(json_object_get(me, "role"));
	if (!user || strlen(user) >= sizeof(cfg->user) || !role) {
		fprintf(stderr, "login failed: the server's reply has no user name and role\n");
		goto out;
	}
	snprintf(cfg->user, sizeof(cfg->user), "%s", user);
	snprintf(cfg->role, sizeof(cfg->role), "%s", role);
	cfg->expires_at = (int64_t)json_integer_value(json_object_get(me, "expires_at"));
	rc = 0;
out:
	json_decref(me);
	return rc;
}

/* Whether two server URLs are the same but for trailing slashes. */
static int login_same_url(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);
	while (na > 0 && a[na - 1] == '/')
		na--;
	while (nb > 0 && b[nb - 1] == '/')
		nb--;
	return na == nb && strncmp(a, b, na) == 0;
}

/* A login to the server of the stored login, without --pin or --cacert, keeps the stored pin
 * or CA file: after a logout the password (or token) is all it takes. */
static void login_stored_trust(const char *dir, const char *url, cl_state_config *cfg)
{
	char why[CL_STATE_PATH_MAX + 128];
	cl_state_config old;
	if (cl_state_config_load(dir, &old, why, sizeof(why)) == TS_OK && login_same_url(old.url, url)) {
		snprintf(cfg->pin, sizeof(cfg->pin), "%s", old.pin);
		snprintf(cfg->cacert, sizeof(cfg->cacert), "%s", old.cacert);
	}
	memset(&old, 0, sizeof(old));
}

static int cmd_login(int argc, char **argv)
{
	static const struct option opts[] = {
		{"user", required_argument, NULL, 'u'}, {"token", required_argument, NULL, 'k'},
		{"pin", required_argument, NULL, 'p'},	{"cacert", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},	{NULL, 0, NULL, 0},
	};
	const char *user = NULL, *token = NULL, *pin = NULL, *cacert = NULL;
	char dir[CL_STATE_PATH_MAX], why[CL_STATE_PATH_MAX + 128];
	char password[CL_CLI_PASSWORD_MAX] = "", prompt[CL_HTTP_URL_MAX + 256];
	int opt, rc = CL_EXIT_ERROR;
	cl_http *http = NULL;
	cl_state_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	CL_ARGS_FOREACH_OPT(argc, argv, "u:k:p:c:h", opts, opt) {
		switch (opt) {
		case 'u': user = optarg; break;
		case 'k': token = optarg; break;
		case 'p': pin = optarg; break;
		case 'c': cacert = optarg; break;
		case 'h': return cl_args_help();
		default: return cl_args_usage_bad();
		}
	}
	if (argc - optind != 1)
		return cl_args_usage_error("%s", argc == optind ? "needs the server URL"
							       : "too many arguments");
	const char *url = argv[optind];
	if (user && token)
		return cl_args_usage_error("give --user or --token, not both");
	if (!user && !token && getenv(CL_CLI_TOKEN_ENV) && *getenv(CL_CLI_TOKEN_ENV))
		token = getenv(CL_CLI_TOKEN_ENV);
	if (!user && !token)
		return cl_args_usage_error("needs --user NAME, or --token TOKEN (or $%s)",
					   CL_CLI_TOKEN_ENV);
	if (user && (!*user || strlen(user) >= sizeof(cfg.user)))
		return cl_args_usage_error("--user must be 1 to %zu characters", sizeof(cfg.user) - 1);
	if (token && login_token_check(token, sizeof(cfg.token)) != 0)
		return CL_EXIT_USAGE;
	if (pin && cacert)
		return cl_args_usage_error("give --pin or --cacert, not both");
	if (pin && !ts_pin_valid(pin))
		return cl_args_usage_error("--pin must be sha256//<base64 of 32 bytes>, as "
					   "'tessera-server pin' prints it");
	if (cl_http_url_check(url, why, sizeof(why)) != TS_OK)
		return cl_args_usage_error("%s", why);
	if (cl_cli_config_dir(dir, sizeof(dir)) != 0)
		goto out;
	if (cacert && (!realpath(cacert, cfg.cacert) || access(cfg.cacert, R_OK) != 0)) {
		fprintf(stderr, "cannot read CA file %s\n", cacert);
		goto out;
	}
	if (pin)
		snprintf(cfg.pin, sizeof(cfg.pin), "%s", pin);
	else if (!cacert)
		login_stored_trust(dir, url, &cfg);
	const char *env = getenv(CL_CLI_PASSWORD_ENV);
	if (token) {
		snprintf(cfg.token, sizeof(cfg.token), "%s", token);
	} else if (env && *env) {
		snprintf(password, sizeof(password), "%s", env);
	} else {
		snprintf(prompt, sizeof(prompt), "password for %s at %s: ", user, url);
		if (cl_cli_read_password(prompt, password, sizeof(password)) != 0) {
			fprintf(stderr, "no password: set $%s or run on a terminal\n",
				CL_CLI_PASSWORD_ENV);
			goto out;
		}
	}
	cl_http_opts o = {.url = url, .pin = cfg.pin[0] ? cfg.pin : NULL,
			  .cacert = cfg.cacert[0] ? cfg.cacert : NULL, .token = token};
	if (cl_http_open(&o, &http, why, sizeof(why)) != TS_OK) {
		fprintf(stderr, "%s\n", why);
		goto out;
	}
	cl_http_set_abort(http, &interrupted);
	if (user)
		snprintf(cfg.user, sizeof(cfg.user), "%s", user);
	if (token ? login_token(http, &cfg) : login_password(http, password, &cfg))
		goto out;
	snprintf(cfg.url, sizeof(cfg.url), "%s", cl_http_url(http));
	if (cl_state_config_save(dir, &cfg, why, sizeof(why)) != TS_OK) {
		fprintf(stderr, "logged in, but could not save the login: %s\n", why);
		goto out;
	}
	char shown_user[4 * sizeof(cfg.user)], shown_role[4 * sizeof(cfg.role)];
	printf("logged in as %s (%s) at %s%s\n", ts_escape_ctrl(cfg.user, shown_user, sizeof(shown_user)),
	       ts_escape_ctrl(cfg.role, shown_role, sizeof(shown_role)), cfg.url,
	       !token ? "" : cl_cli_is_api_token(token) ? " with an API token" : " with a session token");
	rc = CL_EXIT_OK;
out:
	/* The password and the token are secrets: do not leave them in memory. */
	memset(password, 0, sizeof(password));
	memset(&cfg, 0, sizeof(cfg));
	cl_http_close(http);
	return rc;
}

/* Parses "ID [--json]" commands (status, cancel). */
static int parse_id_cmd(int argc, char **argv, int64_t *id, int *as_json)
{
	int r = parse_simple(argc, argv, as_json);
	if (r)
		return r;
	if (argc - optind != 1)
		return cl_args_usage_error("%s", argc == optind ? "needs a job id"
							       : "too many arguments");
	return parse_id(argv[optind], id);
}

static int cmd_status(int argc, char **argv)
{
	int64_t id = 0;
	int as_json = 0, rc = CL_EXIT_ERROR, r;
	char path[64];
	cl_state_config cfg;
	cl_http *http = NULL;
	json_t *job = NULL;
	if ((r = parse_id_cmd(argc, argv, &id, &as_json)) != 0)
		return r < 0 ? CL_EXIT_OK : r;
	snprintf(path, sizeof(path), "/api/v1/jobs/%lld", (long long)id);
	if (cl_cli_connect(&cfg, &http, &interrupted) != 0 || cl_cli_request(&cfg, http, "GET", path, NULL, &job) != 0)
		goto out;
	if (as_json)
		cl_cli_print_json(job);
	else
		cl_job_print_summary(stdout, job);
	rc = CL_EXIT_OK;
out:
	json_decref(job);
	cl_http_close(http);
	return rc;
}

static int cmd_wait(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'}, {"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
	};
	int64_t id = 0;
	int as_json = 0, opt, rc = CL_EXIT_ERROR;
	char shown[4 * CL_HTTP_MSG_MAX];
	cl_watch w = {.style = CL_WATCH_BAR};
	cl_state_config cfg;
	cl_http *http = NULL;
	json_t *job = NULL;
	CL_ARGS_FOREACH_OPT(argc, argv, "jt:h", opts, opt) {
		switch (opt) {
		case 'j': as_json = 1; break;
		case 't':
			if (cl_args_double_opt("--timeout", optarg, 0.1, 1e9, &w.timeout_s))
				return CL_EXIT_USAGE;
			break;
		case 'h': return cl_args_help();
		default: return cl_args_usage_bad();
		}
	}
	if (argc - optind != 1)
		return cl_args_usage_error("%s", argc == optind ? "needs a job id"
							       : "too many arguments");
	if (parse_id(argv[optind], &id) != 0)
		return CL_EXIT_USAGE;
	const volatile sig_atomic_t *stop = cl_watch_catch_signals();
	if (cl_cli_connect(&cfg, &http, stop) != 0)
		goto out;
	int r = cl_watch_job(&w, &cfg, http, id, &job);
	if (r < 0 || (r > 0 && !*stop))
		goto out;
	if (r > 0) {
		fprintf(stderr, "interrupted: job %lld goes on (tessera wait %lld to watch it)\n",
			(long long)id, (long long)id);
		rc = 130;
		goto out;
	}
	const char *state = json_string_value(json_object_get(job, "state"));
	if (as_json)
		cl_cli_print_json(job);
	if (!state || strcmp(state, "done") != 0) {
		const char *err = json_string_value(json_object_get(job, "error"));
		/* Text from the server: the terminal shows it, and acts on none of it. */
		fprintf(stderr, "job %lld %s%s%s\n", (long long)id, state ? state : "ended", err ? ": " : "",
			err ? ts_escape_ctrl(err, shown, sizeof(shown)) : "");
		goto out;
	}
	if (!as_json)
		cl_job_print_result(stdout, job, w.elapsed_s, w.watched_start);
	rc = CL_EXIT_OK;
out:
	json_decref(job);
	cl_http_close(http);
	return rc;
}

static int cmd_jobs(int argc, char **argv)
{
	int as_json = 0, rc = CL_EXIT_ERROR, r;
	cl_state_config cfg;
	cl_http *http = NULL;
	json_t *reply = NULL;
	if ((r = parse_simple(argc, argv, &as_json)) != 0)
		return r < 0 ? CL_EXIT_OK : r;
	if (optind != argc)
		return cl_args_usage_error("unexpected argument '%s'", argv[optind]);
	if (cl_cli_connect(&cfg, &http, &interrupted) != 0 ||
	    cl_cli_request(&cfg, http, "GET", "/api/v1/jobs", NULL, &reply) != 0)
		goto out;
	if (as_json)
		cl_cli_print_json(reply);
	else
		cl_job_print_jobs(stdout, json_object_get(reply, "jobs"));
	rc = CL_EXIT_OK;
out:
	json_decref(reply);
	cl_http_close(http);
	return rc;
}

static int cmd_cancel(int argc, char **argv)
{
	int64_t id = 0;
	int rc = CL_EXIT_ERROR, r;
	char path[64];
	cl_state_config cfg;
	cl_http *http = NULL;
	json_t *reply = NULL;
	if ((r = parse_id_cmd(argc, argv, &id, NULL)) != 0)
		return r < 0 ? CL_EXIT_OK : r;
	snprintf(path, sizeof(path), "/api/v1/jobs/%lld", (long long)id);
	if (cl_cli_connect(&cfg, &http, &interrupted) != 0 || cl_cli_request(&cfg, http, "DELETE", path, NULL, &reply) != 0)
		goto out;
	printf("job %lld cancelled\n", (long long)id);
	rc = CL_EXIT_OK;
out:
	json_decref(reply);
	cl_http_close(http);
	return rc;
}

/* nodes [--json] lists; nodes disable|enable ID acts on one node. */
static int cmd_nodes(int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
					     {"token", no_argument, NULL, 't'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	int as_json = 0, by_token = 0, rc = CL_EXIT_ERROR, opt;
	int64_t id = 0;
	char path[80];
	const char *action = NULL;
	cl_state_config cfg;
	cl_http *http = NULL;
	json_t *reply = NULL;
	CL_ARGS_FOREACH_OPT(argc, argv, "jth", opts, opt) {
		switch (opt) {
		case 'j': as_json = 1; break;
		case 't': by_token = 1; break;
		case 'h': return cl_args_help(), CL_EXIT_OK;
		default: return cl_args_usage_bad();
		}
	}
	if (optind < argc) {
		action = argv[optind];
		if (strcmp(action, "disable") != 0 && strcmp(action, "enable") != 0)
			return cl_args_usage_error("unknown action '%s' (known: disable, enable)",
						   action);
		if (argc - optind != 2)
			return cl_args_usage_error("%s", argc - optind < 2 ? "needs a node id"
									   : "too many arguments");
		uint64_t v;
		if (cl_args_u64(argv[optind + 1], 1, INT64_MAX, &v) != 0)
			return cl_args_usage_error("a%s id is a positive integer, not '%s'",
						   by_token ? "n enrollment token" : " node", argv[optind + 1]);
		id = (int64_t)v;
		if (by_token && strcmp(action, "disable") != 0)
			return cl_args_usage_error("--token goes with disable: enable the nodes one by one");
		if (by_token)
			snprintf(path, sizeof(path), "/api/v1/enroll-tokens/%lld/disable-nodes", (long long)id);
		else
			snprintf(path, sizeof(path), "/api/v1/nodes/%lld/%s", (long long)id, action);
	} else if (by_token) {
		return cl_args_usage_error("--token goes with disable ID");
	}
	if (cl_cli_connect(&cfg, &http, &interrupted) != 0 ||
	    cl_cli_request(&cfg, http, action ? "POST" : "GET", action ? path : "/api/v1/nodes", NULL,
			&reply) != 0)
		goto out;
	if (as_json)
		cl_cli_print_json(reply);
	else if (by_token)
		printf("enrollment token %lld revoked; %lld of its nodes disabled\n", (long long)id,
		       (long long)json_integer_value(json_object_get(reply, "disabled")));
	else if (action)
		printf("node %lld %sd\n", (long long)id, action);
	else
		cl_job_print_nodes(stdout, json_object_get(reply, "nodes"));
	rc = CL_EXIT_OK;
out:
	json_decref(reply);
	cl_http_close(http);
	return rc;
}

/* Ends a session on the server. An API token is left alone: scripts may use it too, and it is
 * revoked by id (token revoke --api). Returns what to tell the user after "logged out of
 * URL", or NULL with why in msg when the server could not be asked. */
static const char *logout_server(cl_state_config *cfg, char *msg, size_t msglen)
{
	int status = 0;
	const char *said = NULL;
	cl_http *http = NULL;
	if (cl_cli_is_api_token(cfg->token))
		return "; the API token itself stays valid (tessera token list --api, "
		       "tessera token revoke --api ID)";
	cl_http_opts o = {.url = cfg->url, .pin = cfg->pin[0] ? cfg->pin : NULL,
			  .cacert = cfg->cacert[0] ? cfg->cacert : NULL, .token = cfg->token};
	if (cl_http_open(&o, &http, msg, msglen) != TS_OK)
		goto out;
	cl_http_set_timeout(http, 15);
	ts_err e = cl_http_request(http, "POST", "/api/v1/logout", NULL, &status, NULL, msg, msglen);
	if (e == TS_OK)
		said = " (the session is revoked on the server)";
	else if (status == 401 || status == 403)
		said = " (the session had already ended on the server)";
out:
	cl_http_close(http);
	return said;
}

static int cmd_logout(int argc, char **argv)
{
	char dir[CL_STATE_PATH_MAX], why[CL_STATE_PATH_MAX + 128], msg[CL_HTTP_MSG_MAX] = "";
	cl_state_config cfg;
	int r, rc = CL_EXIT_ERROR;
	if ((r = parse_simple(argc, argv, NULL)) != 0)
		return r < 0 ? CL_EXIT_OK : r;
	if (optind != argc)
		return cl_args_usage_error("unexpected argument '%s'", argv[optind]);
	if (cl_cli_config_dir(dir, sizeof(dir)) != 0)
		return CL_EXIT_ERROR;
	ts_err e = cl_state_config_load(dir, &cfg, why, sizeof(why));
	if (e == TS_ERR_NOT_FOUND || (e == TS_OK && !cfg.token[0])) {
		printf("not logged in\n");
		return CL_EXIT_OK;
	}
	if (e) {
		fprintf(stderr, "%s\n", why);
		return CL_EXIT_ERROR;
	}
	const char *said = logout_server(&cfg, msg, sizeof(msg));
	/* Forgotten here whatever the server said. Keep the server and trust settings: the next
	 * login needs only the password. */
	memset(cfg.token, 0, sizeof(cfg.token));
	cfg.expires_at = 0;
	if (cl_state_config_save(dir, &cfg, why, sizeof(why)) != TS_OK) {
		fprintf(stderr, "%s\n", why);
		goto out;
	}
	if (said) {
		printf("logged out of %s%s\n", cfg.url, said);
		rc = CL_EXIT_OK;
	} else {
		fprintf(stderr, "%s: forgot the session here only; it stays valid on the server until "
				"it expires\n", msg[0] ? msg : "the server did not answer");
	}
out:
	memset(&cfg, 0, sizeof(cfg));
	return rc;
}

static const cl_args_cmd commands[] = {
	{"login", cmd_login, "login URL --user NAME | --token TOKEN [--pin PIN | --cacert FILE]",
	 "\nLogs in to the server at URL (https://HOST:PORT) and keeps the login in\n"
	 "$" CONFIG_ENV "/config.json (default ~/" CONFIG_HOME "). With --user the\n"
	 "password comes from $" CL_CLI_PASSWORD_ENV " or a prompt on the terminal and the\n"
	 "server gives a session (12 h); with --token (or $" CL_CLI_TOKEN_ENV ") an API token\n"
	 "from 'tessera token create --api NAME' is checked and kept instead.\n\n"
	 "  --user NAME     account name\n"
	 "  --token TOKEN   log in with this API token (tsa.…)\n"
	 "  --pin PIN       trust the server key with this pin (sha256//..., from\n"
	 "                  'tessera-server pin'); for self-signed servers\n"
	 "  --cacert FILE   trust certificates signed by this CA (default: system CAs)\n"},
	{"whoami", cl_acct_whoami, "whoami [--json]",
	 "\nShows who the stored login is (user, role, id), the server, and when the\n"
	 "session or API token expires.\n\n"
	 "  --json   the answer of GET /api/v1/me\n"},
	{"submit", cl_submit_cmd,
	 "submit KERNEL [--PARAM VALUE]... [--units K | --unit-size U] [--replication R] "
	 "[--quorum Q] [--deadline SECONDS] [--adaptive] | submit program FILE ...",
	 "\nSubmits a job and prints its id. The kernels, their aliases and parameters are\n"
	 "the server's (GET /api/v1/kernels; 'tessera kernels' lists them):\n\n"
	 "  tessera submit pi --samples 2e10 --seed 1          # montecarlo_pi\n"
	 "  tessera submit primes --from 0 --to 1e10           # prime_count: FROM <= p < TO\n"
	 "  tessera submit collatz --from 1 --to 1e7           # longest total stopping time\n"
	 "  tessera submit program FILE --space S --units K [--combine sum|min|max|concat]\n"
	 "                 [-n N] [--file EXTRA]... [--time S] [--memory MB] [-- ARGS...]\n\n"
	 "Numbers may be written 2e10. Options of the job itself:\n"
	 "  --units K         split into K units, or\n"
	 "  --unit-size U     U indices per unit (default: the server's)\n"
	 "  --replication R   copies of each unit computed by distinct nodes (default 1)\n"
	 "  --quorum Q        matching copies needed (default 1)\n"
	 "  --deadline S      seconds a node may hold a unit (default 600; programs: their\n"
	 "                    time limit + 300)\n"
	 "  --adaptive        trusted nodes get single replicas, with random spot checks\n\n"
	 "A program runs once per unit with TESSERA_UNIT_START, TESSERA_UNIT_COUNT and\n"
	 "TESSERA_SPACE in its environment; its stdout is the unit's result, combined by\n"
	 "--combine (concat, the default, joins them in unit order; sum, min and max read\n"
	 "each as a JSON number or flat object of numbers). Its other options are those of\n"
	 "'tessera run'; 'tessera output ID' prints the combined output. Against a server\n"
	 "without GET /api/v1/kernels, pi, primes and collatz are checked as before.\n"},
	{"kernels", cl_submit_kernels_cmd, "kernels [--json]",
	 "\nLists the kernels and program kinds the server runs (GET /api/v1/kernels): the\n"
	 "name to give submit, each parameter's option, type, range, default and help, an\n"
	 "example, and what the result holds.\n\n"
	 "  --json   the answer as the API gives it\n"},
	{"run", cl_prog_run,
	 "run FILE [-n N] [--file EXTRA]... [--time SECONDS] [--memory MB] "
	 "[--replication R --quorum Q] [-- ARGS...]",
	 "\nRuns your program on the grid: uploads FILE (and the extra files), submits a\n"
	 "one-unit program job, shows its state on stderr while it is queued and running,\n"
	 "then prints the program's stdout on stdout and its stderr on stderr, and exits\n"
	 "with its exit status. FILE ends in .py (python3, mpi4py available), .c (compiled\n"
	 "on the node with mpicc) or .sh (sh). Needs the 'programs' grant (an admin gives\n"
	 "it: tessera users grant NAME programs); admins may always.\n\n"
	 "  -n N              MPI processes on one node (default 1)\n"
	 "  --file EXTRA      another file for the program's work directory (repeatable)\n"
	 "  --time SECONDS    wall-time limit (default 600; CPU limit N x SECONDS)\n"
	 "  --memory MB       address space per process (default 1024)\n"
	 "  --replication R --quorum Q   run R copies on distinct nodes; Q must agree\n"
	 "  -- ARGS...        the program's arguments\n\n"
	 "Limits: a file 1 MiB, 16 files per job, 64 arguments of 4096 bytes together.\n"
	 "Exit status: the program's own (0 for ok); 124 killed at its time or CPU limit;\n"
	 "137 killed for memory; 128+N killed by signal N; 126 compile error (the\n"
	 "compiler's message is on stderr); 125 tessera itself failed (a usage error, a\n"
	 "file, refused, unreachable, the job cancelled); 130 interrupted. Ctrl-C leaves the\n"
	 "job running and says how to follow it (tessera status ID, tessera output ID\n"
	 "--unit 0) or stop it (tessera cancel ID).\n"},
	{"output", cl_prog_output, "output ID [--unit SEQ [--stderr]]",
	 "\nPrints a program job's output, raw, on stdout: the combined output of a done job\n"
	 "(its units' stdout in unit order, or for --combine sum|min|max the value as\n"
	 "JSON), or with --unit one unit's stdout (--stderr: its stderr), which a failed\n"
	 "job keeps for the unit that failed it.\n\n"
	 "  --unit SEQ   one unit's stream (0 for a run)\n"
	 "  --stderr     that unit's stderr instead of its stdout\n"},
	{"status", cmd_status, "status ID [--json]",
	 "\nShows a job's state, progress and result.\n\n"
	 "  --json   the job as the API returns it\n"},
	{"wait", cmd_wait, "wait ID [--json] [--timeout SECONDS]",
	 "\nWaits for a job with a progress bar on stderr, then prints its result.\n"
	 "Exits 1 if the job failed or was cancelled, or on timeout.\n\n"
	 "  --json            print the finished job as the API returns it\n"
	 "  --timeout SECONDS give up after this long\n"},
	{"jobs", cmd_jobs, "jobs [--json]", "\nLists your jobs (all jobs for admins), newest first.\n"},
	{"cancel", cmd_cancel, "cancel ID", "\nCancels a queued or running job.\n"},
	{"token", cl_acct_token,
	 "token create [--uses N] [--ttl S] | create --api NAME [--ttl S] | list [--api] [--json] | "
	 "revoke [--api] ID",
	 "\nEnrollment tokens let volunteer nodes join (admins only):\n"
	 "  token create     makes one and prints it (with the enroll command on stderr)\n"
	 "    --uses N       nodes that may enroll with it (default 1)\n"
	 "    --ttl SECONDS  lifetime (default 86400)\n"
	 "  token list       lists them: id, state, uses left, expiry\n"
	 "  token revoke ID  revokes one: no node can enroll with it any more\n\n"
	 "API tokens are your own, for scripts (tessera login URL --token TOKEN, or the\n"
	 "header 'Authorization: Bearer TOKEN'); they act with your role:\n"
	 "  token create --api NAME   makes one and prints it once: it cannot be shown again\n"
	 "    --ttl SECONDS           lifetime (default 90 days)\n"
	 "  token list --api          lists yours: id, name, state, expiry\n"
	 "  token revoke --api ID     revokes one at once\n\n"
	 "  --json   lists as the API returns them\n"},
	{"users", cl_acct_users,
	 "users list [--json] | add NAME [--role user|admin] | disable|enable NAME | "
	 "passwd [NAME] | remove NAME [--yes] | grant|revoke NAME programs",
	 "\nManages accounts (admins only, except passwd for yourself). New passwords come\n"
	 "from $" CL_CLI_NEW_PASSWORD_ENV " or are asked twice on the terminal, never\n"
	 "on the command line; they have 8 to 1023 characters.\n\n"
	 "  users list          every user: id, role, state, jobs, grants\n"
	 "  users add NAME      a new account; --role admin for an admin (default user)\n"
	 "  users disable NAME  refuses its logins and tokens at once\n"
	 "  users enable NAME   lets it in again\n"
	 "  users passwd [NAME] sets the password of NAME (default: yourself); NAME's\n"
	 "                      other sessions and API tokens are revoked. Your own takes\n"
	 "                      your current password too: $" CL_CLI_PASSWORD_ENV " or asked\n"
	 "                      on the terminal. Not with an API token's login\n"
	 "  users remove NAME   deletes the account: its tokens are revoked and its open\n"
	 "                      jobs cancelled. Asks first; --yes does not (needed when\n"
	 "                      stdin is not a terminal)\n"
	 "  users grant NAME programs   lets NAME run its own programs (tessera run);\n"
	 "                      admins may always\n"
	 "  users revoke NAME programs  takes that back\n"},
	{"nodes", cmd_nodes, "nodes [--json] | nodes disable|enable ID | nodes disable --token ID",
	 "\nLists the enrolled nodes with their state (online, lost, disabled),\n"
	 "reliability, units done and the enrollment token each came with (its\n"
	 "volunteer); or disables a node (its token is refused and its units go to\n"
	 "other nodes) or enables it again. Admins only.\n\n"
	 "  --token  disable every node enrolled with enrollment token ID (one\n"
	 "           volunteer's machines) and revoke the token\n"
	 "  --json   the answer as the API gives it\n"},
	{"logout", cmd_logout, "logout",
	 "\nEnds the session on the server (POST /api/v1/logout) and forgets it here; the\n"
	 "server URL and trust settings are kept. If the server cannot be reached the\n"
	 "session is still forgotten here, it says so and exits 1. After a login with an\n"
	 "API token only the local copy is forgotten: the token stays valid for your\n"
	 "scripts until 'tessera token revoke --api ID'.\n"},
};

int main(int argc, char **argv)
{
	return cl_args_dispatch("tessera", "submit and watch jobs on a Tessera grid", commands,
				TS_ARRAY_LEN(commands), argc, argv);
}
