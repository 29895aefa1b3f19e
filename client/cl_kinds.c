/* cl_kinds: the server's kind descriptions, read for the command line. */
#include "cl_kinds.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ts_util.h"

/* Servers before /api/v1/kernels had these three kernels, with the checks the CLI made then. */
static const char legacy_json[] =
	"{\"kernels\":["
	"{\"name\":\"montecarlo_pi\",\"alias\":\"pi\",\"title\":\"Monte Carlo \\u03c0\","
	" \"params\":[{\"name\":\"samples\",\"type\":\"integer\",\"min\":1,\"max\":1000000000000000000,"
	"             \"required\":true,\"help\":\"samples to draw\"},"
	"            {\"name\":\"seed\",\"type\":\"integer\",\"min\":0,\"max\":9223372036854775807,"
	"             \"default\":0,\"help\":\"random seed\"}],"
	" \"example\":{\"samples\":1000000000,\"seed\":1}},"
	"{\"name\":\"prime_count\",\"alias\":\"primes\",\"title\":\"primes p with from <= p < to\","
	" \"params\":[{\"name\":\"from\",\"type\":\"integer\",\"min\":0,\"max\":9223372036854775807,"
	"             \"required\":true,\"help\":\"start of the range\"},"
	"            {\"name\":\"to\",\"type\":\"integer\",\"min\":1,\"max\":9223372036854775807,"
	"             \"required\":true,\"help\":\"end of the range (not included)\"}],"
	" \"example\":{\"from\":0,\"to\":10000000}},"
	"{\"name\":\"collatz\",\"alias\":\"collatz\","
	" \"title\":\"the longest Collatz total stopping time in [from, to)\","
	" \"params\":[{\"name\":\"from\",\"type\":\"integer\",\"min\":0,\"max\":9223372036854775807,"
	"             \"required\":true,\"help\":\"start of the range\"},"
	"            {\"name\":\"to\",\"type\":\"integer\",\"min\":1,\"max\":9223372036854775807,"
	"             \"required\":true,\"help\":\"end of the range (not included)\"}],"
	" \"example\":{\"from\":1,\"to\":10000000}}]}";

json_t *cl_kinds_legacy(void)
{
	return json_loads(legacy_json, 0, NULL);
}

static const char *kind_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

const json_t *cl_kinds_find(const json_t *kinds, const char *name)
{
	size_t i;
	const json_t *k;
	json_array_foreach(json_object_get(kinds, "kernels"), i, k) {
		const char *n = kind_str(k, "name"), *a = kind_str(k, "alias");
		if ((n && strcmp(n, name) == 0) || (a && strcmp(a, name) == 0))
			return k;
	}
	return NULL;
}

/* What a user types for kind k: its alias, else its name. */
static const char *kind_typed(const json_t *k)
{
	const char *a = kind_str(k, "alias");
	return a && *a ? a : kind_str(k, "name");
}

void cl_kinds_known(const json_t *kinds, char *out, size_t outlen)
{
	size_t i, used = 0;
	const json_t *k;
	out[0] = '\0';
	json_array_foreach(json_object_get(kinds, "kernels"), i, k) {
		const char *t = kind_typed(k);
		if (!t || used >= outlen)
			continue;
		used += (size_t)snprintf(out + used, outlen - used, "%s%s", used ? ", " : "", t);
	}
}

/* Whether option names param: the same, or with '-' where the name has '_'. */
static int option_is(const char *option, const char *param)
{
	for (; *option && *param; option++, param++)
		if (*option != *param && !(*option == '-' && *param == '_'))
			return 0;
	return !*option && !*param;
}

const json_t *cl_kinds_param(const json_t *kind, const char *option)
{
	size_t i;
	const json_t *p;
	json_array_foreach(json_object_get(kind, "params"), i, p) {
		const char *n = kind_str(p, "name");
		if (n && option_is(option, n))
			return p;
	}
	return NULL;
}

