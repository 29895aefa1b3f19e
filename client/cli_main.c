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
#include "cl_state.h"
#include "ts_token.h"
#include "ts_util.h"

#define CONFIG_ENV CL_CLI_CONFIG_ENV
#define CONFIG_HOME CL_CLI_CONFIG_HOME
#define WAIT_POLL_S 0.5
#define WAIT_LOG_EVERY_S 5.0 /* progress lines when stderr is not a terminal */

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

enum { O_SAMPLES = 1, O_SEED, O_FROM, O_TO, O_UNITS, O_UNIT_SIZE, O_REPL, O_QUORUM, O_DEADLINE, O_ADAPTIVE };
#define OPT_BIT(o) (1u << (o))

/* Kernel names users may type, the kernel each one means, and its parameter options. */
static const struct {
	const char *alias, *kernel;
	unsigned allowed, required; /* OPT_BIT()s of parameter options */
} submit_kernels[] = {
	{"pi", "montecarlo_pi", OPT_BIT(O_SAMPLES) | OPT_BIT(O_SEED), OPT_BIT(O_SAMPLES)},
	{"montecarlo_pi", "montecarlo_pi", OPT_BIT(O_SAMPLES) | OPT_BIT(O_SEED), OPT_BIT(O_SAMPLES)},
	{"primes", "prime_count", OPT_BIT(O_FROM) | OPT_BIT(O_TO), OPT_BIT(O_FROM) | OPT_BIT(O_TO)},
	{"prime_count", "prime_count", OPT_BIT(O_FROM) | OPT_BIT(O_TO), OPT_BIT(O_FROM) | OPT_BIT(O_TO)},
	{"collatz", "collatz", OPT_BIT(O_FROM) | OPT_BIT(O_TO), OPT_BIT(O_FROM) | OPT_BIT(O_TO)},
};

