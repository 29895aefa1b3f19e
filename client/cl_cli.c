/* cl_cli: login, requests, passwords and confirmations for the tessera CLI's commands. */
#include "cl_cli.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "ts_token.h"
#include "ts_util.h"

int cl_cli_config_dir(char *out, size_t outlen)
{
	if (cl_state_dir(CL_CLI_CONFIG_ENV, CL_CLI_CONFIG_HOME, out, outlen) != TS_OK) {
		fprintf(stderr, "no configuration directory: set $%s or $HOME\n", CL_CLI_CONFIG_ENV);
		return -1;
	}
	return 0;
}

int cl_cli_is_api_token(const char *token)
{
	return strncmp(token, TS_TOKEN_API ".", sizeof(TS_TOKEN_API)) == 0;
}

static void cli_login_expired(const cl_state_config *cfg)
{
	if (cl_cli_is_api_token(cfg->token))
		fprintf(stderr, "API token expired or revoked: make a new one (tessera token create "
				"--api NAME) and log in with it (tessera login %s --token TOKEN)\n",
			cfg->url);
	else
		fprintf(stderr, "session expired or revoked: log in again (tessera login %s --user %s)\n",
			cfg->url, cfg->user[0] ? cfg->user : "NAME");
}

int cl_cli_connect(cl_state_config *cfg, cl_http **http, const volatile sig_atomic_t *abort_flag)
{
	char dir[CL_STATE_PATH_MAX], why[CL_STATE_PATH_MAX + 128];
	*http = NULL;
	if (cl_cli_config_dir(dir, sizeof(dir)) != 0)
		return -1;
	ts_err e = cl_state_config_load(dir, cfg, why, sizeof(why));
	if (e == TS_ERR_NOT_FOUND || (e == TS_OK && !cfg->token[0])) {
		fprintf(stderr, "not logged in: run tessera login URL --user NAME (or --token TOKEN)\n");
		return -1;
	}
	if (e) {
		fprintf(stderr, "%s\n", why);
		return -1;
	}
	if (cfg->expires_at > 0 && ts_now() >= cfg->expires_at) {
		cli_login_expired(cfg);
		return -1;
	}
	cl_http_opts o = {.url = cfg->url, .pin = cfg->pin[0] ? cfg->pin : NULL,
			  .cacert = cfg->cacert[0] ? cfg->cacert : NULL, .token = cfg->token};
	if (cl_http_open(&o, http, why, sizeof(why)) != TS_OK) {
		fprintf(stderr, "%s\n", why);
		return -1;
	}
	cl_http_set_abort(*http, abort_flag);
	return 0;
}

void cl_cli_request_failed(const cl_state_config *cfg, int status, const char *msg)
{
	if (status == 401)
		cli_login_expired(cfg);
	else if (status == 403)
		fprintf(stderr, "not allowed: %s\n", msg);
	else
		fprintf(stderr, "%s\n", msg);
}

int cl_cli_request(const cl_state_config *cfg, cl_http *http, const char *method,
		   const char *path, const json_t *body, json_t **reply)
{
	char msg[CL_HTTP_MSG_MAX];
	int status = 0;
	ts_err e = cl_http_request(http, method, path, body, &status, reply, msg, sizeof(msg));
	if (e == TS_OK)
		return 0;
	cl_cli_request_failed(cfg, status, msg);
	return -1;
}

int cl_cli_read_password(const char *prompt, char *out, size_t outlen)
{
	struct termios old, quiet;
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC), rc = -1, restore = 0;
	size_t n = 0;
	if (fd < 0)
		return -1;
	if (write(fd, prompt, strlen(prompt)) < 0)
		goto out;
	if (tcgetattr(fd, &old) == 0) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		restore = tcsetattr(fd, TCSAFLUSH, &quiet) == 0;
	}
	for (;;) {
		char c;
		ssize_t r = read(fd, &c, 1);
		if (r <= 0 || c == '\n' || c == '\r')
			break;
		if (n + 1 < outlen)
			out[n++] = c;
	}
	out[n] = '\0';
	rc = 0;
out:
	if (restore)
		tcsetattr(fd, TCSAFLUSH, &old);
	if (write(fd, "\n", 1) < 0) {
		/* nothing to do: the newline is cosmetic */
	}
	close(fd);
	return rc;
}

int cl_cli_new_password(const char *user, char *out, size_t outlen)
{
	char prompt[CL_STATE_NAME_MAX + 64], again[CL_CLI_PASSWORD_MAX];
	const char *env = getenv(CL_CLI_NEW_PASSWORD_ENV);
	int rc = -1;
	out[0] = '\0';
	if (env && *env) {
		if (strlen(env) >= outlen || strlen(env) >= CL_CLI_PASSWORD_MAX) {
			fprintf(stderr, "$%s is longer than %d characters\n", CL_CLI_NEW_PASSWORD_ENV,
				CL_CLI_PASSWORD_MAX - 1);
			goto out;
		}
		snprintf(out, outlen, "%s", env);
	} else {
		snprintf(prompt, sizeof(prompt), "new password for %s: ", user);
		if (cl_cli_read_password(prompt, out, outlen) != 0) {
			fprintf(stderr, "no password: set $%s or run on a terminal\n",
				CL_CLI_NEW_PASSWORD_ENV);
			goto out;
		}
		if (cl_cli_read_password("again: ", again, sizeof(again)) != 0 ||
		    strcmp(out, again) != 0) {
			fprintf(stderr, "the two passwords do not match: nothing changed\n");
			goto out;
		}
	}
	if (strlen(out) < CL_CLI_PASSWORD_MIN) {
		fprintf(stderr, "the password must have at least %d characters: nothing changed\n",
			CL_CLI_PASSWORD_MIN);
		goto out;
	}
	rc = 0;
out:
	memset(again, 0, sizeof(again));
	if (rc)
		memset(out, 0, outlen);
	return rc;
}

int cl_cli_confirm(const char *question)
{
	char line[32];
	fprintf(stderr, "%s [y/N] ", question);
	fflush(stderr);
	if (!fgets(line, sizeof(line), stdin))
		return 0;
	return line[0] == 'y' || line[0] == 'Y';
}

int cl_cli_print_json(const json_t *j)
{
	char *text = json_dumps(j, JSON_INDENT(2));
	if (!text)
		return -1;
	printf("%s\n", text);
	free(text);
	return 0;
}