/* The option of a parameter name: "time_s" -> "time-s". */
static void option_of_name(const char *name, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s", name);
	for (char *c = out; *c; c++)
		if (*c == '_')
			*c = '-';
}

void cl_kinds_options(const json_t *kind, char *out, size_t outlen)
{
	size_t i, used = 0;
	const json_t *p;
	char opt[80];
	out[0] = '\0';
	json_array_foreach(json_object_get(kind, "params"), i, p) {
		if (!kind_str(p, "name") || used >= outlen)
			continue;
		option_of_name(kind_str(p, "name"), opt, sizeof(opt));
		used += (size_t)snprintf(out + used, outlen - used, "%s--%s", used ? ", " : "", opt);
	}
	if (!out[0])
		snprintf(out, outlen, "none");
}

/* A bound as people write it: exact integers below 10^7, else "1e18", "9.2e18". */
static void bound_text(const json_t *b, char *out, size_t outlen)
{
	if (json_is_integer(b) && llabs(json_integer_value(b)) < 10000000) {
		snprintf(out, outlen, "%" JSON_INTEGER_FORMAT, json_integer_value(b));
		return;
	}
	if (json_is_integer(b) && json_integer_value(b) == INT64_MAX) {
		snprintf(out, outlen, "2^63-1");
		return;
	}
	snprintf(out, outlen, "%.6g", json_number_value(b));
	char *e = strstr(out, "e+");
	if (e)
		memmove(e + 1, e + 2, strlen(e + 2) + 1);
}

/* Whether v lies inside the parameter's min and max (either may be absent). */
static int in_range(const json_t *param, long double v)
{
	const json_t *min = json_object_get(param, "min"), *max = json_object_get(param, "max");
	if (json_is_integer(min) && v < (long double)json_integer_value(min))
		return 0;
	if (json_is_real(min) && v < (long double)json_real_value(min))
		return 0;
	if (json_is_integer(max) && v > (long double)json_integer_value(max))
		return 0;
	if (json_is_real(max) && v > (long double)json_real_value(max))
		return 0;
	return 1;
}

/* " from 1 to 1e18", " from 0", " up to 64", or "". */
static void range_text(const json_t *param, char *out, size_t outlen)
{
	char lo[32], hi[32];
	const json_t *min = json_object_get(param, "min"), *max = json_object_get(param, "max");
	if (json_is_number(min))
		bound_text(min, lo, sizeof(lo));
	if (json_is_number(max))
		bound_text(max, hi, sizeof(hi));
	if (json_is_number(min) && json_is_number(max))
		snprintf(out, outlen, " from %s to %s", lo, hi);
	else if (json_is_number(min))
		snprintf(out, outlen, " of at least %s", lo);
	else if (json_is_number(max))
		snprintf(out, outlen, " of at most %s", hi);
	else
		out[0] = '\0';
}

static void choices_text(const json_t *param, char *out, size_t outlen)
{
	size_t i, used = 0;
	const json_t *c;
	out[0] = '\0';
	json_array_foreach(json_object_get(param, "choices"), i, c) {
		if (json_is_string(c) && used < outlen)
			used += (size_t)snprintf(out + used, outlen - used, "%s%s", used ? ", " : "",
						 json_string_value(c));
	}
}

static int parse_integer(const char *text, long double *v)
{
	uint64_t u;
	int neg = text[0] == '-';
	if (ts_parse_u64(text + neg, &u) != 0)
		return -1;
	*v = neg ? -(long double)u : (long double)u;
	return 0;
}

