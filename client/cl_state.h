/* cl_state: the files the client programs keep between runs.
 *
 * tessera-client keeps DIR/node.json (its enrollment: server URL, pin, node id and token, and
 * the CA file when the server's certificate is also to be verified against one) and
 * DIR/pending.json (results computed but not yet answered by the server) and DIR/rates.json
 * (its last benchmark, so that a restart need not measure again). tessera keeps
 * DIR/config.json (the login). Directories are 0700, files 0600 and written atomically, since
 * they hold bearer tokens. Loaders fail with a one-line reason for users in why. */
#ifndef CL_STATE_H
#define CL_STATE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "cl_http.h"
#include "ts_err.h"
#include "ts_token.h"

#define CL_STATE_PATH_MAX 4096
#define CL_STATE_NAME_MAX 128

/* A node's enrollment (node.json). */
typedef struct cl_state_node {
	char url[CL_HTTP_URL_MAX];
	char pin[TS_PIN_MAX];
	int64_t node_id;
	char node_token[TS_TOKEN_MAX];
	char name[CL_STATE_NAME_MAX];
	char cacert[CL_STATE_PATH_MAX]; /* absolute path, or empty: the pin alone */
} cl_state_node;

/* The CLI's login (config.json). pin and cacert may be empty; token empty after logout. */
typedef struct cl_state_config {
	char url[CL_HTTP_URL_MAX];
	char pin[TS_PIN_MAX];
	char cacert[CL_STATE_PATH_MAX];
	char user[CL_STATE_NAME_MAX];
	char role[32];
	char token[TS_TOKEN_MAX];
	int64_t expires_at;
} cl_state_config;

/* The state directory: $env if set and non-empty, else $HOME/home_rel (home from the password
 * database when $HOME is unset). */
ts_err cl_state_dir(const char *env, const char *home_rel, char *out, size_t outlen);
/* Creates dir (and parents) with mode 0700 when missing. */
ts_err cl_state_mkdir(const char *dir, char *why, size_t whylen);

/* TS_ERR_NOT_FOUND when the file does not exist; TS_ERR_BAD_REQUEST when it is malformed. */
ts_err cl_state_node_load(const char *dir, cl_state_node *node, char *why, size_t whylen);
ts_err cl_state_node_save(const char *dir, const cl_state_node *node, char *why, size_t whylen);
/* Whether dir already holds an enrollment. */
int cl_state_node_exists(const char *dir);

ts_err cl_state_config_load(const char *dir, cl_state_config *cfg, char *why, size_t whylen);
ts_err cl_state_config_save(const char *dir, const cl_state_config *cfg, char *why,
			    size_t whylen);

/* Pending results: a JSON array of items (cl_node's format). Load gives a new empty array when
 * there is no file; a malformed file is an error (it is left alone for a person to look at). */
ts_err cl_state_pending_load(const char *dir, json_t **items, char *why, size_t whylen);
ts_err cl_state_pending_save(const char *dir, const json_t *items, char *why, size_t whylen);
/* Removes the file; no file is fine. */
ts_err cl_state_pending_clear(const char *dir, char *why, size_t whylen);

/* rates.json: any JSON object, its meaning the caller's. TS_ERR_NOT_FOUND when absent. */
ts_err cl_state_rates_load(const char *dir, json_t **obj, char *why, size_t whylen);
ts_err cl_state_rates_save(const char *dir, const json_t *obj, char *why, size_t whylen);

#endif
