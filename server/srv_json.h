/* srv_json: declarative checks of request bodies. Pure: tests and fuzzers call it directly.
 *
 * A route lists its fields ({name, type, required, min, max}); one loop checks types, ranges,
 * required fields and refuses unknown ones, with a message naming the field. */
#ifndef SRV_JSON_H
#define SRV_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ts_err.h"

/* F_TEXT: a string without control characters (C0, DEL, C1), for names and other text that
 * reaches logs, pages and terminals; F_STR takes any string but NUL (passwords). */
enum srv_ftype { F_INT, F_NUM, F_STR, F_OBJ, F_ARR, F_BOOL, F_TEXT, F_OBJ_NULL /* an object or null */,
		 F_TEXT_NULL /* F_TEXT or null */ };

typedef struct srv_field {
	const char *name;
	enum srv_ftype type;
	int required;
	double min, max; /* F_INT, F_NUM: value range; F_STR, F_TEXT, F_ARR: length range */
} srv_field;

/* Checks obj against the fields; on error writes why and returns TS_ERR_BAD_REQUEST. A message
 * that quotes the request (an unknown field's name) quotes at most 64 bytes of it, cut on a
 * character boundary, with control characters escaped (ts_escape_ctrl): why is always valid
 * UTF-8 and printable. */
ts_err srv_json_check(const json_t *obj, const srv_field *fields, size_t n, char *why,
		      size_t whylen);

/* Quotes user input for a message: at most 64 bytes of s, escaped as ts_escape_ctrl does. */
#define SRV_QUOTE_MAX 65
const char *srv_json_quote(const char *s, char out[SRV_QUOTE_MAX]);

/* Parses a request body: must be one JSON object, no duplicate keys. */
ts_err srv_json_parse_body(const char *buf, size_t len, json_t **out, char *why, size_t whylen);

/* Checks a node's rates object ({"kernel": indices per second, ...}) and writes it as compact
 * JSON into *out (malloc'd; NULL when rates is NULL). */
ts_err srv_json_rates(const json_t *rates, char **out, char *why, size_t whylen);

/* The integer field, or def when absent (after srv_json_check). */
int64_t srv_json_int(const json_t *obj, const char *name, int64_t def);

#endif
