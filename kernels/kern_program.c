/* kern_program: the program kind's params, outcome wire form and digest (kern_program.h). */
#include "kern_program.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_util.h"

#define PROG_ARGS_MAX 64
#define PROG_ARGS_BYTES 4096

static const kern_param prog_params[] = {
	{"main", "file", 1, 0, 0, NULL, NULL, "the program: NAME.py (python3, mpi4py), NAME.c (built with mpicc) or NAME.sh"},
	{"files", "files", 0, 0, KERN_PROG_FILES_MAX - 1, NULL, NULL, "extra input files, in the program's directory"},
	{"args", "strings", 0, 0, PROG_ARGS_MAX, NULL, NULL, "arguments to the program"},
	{"np", "integer", 0, 1, KERN_PROG_NP_MAX, "1", NULL, "MPI processes on one node"},
	{"time_s", "integer", 0, 1, 86400, "600", NULL, "wall-time limit per unit, in seconds"},
	{"memory_mb", "integer", 0, 16, 65536, "1024", NULL, "memory limit per process, in MiB"},
	{"space", "integer", 0, 1, 1e15, "1", NULL, "index space of a split program (TESSERA_SPACE)"},
	{"combine", "choice", 0, 0, 0, "\"concat\"", "concat|sum|min|max", "how the units' outputs combine"},
	{NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

/* Indexed by enum kern_combine. */
static const char *const combine_names[] = {"concat", "sum", "min", "max"};

/* Languages by the main file's extension. */
static const struct {
	const char *ext, *lang;
} prog_langs[] = {{".py", "py"}, {".c", "c"}, {".sh", "sh"}};

const char *kern_combine_name(enum kern_combine c)
{
	return combine_names[c];
}

/* Names a program sees in its directory: plain, no path, no dot file. */
static int prog_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > KERN_PROG_NAME_MAX || s[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return 0;
	return 1;
}

static ts_err prog_file(const json_t *f, const char *what, kern_prog *out, char *why, size_t whylen)
{
	const char *name = json_string_value(json_object_get(f, "name"));
	const char *hash = json_string_value(json_object_get(f, "sha256"));
	if (!json_is_object(f) || json_object_size(f) != 2 || !name || !hash) {
		snprintf(why, whylen, "%s must be {\"name\": NAME, \"sha256\": HASH}", what);
		return TS_ERR_BAD_REQUEST;
	}
	if (!prog_name_ok(name)) {
		snprintf(why, whylen, "%s: a file name is 1 to %d of A-Z a-z 0-9 . _ - and does not start with '.'",
			 what, KERN_PROG_NAME_MAX);
		return TS_ERR_BAD_REQUEST;
	}
	if (!ts_is_sha256_hex(hash)) {
		snprintf(why, whylen, "%s: sha256 must be 64 lowercase hex digits", what);
		return TS_ERR_BAD_REQUEST;
	}
	for (size_t i = 0; i < out->n_files; i++)
		if (strcmp(out->names[i], name) == 0) {
			snprintf(why, whylen, "two files are named '%s'", name);
			return TS_ERR_BAD_REQUEST;
		}
	out->names[out->n_files] = name;
	out->hashes[out->n_files++] = hash;
	return TS_OK;
}

ts_err kern_prog_parse(const json_t *params, kern_prog *out, char *why, size_t whylen)
{
	ts_err result = kern_params_check(&kern_program, params, why, whylen);
	if (result)
		return result;
	*out = (kern_prog){.np = (int)kern_param_u64(params, "np", 1),
			   .time_s = (int64_t)kern_param_u64(params, "time_s", 600),
			   .memory_mb = (int64_t)kern_param_u64(params, "memory_mb", 1024),
			   .space = kern_param_u64(params, "space", 1)};
	if (out->np > 1 && out->memory_mb < 128) {
		snprintf(why, whylen, "memory_mb must be at least 128 with np > 1 (mpirun needs it per process)");
		return TS_ERR_BAD_REQUEST;
	}
	result = prog_file(json_object_get(params, "main"), "main", out, why, whylen);
	if (result)
		return result;
	for (size_t i = 0; i < TS_ARRAY_LEN(prog_langs) && !out->lang; i++) {
		size_t n = strlen(out->names[0]), e = strlen(prog_langs[i].ext);
		if (n > e && strcmp(out->names[0] + n - e, prog_langs[i].ext) == 0)
			out->lang = prog_langs[i].lang;
	}
	if (!out->lang) {
		snprintf(why, whylen, "main must end in .py, .c or .sh (it says which language it is)");
		return TS_ERR_BAD_REQUEST;
	}
	json_t *files = json_object_get(params, "files"), *f;
	size_t i;
	if (files && (!json_is_array(files) || json_array_size(files) > KERN_PROG_FILES_MAX - 1)) {
		snprintf(why, whylen, "files must be an array of at most %d files", KERN_PROG_FILES_MAX - 1);
		return TS_ERR_BAD_REQUEST;
	}
	json_array_foreach(files, i, f) {
		char what[32];
		snprintf(what, sizeof(what), "files[%zu]", i);
		result = prog_file(f, what, out, why, whylen);
		if (result)
			return result;
	}
	json_t *args = json_object_get(params, "args"), *a;
	size_t bytes = 0;
	if (args && (!json_is_array(args) || json_array_size(args) > PROG_ARGS_MAX)) {
		snprintf(why, whylen, "args must be an array of at most %d strings", PROG_ARGS_MAX);
		return TS_ERR_BAD_REQUEST;
	}
	json_array_foreach(args, i, a) {
		if (!json_is_string(a) || memchr(json_string_value(a), '\0', json_string_length(a))) {
			snprintf(why, whylen, "args[%zu] must be a string (without NUL)", i);
			return TS_ERR_BAD_REQUEST;
		}
		bytes += json_string_length(a) + 1;
	}
	if (bytes > PROG_ARGS_BYTES) {
		snprintf(why, whylen, "args are %zu bytes together; at most %d", bytes, PROG_ARGS_BYTES);
		return TS_ERR_BAD_REQUEST;
	}
	json_t *combine = json_object_get(params, "combine");
	out->combine = KERN_CONCAT;
	if (combine) {
		const char *c = json_string_value(combine);
		size_t k = 0;
		while (c && k < TS_ARRAY_LEN(combine_names) && strcmp(c, combine_names[k]) != 0)
			k++;
		if (!c || k == TS_ARRAY_LEN(combine_names)) {
			snprintf(why, whylen, "combine must be one of concat, sum, min, max");
			return TS_ERR_BAD_REQUEST;
		}
		out->combine = (enum kern_combine)k;
	}
	return TS_OK;
}

static ts_err prog_parse(const json_t *params, kern_args *args, char *why, size_t whylen)
{
	kern_prog p;
	ts_err result = kern_prog_parse(params, &p, why, whylen);
	if (!result)
		*args = (kern_args){.space = p.space};
	return result;
}

/* "PREFIX N" with N in [lo, hi], nothing else. */
static int status_number(const char *s, const char *prefix, int lo, int hi)
{
	size_t n = strlen(prefix);
	if (strncmp(s, prefix, n) != 0)
		return 0;
	s += n;
	int v = 0, digits = 0;
	while (*s >= '0' && *s <= '9' && digits < 4)
		v = v * 10 + (*s++ - '0'), digits++;
	return digits && *s == '\0' && (digits == 1 || s[-digits] != '0') && v >= lo && v <= hi;
}

int kern_prog_status_valid(const char *s)
{
	static const char *const fixed[] = {"ok", "killed: time limit", "killed: cpu limit", "killed: memory",
					    "compile error"};
	for (size_t i = 0; i < TS_ARRAY_LEN(fixed); i++)
		if (strcmp(s, fixed[i]) == 0)
			return 1;
	return status_number(s, "exit status ", 1, 255) || status_number(s, "killed: signal ", 1, 64);
}

void kern_prog_outcome_free(kern_prog_outcome *o)
{
	free(o->out);
	free(o->err);
	o->out = o->err = NULL;
}

ts_err kern_prog_outcome_from_json(const json_t *j, kern_prog_outcome *o)
{
	static const char *const keys[] = {"status", "stdout", "stderr", "stdout_truncated", "stderr_truncated", NULL};
	char why[64];
	*o = (kern_prog_outcome){.out = NULL};
	const char *status = json_string_value(json_object_get(j, "status"));
	json_t *out = json_object_get(j, "stdout"), *err = json_object_get(j, "stderr");
	json_t *out_t = json_object_get(j, "stdout_truncated"), *err_t = json_object_get(j, "stderr_truncated");
	if (kern_params_only(j, "a program result", keys, why, sizeof(why)) || !status ||
	    strlen(status) >= sizeof(o->status) || !kern_prog_status_valid(status) || !json_is_string(out) ||
	    !json_is_string(err) || (out_t && !json_is_boolean(out_t)) || (err_t && !json_is_boolean(err_t)))
		return TS_ERR_BAD_REQUEST;
	snprintf(o->status, sizeof(o->status), "%s", status);
	ts_err result = ts_b64_decode(json_string_value(out), json_string_length(out), KERN_PROG_STDOUT_MAX,
				      &o->out, &o->out_len);
	if (!result)
		result = ts_b64_decode(json_string_value(err), json_string_length(err), KERN_PROG_STDERR_MAX,
				       &o->err, &o->err_len);
	if (result) {
		kern_prog_outcome_free(o);
		return result == TS_ERR_NOMEM ? result : TS_ERR_BAD_REQUEST;
	}
	o->out_truncated = json_is_true(out_t);
	o->err_truncated = json_is_true(err_t);
	return TS_OK;
}

json_t *kern_prog_outcome_to_json(const kern_prog_outcome *o)
{
	char *out = ts_b64_encode(o->out, o->out_len), *err = ts_b64_encode(o->err, o->err_len);
	json_t *j = out && err ? json_pack("{s:s,s:s,s:s,s:b,s:b}", "status", o->status, "stdout", out,
					  "stderr", err, "stdout_truncated", o->out_truncated,
					  "stderr_truncated", o->err_truncated)
			       : NULL;
	free(out);
	free(err);
	return j;
}

kern_partial kern_prog_digest(const kern_prog_outcome *o)
{
	int ok = strcmp(o->status, "ok") == 0;
	size_t sn = strlen(o->status) + 1, n = sn + (ok ? o->out_len : 0);
	unsigned char *buf = malloc(n ? n : 1), d[32];
	kern_partial p = {{0, 0}};
	if (!buf)
		return p; /* out of memory: a digest nobody else has, so it can only fail a quorum */
	memcpy(buf, o->status, sn);
	if (ok && o->out_len)
		memcpy(buf + sn, o->out, o->out_len);
	ts_sha256(buf, n, d);
	free(buf);
	for (int i = 0; i < 8; i++) {
		p.v[0] = p.v[0] << 8 | d[i];
		p.v[1] = p.v[1] << 8 | d[8 + i];
	}
	return p;
}

static kern_partial prog_zero(void)
{
	return (kern_partial){{0, 0}};
}

/* Outcomes are combined by the server from the stored outputs (srv_prog.c), not as partials. */
static void prog_combine(kern_partial *acc, const kern_partial *p)
{
	(void)acc;
	(void)p;
}

static json_t *prog_partial_to_json(const kern_partial *p)
{
	char hex[33];
	unsigned char b[16];
	for (int i = 0; i < 8; i++) {
		b[i] = (unsigned char)(p->v[0] >> (56 - 8 * i));
		b[8 + i] = (unsigned char)(p->v[1] >> (56 - 8 * i));
	}
	ts_hex(b, sizeof(b), hex);
	return json_pack("{s:s}", "digest", hex);
}

static ts_err prog_partial_from_json(const json_t *j, kern_partial *p)
{
	kern_prog_outcome o;
	ts_err result = kern_prog_outcome_from_json(j, &o);
	if (result)
		return result;
	*p = kern_prog_digest(&o);
	kern_prog_outcome_free(&o);
	return TS_OK;
}

static int prog_plausible(const kern_args *args, uint64_t start, uint64_t count, const kern_partial *p)
{
	(void)args, (void)start, (void)count, (void)p;
	return 1; /* any outcome can happen; its form was checked when it was decoded */
}

/* The server makes a program job's result from its outputs (srv_prog.c); this is never the one
 * shown. */
static json_t *prog_finalize(const kern_args *args, const kern_partial *total)
{
	(void)total;
	return json_pack("{s:I}", "units_space", (json_int_t)args->space);
}

const kern kern_program = {
	.name = "program",
	.alias = "program",
	.title = "Your own program",
	.params = prog_params,
	.example = "{\"main\": {\"name\": \"hello.py\", \"sha256\": "
		   "\"0000000000000000000000000000000000000000000000000000000000000000\"}, \"np\": 2}",
	.result_help = "the program's stdout (combined over units for a split program), stderr and exit status",
	.parse = prog_parse,
	.zero = prog_zero,
	.compute = NULL,
	.combine = prog_combine,
	.partial_to_json = prog_partial_to_json,
	.partial_from_json = prog_partial_from_json,
	.partial_plausible = prog_plausible,
	.finalize = prog_finalize,
	.default_unit = 1,
	.ns_per_index = 1e9,
};