static int cmd_submit(int argc, char **argv)
{
	static const struct option opts[] = {
		{"samples", required_argument, NULL, O_SAMPLES},
		{"seed", required_argument, NULL, O_SEED},
		{"from", required_argument, NULL, O_FROM},
		{"to", required_argument, NULL, O_TO},
		{"units", required_argument, NULL, O_UNITS},
		{"unit-size", required_argument, NULL, O_UNIT_SIZE},
		{"replication", required_argument, NULL, O_REPL},
		{"quorum", required_argument, NULL, O_QUORUM},
		{"deadline", required_argument, NULL, O_DEADLINE},
		{"adaptive", no_argument, NULL, O_ADAPTIVE},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	/* Option -> JSON member; only the options given are sent, so the server's defaults hold. */
	static const struct {
		int opt;
		const char *option, *key;
		int in_params;
		uint64_t min, max;
	} fields[] = {
		{O_SAMPLES, "samples", "samples", 1, 1, 1000000000000000000ULL},
		{O_SEED, "seed", "seed", 1, 0, INT64_MAX},
		{O_FROM, "from", "from", 1, 0, INT64_MAX},
		{O_TO, "to", "to", 1, 1, INT64_MAX},
		{O_UNITS, "units", "units", 0, 1, INT64_MAX},
		{O_UNIT_SIZE, "unit-size", "unit_size", 0, 1, INT64_MAX},
		{O_REPL, "replication", "replication", 0, 1, INT64_MAX},
		{O_QUORUM, "quorum", "quorum", 0, 1, INT64_MAX},
		{O_DEADLINE, "deadline", "deadline_s", 0, 1, INT64_MAX},
	};
	int opt, rc = CL_EXIT_ERROR, given_units = 0, given_size = 0;
	unsigned given = 0;
	cl_state_config cfg;
	cl_http *http = NULL;
	json_t *body = json_object(), *params = json_object(), *reply = NULL;
	const char *kernel = NULL;
	if (!body || !params)
		goto out;
	CL_ARGS_FOREACH_OPT(argc, argv, "h", opts, opt) {
		if (opt == 'h') {
			rc = cl_args_help();
			goto out;
		}
		if (opt == O_ADAPTIVE) {
			json_object_set_new(body, "adaptive", json_true());
			continue;
		}
		size_t i;
		for (i = 0; i < TS_ARRAY_LEN(fields) && fields[i].opt != opt; i++)
			;
		if (i == TS_ARRAY_LEN(fields)) {
			rc = cl_args_usage_bad();
			goto out;
		}
		uint64_t v;
		if (cl_args_u64(optarg, fields[i].min, fields[i].max, &v) != 0) {
			rc = cl_args_usage_error(
				"--%s must be an integer from %llu to %llu (2e10 works), not '%s'",
				fields[i].option, (unsigned long long)fields[i].min,
				(unsigned long long)fields[i].max, optarg);
			goto out;
		}
		json_object_set_new(fields[i].in_params ? params : body, fields[i].key,
				    json_integer((json_int_t)v));
		given_units |= opt == O_UNITS;
		given_size |= opt == O_UNIT_SIZE;
		if (fields[i].in_params)
			given |= OPT_BIT(opt);
	}
	if (argc - optind != 1) {
		rc = cl_args_usage_error("%s", argc == optind ? "needs a kernel: pi, primes or collatz"
							     : "too many arguments");
		goto out;
	}
	size_t k;
	for (k = 0; k < TS_ARRAY_LEN(submit_kernels) && strcmp(argv[optind], submit_kernels[k].alias); k++)
		;
	if (k == TS_ARRAY_LEN(submit_kernels)) {
		rc = cl_args_usage_error("unknown kernel '%s' (known: pi, primes, collatz)", argv[optind]);
		goto out;
	}
	kernel = submit_kernels[k].kernel;
	for (size_t i = 0; i < TS_ARRAY_LEN(fields); i++) {
		unsigned bit = OPT_BIT(fields[i].opt);
		int stray = (given & ~submit_kernels[k].allowed & bit) != 0;
		int missing = (submit_kernels[k].required & ~given & bit) != 0;
		if (!fields[i].in_params || (!stray && !missing))
			continue;
		rc = cl_args_usage_error("--%s %s for %s", fields[i].option,
					 given & bit ? "does not apply" : "is required", argv[optind]);
		goto out;
	}
	if (given_units && given_size) {
		rc = cl_args_usage_error("give --units or --unit-size, not both");
		goto out;
	}
	json_object_set_new(body, "kernel", json_string(kernel));
	json_object_set(body, "params", params);
	if (cl_cli_connect(&cfg, &http, &interrupted) != 0 || cl_cli_request(&cfg, http, "POST", "/api/v1/jobs", body,
							 &reply) != 0)
		goto out;
	json_t *id = json_object_get(reply, "id");
	if (!json_is_integer(id)) {
		fprintf(stderr, "submit: the server's reply has no job id\n");
		goto out;
	}
	printf("%" JSON_INTEGER_FORMAT "\n", json_integer_value(id));
	rc = CL_EXIT_OK;
out:
	json_decref(body);
	json_decref(params);
	json_decref(reply);
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

static void on_interrupt(int sig)
{
	interrupted = 1;
}

static void sleep_interruptible(double seconds)
{
	double until = ts_mono() + seconds;
	while (!interrupted) {
		double left = until - ts_mono();
		if (left <= 0)
			break;
		struct timespec ts = {0, (long)((left > 0.1 ? 0.1 : left) * 1e9)};
		nanosleep(&ts, NULL);
	}
}

static int job_finished(const char *state)
{
	return state && (strcmp(state, "done") == 0 || strcmp(state, "failed") == 0 ||
			 strcmp(state, "cancelled") == 0);
}

static int cmd_wait(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'}, {"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
	};
	int64_t id = 0;
	int as_json = 0, opt, rc = CL_EXIT_ERROR, tty = isatty(STDERR_FILENO), watched_start = 0;
	double timeout = 0, retry = WAIT_POLL_S, last_line = -1e9;
	char path[64], msg[CL_HTTP_MSG_MAX], bar[160], last_note[300] = "", shown[4 * CL_HTTP_MSG_MAX];
	cl_state_config cfg;
	cl_http *http = NULL;
	json_t *job = NULL;
	CL_ARGS_FOREACH_OPT(argc, argv, "jt:h", opts, opt) {
		switch (opt) {
		case 'j': as_json = 1; break;
		case 't':
			if (cl_args_double_opt("--timeout", optarg, 0.1, 1e9, &timeout))
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
	snprintf(path, sizeof(path), "/api/v1/jobs/%lld", (long long)id);
	if (cl_cli_connect(&cfg, &http, &interrupted) != 0)
		goto out;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_interrupt;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	double t0 = ts_mono(), t_done = 0;
	int first = 1, warned = 0;
	while (!interrupted) {
		int status = 0;
		json_t *next = NULL;
		double t_req = ts_mono();
		ts_err e = cl_http_request(http, "GET", path, NULL, &status, &next, msg, sizeof(msg));
		if (e && !interrupted && (status == 0 || status >= 500 || status == 429)) {
			/* Transient: the job runs on without us; keep asking, a little slower. */
			if (!warned++)
				fprintf(stderr, "%s%s; retrying\n", tty ? "\r\033[K" : "",
					ts_escape_ctrl(msg, shown, sizeof(shown)));
			retry = retry * 2 > 5 ? 5 : retry * 2;
			sleep_interruptible(retry);
			goto check_timeout;
		}
		if (e) {
			if (interrupted)
				break;
			if (tty)
				fputc('\n', stderr);
			cl_cli_request_failed(&cfg, status, msg);
			goto out;
		}
		retry = WAIT_POLL_S;
		warned = 0;
		json_decref(job);
		job = next;
		const char *state = json_string_value(json_object_get(job, "state"));
		if (first) {
			json_int_t done = json_integer_value(
				json_object_get(json_object_get(job, "units"), "done"));
			watched_start = (state && strcmp(state, "queued") == 0) || done == 0;
			first = 0;
		}
		double now = ts_mono();
		int finished = job_finished(state);
		if (finished)
			t_done = now;
		cl_job_bar(job, now - t0, bar, sizeof(bar));
		/* Why the job does not move (too few volunteers for its quorum), once per change. */
		const char *note = json_string_value(json_object_get(job, "note"));
		if (note && strcmp(note, last_note) != 0)
			fprintf(stderr, "%snote: %s\n", tty ? "\r\033[K" : "", note);
		snprintf(last_note, sizeof(last_note), "%s", note ? note : "");
		if (tty) {
			fprintf(stderr, "\r%s\033[K%s", bar, finished ? "\n" : "");
		} else if (finished || now - last_line >= WAIT_LOG_EVERY_S) {
			fprintf(stderr, "%s\n", bar);
			last_line = now;
		}
		if (finished)
			break;
		sleep_interruptible(WAIT_POLL_S - (ts_mono() - t_req));
	check_timeout:
		if (timeout > 0 && ts_mono() - t0 >= timeout) {
			if (tty)
				fputc('\n', stderr);
			fprintf(stderr, "timed out after %.1f s: job %lld is still %s\n", ts_mono() - t0,
				(long long)id,
				job ? json_string_value(json_object_get(job, "state")) : "unknown");
			goto out;
		}
	}
	if (interrupted) {
		fprintf(stderr, "%sinterrupted: job %lld goes on (tessera wait %lld to watch it)\n",
			tty ? "\n" : "", (long long)id, (long long)id);
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
		cl_job_print_result(stdout, job, t_done - t0, watched_start);
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
	{"submit", cmd_submit,
	 "submit pi --samples N [--seed S] | primes|collatz --from A --to B  [--units K | "
	 "--unit-size U] [--replication R] [--quorum Q] [--deadline SECONDS] [--adaptive]",
	 "\nSubmits a job and prints its id: pi (montecarlo_pi) takes --samples and --seed;\n"
	 "primes (prime_count: primes p with FROM <= p < TO) and collatz (the n in [FROM, TO)\n"
	 "with the longest total stopping time) take --from and --to.\n"
	 "Numbers may be written 2e10.\n\n"
	 "  --samples N       samples to draw (1..1e18)\n"
	 "  --seed S          random seed (default 0)\n"
	 "  --from A --to B   the range [A, B) of primes or collatz\n"
	 "  --units K         split into K units, or\n"
	 "  --unit-size U     U indices per unit (default: the server's)\n"
	 "  --replication R   copies of each unit computed by distinct nodes (default 1)\n"
	 "  --quorum Q        matching copies needed (default 1)\n"
	 "  --deadline S      seconds a node may hold a unit (default 600)\n"
	 "  --adaptive        trusted nodes get single replicas, with random spot checks\n"},
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
	 "passwd [NAME] | remove NAME [--yes]",
	 "\nManages accounts (admins only, except passwd for yourself). New passwords come\n"
	 "from $" CL_CLI_NEW_PASSWORD_ENV " or are asked twice on the terminal, never\n"
	 "on the command line; they have 8 to 1023 characters.\n\n"
	 "  users list          every user: id, role, state, jobs\n"
	 "  users add NAME      a new account; --role admin for an admin (default user)\n"
	 "  users disable NAME  refuses its logins and tokens at once\n"
	 "  users enable NAME   lets it in again\n"
	 "  users passwd [NAME] sets the password of NAME (default: yourself); NAME's\n"
	 "                      other sessions and API tokens are revoked. Your own takes\n"
	 "                      your current password too: $" CL_CLI_PASSWORD_ENV " or asked\n"
	 "                      on the terminal. Not with an API token's login\n"
	 "  users remove NAME   deletes the account: its tokens are revoked and its open\n"
	 "                      jobs cancelled. Asks first; --yes does not (needed when\n"
	 "                      stdin is not a terminal)\n"},
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