int cl_kinds_value(const json_t *param, const char *option, const char *text, json_t **out,
		   char *why, size_t whylen)
{
	const char *type = kind_str(param, "type");
	char range[80], choices[512];
	*out = NULL;
	if (!type)
		type = "string";
	range_text(param, range, sizeof(range));
	if (strcmp(type, "integer") == 0) {
		long double v;
		if (parse_integer(text, &v) != 0 || !in_range(param, v) || v > (long double)INT64_MAX ||
		    v < (long double)INT64_MIN) {
			snprintf(why, whylen, "%s must be an integer%s (2e10 works), not '%s'", option,
				 range, text);
			return -1;
		}
		*out = json_integer((json_int_t)v);
	} else if (strcmp(type, "number") == 0) {
		char *end;
		errno = 0;
		double v = strtod(text, &end);
		if (!*text || *end || errno || !isfinite(v) || !in_range(param, v)) {
			snprintf(why, whylen, "%s must be a number%s, not '%s'", option, range, text);
			return -1;
		}
		*out = json_real(v);
	} else if (strcmp(type, "choice") == 0) {
		size_t i;
		const json_t *c;
		json_array_foreach(json_object_get(param, "choices"), i, c) {
			if (json_is_string(c) && strcmp(json_string_value(c), text) == 0)
				*out = json_string(text);
		}
		if (!*out) {
			choices_text(param, choices, sizeof(choices));
			snprintf(why, whylen, "%s must be one of %s, not '%s'", option, choices, text);
			return -1;
		}
	} else if (strcmp(type, "string") == 0 || strcmp(type, "strings") == 0) {
		*out = json_string(text);
		if (!*out) {
			snprintf(why, whylen, "%s must be UTF-8 text", option);
			return -1;
		}
	} else {
		snprintf(why, whylen, "%s is a %s, which this command cannot send", option, type);
		return -1;
	}
	if (!*out) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	return 0;
}

int cl_kinds_set(const json_t *kind, json_t *params, const char *option, const char *text, char *why,
		 size_t whylen)
{
	char known[512];
	const json_t *p = cl_kinds_param(kind, option);
	json_t *v = NULL;
	if (!p) {
		cl_kinds_options(kind, known, sizeof(known));
		snprintf(why, whylen, "--%s does not apply to %s (its parameters: %s)", option,
			 kind_typed(kind), known);
		return -1;
	}
	const char *type = kind_str(p, "type"), *name = kind_str(p, "name");
	if (type && (strcmp(type, "file") == 0 || strcmp(type, "files") == 0)) {
		snprintf(why, whylen, "--%s is a file: programs are sent with tessera run or tessera "
				      "submit program",
			 option);
		return -1;
	}
	char shown[CL_KINDS_OPTION_MAX + 2];
	snprintf(shown, sizeof(shown), "--%s", option);
	if (cl_kinds_value(p, shown, text, &v, why, whylen) != 0)
		return -1;
	if (type && strcmp(type, "strings") == 0) {
		json_t *list = json_object_get(params, name);
		if (!json_is_array(list)) {
			list = json_array();
			json_object_set_new(params, name, list);
		}
		return json_array_append_new(list, v) == 0 ? 0 : -1;
	}
	return json_object_set_new(params, name, v) == 0 ? 0 : -1;
}

int cl_kinds_check_required(const json_t *kind, const json_t *params, char *why, size_t whylen)
{
	size_t i;
	const json_t *p;
	char opt[80];
	json_array_foreach(json_object_get(kind, "params"), i, p) {
		const char *n = kind_str(p, "name");
		if (!n || !json_is_true(json_object_get(p, "required")) || json_object_get(params, n))
			continue;
		option_of_name(n, opt, sizeof(opt));
		snprintf(why, whylen, "--%s is required for %s", opt, kind_typed(kind));
		return -1;
	}
	return 0;
}

