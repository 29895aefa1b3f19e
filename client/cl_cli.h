/* cl_cli: the plumbing every `tessera` command shares: the stored login, requests whose
 * failures are told to people in one line, passwords from a no-echo prompt, confirmations.
 *
 * Functions that fail print why on stderr themselves and return -1, so a command only picks
 * its exit status. They are for the CLI's main thread only. */
#ifndef CL_CLI_H
#define CL_CLI_H

#include <signal.h>
#include <stddef.h>

#include <jansson.h>

#include "cl_http.h"
#include "cl_state.h"

#define CL_CLI_CONFIG_ENV "TESSERA_CONFIG"
#define CL_CLI_CONFIG_HOME ".config/tessera"
#define CL_CLI_PASSWORD_ENV "TESSERA_PASSWORD"         /* the login password */
#define CL_CLI_NEW_PASSWORD_ENV "TESSERA_NEW_PASSWORD" /* users add, users passwd */
#define CL_CLI_TOKEN_ENV "TESSERA_TOKEN"               /* login with an API token */
#define CL_CLI_PASSWORD_MAX 1024                       /* the server's cap */
#define CL_CLI_PASSWORD_MIN 8

/* The configuration directory ($TESSERA_CONFIG, else ~/.config/tessera). */
int cl_cli_config_dir(char *out, size_t outlen);

/* Whether a stored token is an API token (tsa.) rather than a session: they expire and are
 * replaced differently, so the messages differ. */
int cl_cli_is_api_token(const char *token);

/* Loads the login into cfg and opens a connection with its token; a request in flight is
 * abandoned while *abort_flag is set (NULL: never). On failure *http is NULL. */
int cl_cli_connect(cl_state_config *cfg, cl_http **http, const volatile sig_atomic_t *abort_flag);

/* Tells why a request failed: 401 as an expired login with how to log in again, 403 as "not
 * allowed", else the server's or the transport's words. */
void cl_cli_request_failed(const cl_state_config *cfg, int status, const char *msg);

/* One request through cl_http_request; on failure prints why (cl_cli_request_failed). */
int cl_cli_request(const cl_state_config *cfg, cl_http *http, const char *method,
		   const char *path, const json_t *body, json_t **reply);

/* Reads a line from the terminal (/dev/tty) without echo; -1 when there is no terminal. */
int cl_cli_read_password(const char *prompt, char *out, size_t outlen);

/* A new password for user: $TESSERA_NEW_PASSWORD, else asked twice on the terminal. It must be
 * CL_CLI_PASSWORD_MIN..CL_CLI_PASSWORD_MAX-1 characters and both answers must match. out needs
 * CL_CLI_PASSWORD_MAX bytes; the caller clears it after use. */
int cl_cli_new_password(const char *user, char *out, size_t outlen);

/* Asks question on stderr and reads a y/N answer from stdin: 1 for yes, 0 otherwise. */
int cl_cli_confirm(const char *question);

/* Prints JSON indented, as --json does. */
int cl_cli_print_json(const json_t *j);

#endif
