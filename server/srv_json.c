#include "srv_json.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ts_util.h"

static const char *const type_names[] = {
	[F_INT] = "an integer",
	[F_NUM] = "a number",
	[F_STR] = "a string",
	[F_OBJ] = "an object",
	[F_ARR] = "an array",
	[F_BOOL] = "true or false",
	[F_TEXT] = "a string",
	[F_OBJ_NULL] = "an object or null",
	[F_TEXT_NULL] = "a string or null",
};

const char *srv_json_quote(const char *s, char out[SRV_QUOTE_MAX])
{
	return ts_escape_ctrl(s, out, SRV_QUOTE_MAX);
}

static int json_type_ok(const json_t *v, enum srv_ftype t)
{
	switch (t) {
	case F_INT:
		return json_is_integer(v);
	case F_NUM:
		return json_is_number(v);
	case F_STR:
	case F_TEXT:
		return json_is_string(v);
	case F_OBJ:
		return json_is_object(v);
	case F_OBJ_NULL:
		return json_is_object(v) || json_is_null(v);
	case F_TEXT_NULL:
		return json_is_string(v) || json_is_null(v);
	case F_ARR:
		return json_is_array(v);
	case F_BOOL:
		return json_is_boolean(v);
	}
	return 0;
}

ts_err srv_json_check(const json_t *obj, const srv_field *fields, size_t n, char *why,
		      size_t whylen)
{
	const char *key;
	json_t *val;
	if (!json_is_object(obj)) {
		snprintf(why, whylen, "the body must be a JSON object");
		return TS_ERR_BAD_REQUEST;
	}
	json_object_foreach((json_t *)obj, key, val) {
		size_t i;
		for (i = 0; i < n && strcmp(fields[i].name, key) != 0; i++)
			;
		if (i == n) {
			char q[SRV_QUOTE_MAX];
			snprintf(why, whylen, "unknown field '%s'", srv_json_quote(key, q));
			return TS_ERR_BAD_REQUEST;
		}
	}
	for (size_t i = 0; i < n; i++) {
		const srv_field *f = &fields[i];
		json_t *v = json_object_get(obj, f->name);
		if (!v) {
			if (f->required) {
				snprintf(why, whylen, "missing field '%s'", f->name);
				return TS_ERR_BAD_REQUEST;
			}
			continue;
		}
		if (!json_type_ok(v, f->type)) {
			snprintf(why, whylen, "'%s' must be %s", f->name, type_names[f->type]);
			return TS_ERR_BAD_REQUEST;
		}
		double x;
		switch (f->type) {
		case F_INT:
			x = (double)json_integer_value(v);
			break;
		case F_NUM:
			x = json_number_value(v);
			break;
		case F_TEXT_NULL:
			if (json_is_null(v))
				continue;
			/* fall through */
		case F_STR:
		case F_TEXT:
			x = (double)json_string_length(v);
			if (strlen(json_string_value(v)) != json_string_length(v)) {
				snprintf(why, whylen, "'%s' must not contain NUL", f->name);
				return TS_ERR_BAD_REQUEST;
			}
			if (f->type != F_STR && !ts_utf8_printable(json_string_value(v))) {
				snprintf(why, whylen, "'%s' must not contain control characters", f->name);
				return TS_ERR_BAD_REQUEST;
			}
			break;
		case F_ARR:
			x = (double)json_array_size(v);
			break;
		default:
			continue;
		}
		if (!isfinite(x) || x < f->min || x > f->max) {
			if (f->type == F_STR || f->type == F_TEXT || f->type == F_TEXT_NULL || f->type == F_ARR)
				snprintf(why, whylen, "'%s' must have %.0f to %.0f %s", f->name, f->min,
					 f->max, f->type == F_ARR ? "elements" : "characters");
			else
				snprintf(why, whylen, "'%s' must be from %.15g to %.15g", f->name, f->min,
					 f->max);
			return TS_ERR_BAD_REQUEST;
		}
	}
	return TS_OK;
}

ts_err srv_json_parse_body(const char *buf, size_t len, json_t **out, char *why, size_t whylen)
{
	json_error_t err;
	json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &err);
	if (!j) {
		/* jansson's text quotes the input near the error: escape it like any echo. */
		char text[sizeof(err.text)];
		snprintf(why, whylen, "malformed JSON: %s (line %d, column %d)",
			 ts_escape_ctrl(err.text, text, sizeof(text)), err.line, err.column);
		return TS_ERR_BAD_REQUEST;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		snprintf(why, whylen, "the body must be a JSON object");
		return TS_ERR_BAD_REQUEST;
	}
	*out = j;
	return TS_OK;
}

int64_t srv_json_int(const json_t *obj, const char *name, int64_t def)
{
	json_t *v = json_object_get(obj, name);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : def;
}

ts_err srv_json_rates(const json_t *rates, char **out, char *why, size_t whylen)
{
	const char *key;
	json_t *val;
	*out = NULL;
	if (!rates)
		return TS_OK;
	if (!json_is_object(rates) || json_object_size(rates) > 32) {
		snprintf(why, whylen, "'rates' must be an object of at most 32 kernels");
		return TS_ERR_BAD_REQUEST;
	}
	json_object_foreach((json_t *)rates, key, val) {
		double v = json_is_number(val) ? json_number_value(val) : -1;
		char q[SRV_QUOTE_MAX];
		if (strlen(key) < 1 || strlen(key) > 64 || !ts_utf8_printable(key)) {
			snprintf(why, whylen, "rates['%s']: a kernel name has 1 to 64 bytes and no control "
				 "characters", srv_json_quote(key, q));
			return TS_ERR_BAD_REQUEST;
		}
		if (!(v > 0 && v <= 1e15)) {
			snprintf(why, whylen, "rates['%s'] must be a number of indices per second in (0, 1e15]",
				 srv_json_quote(key, q));
			return TS_ERR_BAD_REQUEST;
		}
	}
	*out = json_dumps(rates, JSON_COMPACT | JSON_SORT_KEYS);
	return *out ? TS_OK : TS_ERR_NOMEM;
}
