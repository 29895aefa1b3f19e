/* cl_state: node.json, pending.json and config.json, read and written through one field table
 * per file. */
#include "cl_state.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ts_util.h"

#define STATE_FILE_MAX (1u << 20)
#define STATE_MODE 0600
#define STATE_DIR_MODE 0700

enum field_type { FIELD_STR, FIELD_INT };

/* One JSON member of a state file and where it lives in the struct. */
struct field {
	const char *key;
	enum field_type type;
	size_t offset;
	size_t size; /* buffer size for strings */
	int required;
};

#define STR_FIELD(T, m, req) {#m, FIELD_STR, offsetof(T, m), sizeof(((T *)0)->m), req}
#define INT_FIELD(T, m, req) {#m, FIELD_INT, offsetof(T, m), sizeof(int64_t), req}

static const struct field node_fields[] = {
	STR_FIELD(cl_state_node, url, 1),	 STR_FIELD(cl_state_node, pin, 1),
	INT_FIELD(cl_state_node, node_id, 1),	 STR_FIELD(cl_state_node, node_token, 1),
	STR_FIELD(cl_state_node, name, 0),	 STR_FIELD(cl_state_node, cacert, 0),
};

static const struct field config_fields[] = {
	STR_FIELD(cl_state_config, url, 1),   STR_FIELD(cl_state_config, pin, 0),
	STR_FIELD(cl_state_config, cacert, 0), STR_FIELD(cl_state_config, user, 0),
	STR_FIELD(cl_state_config, role, 0),  STR_FIELD(cl_state_config, token, 0),
	INT_FIELD(cl_state_config, expires_at, 0),
};

ts_err cl_state_dir(const char *env, const char *home_rel, char *out, size_t outlen)
{
	const char *v = env ? getenv(env) : NULL;
	if (v && *v) {
		if (snprintf(out, outlen, "%s", v) >= (int)outlen)
			return TS_ERR_BAD_REQUEST;
		return TS_OK;
	}
	const char *home = getenv("HOME");
	if (!home || !*home) {
		struct passwd *pw = getpwuid(getuid());
		home = pw ? pw->pw_dir : NULL;
	}
	if (!home || !*home)
		return TS_ERR_NOT_FOUND;
	if (snprintf(out, outlen, "%s/%s", home, home_rel) >= (int)outlen)
		return TS_ERR_BAD_REQUEST;
	return TS_OK;
}

ts_err cl_state_mkdir(const char *dir, char *why, size_t whylen)
{
	if (ts_mkdirs(dir, STATE_DIR_MODE) != TS_OK) {
		snprintf(why, whylen, "cannot create directory %s: %s", dir, strerror(errno));
		return TS_ERR_IO;
	}
	return TS_OK;
}

static ts_err state_path(const char *dir, const char *name, char *out, size_t outlen)
{
	if (snprintf(out, outlen, "%s/%s", dir, name) >= (int)outlen)
		return TS_ERR_BAD_REQUEST;
	return TS_OK;
}

/* Reads a state file as a JSON object. TS_ERR_NOT_FOUND when it does not exist. */
static ts_err state_read_json(const char *path, json_t **out, char *why, size_t whylen)
{
	char *text = NULL;
	json_error_t jerr;
	ts_err result = ts_read_file(path, STATE_FILE_MAX, &text, NULL);
	*out = NULL;
	if (result) {
		if (result == TS_ERR_IO && errno == ENOENT) {
			snprintf(why, whylen, "%s does not exist", path);
			return TS_ERR_NOT_FOUND;
		}
		snprintf(why, whylen, "cannot read %s: %s", path,
			 result == TS_ERR_IO ? strerror(errno) : ts_strerror(result));
		return result;
	}
	*out = json_loads(text, 0, &jerr);
	free(text);
	if (!*out) {
		snprintf(why, whylen, "%s is not valid JSON (line %d: %s)", path, jerr.line, jerr.text);
		return TS_ERR_BAD_REQUEST;
	}
	return TS_OK;
}