void cl_kinds_describe(const json_t *param, char *out, size_t outlen)
{
	const char *type = kind_str(param, "type");
	char range[80], extra[600] = "", dflt[128] = "";
	const json_t *d = json_object_get(param, "default");
	range_text(param, range, sizeof(range));
	if (type && strcmp(type, "choice") == 0) {
		char choices[512];
		choices_text(param, choices, sizeof(choices));
		snprintf(extra, sizeof(extra), "one of %s", choices);
	} else if (type && (strcmp(type, "files") == 0 || strcmp(type, "strings") == 0) &&
		   json_is_number(json_object_get(param, "max"))) {
		/* The bounds of a list are its length. */
		char hi[32];
		bound_text(json_object_get(param, "max"), hi, sizeof(hi));
		snprintf(extra, sizeof(extra), "%s, up to %s", strcmp(type, "files") == 0 ? "files" : "strings", hi);
	} else {
		snprintf(extra, sizeof(extra), "%s%s", type ? type : "value", range);
	}
	if (d && !json_is_null(d)) {
		char *t = json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY);
		snprintf(dflt, sizeof(dflt), ", default %s", t ? t : "?");
		free(t);
	}
	snprintf(out, outlen, "%s%s%s", extra, json_is_true(json_object_get(param, "required")) ? ", required" : "",
		 dflt);
}

void cl_kinds_print(FILE *f, const json_t *kinds,
		    const char *(*option_of)(const char *kind, const char *param))
{
	size_t i, j;
	const json_t *k, *p;
	char shown[1024], shown2[3200], desc[800], opt[96];
	if (json_array_size(json_object_get(kinds, "kernels")) == 0) {
		fprintf(f, "the server describes no kernels\n");
		return;
	}
	json_array_foreach(json_object_get(kinds, "kernels"), i, k) {
		const char *name = kind_str(k, "name"), *alias = kind_str(k, "alias");
		const char *title = kind_str(k, "title"), *result = kind_str(k, "result");
		if (!name)
			continue;
		/* Descriptions are the server's text: shown, never acted on by the terminal. */
		fprintf(f, "%s%s", i ? "\n" : "", ts_escape_ctrl(kind_typed(k), shown, sizeof(shown)));
		if (alias && strcmp(alias, name) != 0)
			fprintf(f, " (%s)", ts_escape_ctrl(name, shown, sizeof(shown)));
		fprintf(f, "%s%s\n", title ? ": " : "", title ? ts_escape_ctrl(title, shown, sizeof(shown)) : "");
		json_array_foreach(json_object_get(k, "params"), j, p) {
			const char *pn = kind_str(p, "name"), *help = kind_str(p, "help");
			const char *renamed = option_of && pn ? option_of(name, pn) : NULL;
			if (!pn)
				continue;
			char plain[80];
			option_of_name(pn, plain, sizeof(plain));
			if (renamed)
				snprintf(opt, sizeof(opt), "%s", renamed);
			else
				snprintf(opt, sizeof(opt), "--%s", plain);
			cl_kinds_describe(p, desc, sizeof(desc));
			fprintf(f, "  %-16s %s", ts_escape_ctrl(opt, shown, sizeof(shown)),
				ts_escape_ctrl(desc, shown2, sizeof(shown2)));
			if (help)
				fprintf(f, ": %s", ts_escape_ctrl(help, shown, sizeof(shown)));
			fputc('\n', f);
		}
		/* An example of scalars reads as a command line (a program's names files by hash). */
		const json_t *ex = json_object_get(k, "example"), *v;
		const char *key;
		int scalar = json_is_object(ex) && json_object_size(ex) > 0;
		json_object_foreach((json_t *)ex, key, v)
			scalar &= json_is_number(v) || json_is_string(v);
		if (scalar) {
			fprintf(f, "  example: tessera submit %s", ts_escape_ctrl(kind_typed(k), shown, sizeof(shown)));
			json_object_foreach((json_t *)ex, key, v) {
				char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
				option_of_name(key, opt, sizeof(opt));
				fprintf(f, " --%s %s", ts_escape_ctrl(opt, shown, sizeof(shown)),
					t ? ts_escape_ctrl(t, shown2, sizeof(shown2)) : "?");
				free(t);
			}
			fputc('\n', f);
		}
		if (result)
			fprintf(f, "  result: %s\n", ts_escape_ctrl(result, shown, sizeof(shown)));
	}
}