static ts_err state_write_json(const char *path, const json_t *j, char *why, size_t whylen)
{
	char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
	ts_err result = TS_ERR_NOMEM;
	if (!text) {
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	size_t len = strlen(text);
	text[len] = '\n'; /* json_dumps's NUL becomes the final newline */
	result = ts_write_file(path, text, len + 1, STATE_MODE);
	if (result)
		snprintf(why, whylen, "cannot write %s: %s", path, strerror(errno));
out:
	free(text);
	return result;
}

static ts_err fields_from_json(const json_t *obj, const struct field *fields, size_t n, void *st,
			       const char *path, char *why, size_t whylen)
{
	if (!json_is_object(obj)) {
		snprintf(why, whylen, "%s: not a JSON object", path);
		return TS_ERR_BAD_REQUEST;
	}
	for (size_t i = 0; i < n; i++) {
		const struct field *f = &fields[i];
		json_t *v = json_object_get(obj, f->key);
		char *at = (char *)st + f->offset;
		if (!v || json_is_null(v)) {
			if (f->required) {
				snprintf(why, whylen, "%s: '%s' is missing", path, f->key);
				return TS_ERR_BAD_REQUEST;
			}
			continue;
		}
		if (f->type == FIELD_STR) {
			const char *s = json_string_value(v);
			if (!s || strlen(s) >= f->size) {
				snprintf(why, whylen, "%s: '%s' must be a string shorter than %zu", path,
					 f->key, f->size);
				return TS_ERR_BAD_REQUEST;
			}
			memcpy(at, s, strlen(s) + 1);
		} else {
			if (!json_is_integer(v)) {
				snprintf(why, whylen, "%s: '%s' must be an integer", path, f->key);
				return TS_ERR_BAD_REQUEST;
			}
			int64_t x = (int64_t)json_integer_value(v);
			memcpy(at, &x, sizeof(x));
		}
	}
	return TS_OK;
}

static json_t *fields_to_json(const struct field *fields, size_t n, const void *st)
{
	json_t *obj = json_object();
	for (size_t i = 0; obj && i < n; i++) {
		const struct field *f = &fields[i];
		const char *at = (const char *)st + f->offset;
		json_t *v;
		if (f->type == FIELD_STR) {
			if (!*at && !f->required)
				continue; /* absent rather than "" */
			v = json_string(at);
		} else {
			int64_t x;
			memcpy(&x, at, sizeof(x));
			v = json_integer((json_int_t)x);
		}
		if (json_object_set_new(obj, f->key, v) != 0) {
			json_decref(obj);
			obj = NULL;
		}
	}
	return obj;
}

static ts_err state_load(const char *dir, const char *name, const struct field *fields, size_t n,
			 void *st, char *why, size_t whylen)
{
	char path[CL_STATE_PATH_MAX];
	json_t *obj = NULL;
	ts_err result = state_path(dir, name, path, sizeof(path));
	if (result) {
		snprintf(why, whylen, "state directory path too long");
		goto out;
	}
	if ((result = state_read_json(path, &obj, why, whylen)) != TS_OK)
		goto out;
	result = fields_from_json(obj, fields, n, st, path, why, whylen);
out:
	json_decref(obj);
	return result;
}

static ts_err state_save(const char *dir, const char *name, const struct field *fields, size_t n,
			 const void *st, char *why, size_t whylen)
{
	char path[CL_STATE_PATH_MAX];
	json_t *obj = NULL;
	ts_err result = state_path(dir, name, path, sizeof(path));
	if (result) {
		snprintf(why, whylen, "state directory path too long");
		goto out;
	}
	if ((result = cl_state_mkdir(dir, why, whylen)) != TS_OK)
		goto out;
	result = TS_ERR_NOMEM;
	if (!(obj = fields_to_json(fields, n, st))) {
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	result = state_write_json(path, obj, why, whylen);
out:
	json_decref(obj);
	return result;
}

ts_err cl_state_node_load(const char *dir, cl_state_node *node, char *why, size_t whylen)
{
	memset(node, 0, sizeof(*node));
	ts_err result = state_load(dir, "node.json", node_fields, TS_ARRAY_LEN(node_fields), node,
				   why, whylen);
	if (result == TS_OK && (node->node_id <= 0 || !ts_pin_valid(node->pin))) {
		snprintf(why, whylen, "%s/node.json: bad node_id or pin", dir);
		result = TS_ERR_BAD_REQUEST;
	}
	return result;
}

ts_err cl_state_node_save(const char *dir, const cl_state_node *node, char *why, size_t whylen)
{
	return state_save(dir, "node.json", node_fields, TS_ARRAY_LEN(node_fields), node, why,
			  whylen);
}

int cl_state_node_exists(const char *dir)
{
	char path[CL_STATE_PATH_MAX];
	struct stat st;
	return state_path(dir, "node.json", path, sizeof(path)) == TS_OK && stat(path, &st) == 0;
}

ts_err cl_state_config_load(const char *dir, cl_state_config *cfg, char *why, size_t whylen)
{
	memset(cfg, 0, sizeof(*cfg));
	return state_load(dir, "config.json", config_fields, TS_ARRAY_LEN(config_fields), cfg, why,
			  whylen);
}

ts_err cl_state_config_save(const char *dir, const cl_state_config *cfg, char *why,
			    size_t whylen)
{
	return state_save(dir, "config.json", config_fields, TS_ARRAY_LEN(config_fields), cfg, why,
			  whylen);
}

ts_err cl_state_pending_load(const char *dir, json_t **items, char *why, size_t whylen)
{
	char path[CL_STATE_PATH_MAX];
	json_t *obj = NULL;
	ts_err result = state_path(dir, "pending.json", path, sizeof(path));
	*items = NULL;
	if (result) {
		snprintf(why, whylen, "state directory path too long");
		goto out;
	}
	result = state_read_json(path, &obj, why, whylen);
	if (result == TS_ERR_NOT_FOUND) {
		result = (*items = json_array()) ? TS_OK : TS_ERR_NOMEM;
		goto out;
	}
	if (result)
		goto out;
	json_t *arr = json_object_get(obj, "pending");
	if (!json_is_array(arr)) {
		snprintf(why, whylen, "%s: 'pending' must be an array", path);
		result = TS_ERR_BAD_REQUEST;
		goto out;
	}
	*items = json_incref(arr);
out:
	json_decref(obj);
	return result;
}

ts_err cl_state_pending_save(const char *dir, const json_t *items, char *why, size_t whylen)
{
	char path[CL_STATE_PATH_MAX];
	json_t *obj = NULL;
	ts_err result = state_path(dir, "pending.json", path, sizeof(path));
	if (result) {
		snprintf(why, whylen, "state directory path too long");
		goto out;
	}
	result = TS_ERR_NOMEM;
	if (!(obj = json_pack("{s:O}", "pending", (json_t *)items))) {
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	result = state_write_json(path, obj, why, whylen);
out:
	json_decref(obj);
	return result;
}

ts_err cl_state_pending_clear(const char *dir, char *why, size_t whylen)
{
	char path[CL_STATE_PATH_MAX];
	if (state_path(dir, "pending.json", path, sizeof(path)) != TS_OK) {
		snprintf(why, whylen, "state directory path too long");
		return TS_ERR_BAD_REQUEST;
	}
	if (unlink(path) != 0 && errno != ENOENT) {
		snprintf(why, whylen, "cannot remove %s: %s", path, strerror(errno));
		return TS_ERR_IO;
	}
	return TS_OK;
}

ts_err cl_state_rates_load(const char *dir, json_t **obj, char *why, size_t whylen)
{
	char path[CL_STATE_PATH_MAX];
	*obj = NULL;
	if (state_path(dir, "rates.json", path, sizeof(path)) != TS_OK) {
		snprintf(why, whylen, "state directory path too long");
		return TS_ERR_BAD_REQUEST;
	}
	ts_err result = state_read_json(path, obj, why, whylen);
	if (result == TS_OK && !json_is_object(*obj)) {
		snprintf(why, whylen, "%s: not a JSON object", path);
		json_decref(*obj);
		*obj = NULL;
		result = TS_ERR_BAD_REQUEST;
	}
	return result;
}

ts_err cl_state_rates_save(const char *dir, const json_t *obj, char *why, size_t whylen)
{
	char path[CL_STATE_PATH_MAX];
	if (state_path(dir, "rates.json", path, sizeof(path)) != TS_OK) {
		snprintf(why, whylen, "state directory path too long");
		return TS_ERR_BAD_REQUEST;
	}
	return state_write_json(path, obj, why, whylen);
}
