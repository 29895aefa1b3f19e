/* srv_prog: users' programs on the server (srv_prog.h). */
#include "srv_prog.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "srv_json.h"
#include "ts_util.h"

#define OUTPUTS_PAGE 100
#define OUTPUT_TEXT_MAX (64 * 1024) /* bytes of a stream shown as text in /outputs */
#define COMBINE_KEYS_MAX 1000       /* keys of a flat object of numbers */
#define ERROR_TAIL 200              /* bytes of stderr in a failed job's error */

/* Languages and their bits in jobs.lang and nodes.langs; indexed like kern_program's. */
static const struct {
	const char *lang;
	int64_t bit;
} prog_lang_bits[] = {{"py", 1}, {"c", 2}, {"sh", 4}};

static int64_t lang_bit(const char *lang)
{
	for (size_t i = 0; i < TS_ARRAY_LEN(prog_lang_bits); i++)
		if (strcmp(prog_lang_bits[i].lang, lang) == 0)
			return prog_lang_bits[i].bit;
	return 0;
}

/* Admins always may; users only with the grant. */
static ts_err may_run_programs(srv_ctx *ctx, srv_req *r)
{
	int64_t may = 0;
	if (r->who.role == ROLE_ADMIN)
		return TS_OK;
	ts_err result = SRV_QUERY_INT(ctx->db, Q_USER_MAY_PROGRAMS, 0, &may, r->who.user_id);
	if (result || may)
		return result;
	char who[SRV_QUOTE_MAX];
	srv_json_quote(r->who.name, who);
	snprintf(r->why, sizeof(r->why), "user '%.64s' may not run programs; an admin can allow it with: "
		 "tessera users grant %.64s programs", who, who);
	return TS_ERR_FORBIDDEN;
}

/* The size of a file the user uploaded, or TS_ERR_NOT_FOUND. */
static ts_err owned_size(srv_db *db, int64_t user, const char *hash, int64_t *size)
{
	sqlite3_stmt *st = srv_db_stmt(db, Q_FILE_OWNED_SIZE);
	sqlite3_bind_int64(st, 1, user);
	sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
	int row;
	ts_err result = srv_db_step(db, st, &row);
	if (!result && !row)
		result = TS_ERR_NOT_FOUND;
	if (!result)
		*size = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return result;
}

ts_err srv_prog_submit_check(srv_ctx *ctx, srv_req *r, const kern_prog *p, uint64_t n_units)
{
	ts_err result = may_run_programs(ctx, r);
	if (result)
		return result;
	if (n_units > SRV_PROG_MAX_UNITS) {
		snprintf(r->why, sizeof(r->why), "a program job has at most %d units, not %llu", SRV_PROG_MAX_UNITS,
			 (unsigned long long)n_units);
		return TS_ERR_BAD_REQUEST;
	}
	int64_t total = 0;
	for (size_t i = 0; i < p->n_files; i++) {
		int64_t size = 0;
		result = owned_size(ctx->db, r->who.user_id, p->hashes[i], &size);
		if (result == TS_ERR_NOT_FOUND)
			snprintf(r->why, sizeof(r->why), "%s (%.12s...) is not a file you uploaded: "
				 "PUT /api/v1/files first", p->names[i], p->hashes[i]);
		if (result)
			return result == TS_ERR_NOT_FOUND ? TS_ERR_BAD_REQUEST : result;
		total += size;
	}
	if (total > SRV_PROG_JOB_FILES) {
		snprintf(r->why, sizeof(r->why), "the job's files are %lld bytes together; at most %d MiB",
			 (long long)total, SRV_PROG_JOB_FILES >> 20);
		return TS_ERR_TOO_LARGE;
	}
	return TS_OK;
}

ts_err srv_prog_submitted(srv_db *db, int64_t job, const kern_prog *p)
{
	ts_err result = SRV_EXEC(db, Q_JOB_SET_NEEDS, job, p->np, lang_bit(p->lang));
	for (size_t i = 0; i < p->n_files && !result; i++) {
		sqlite3_stmt *st = srv_db_stmt(db, Q_JOB_FILE_INSERT);
		sqlite3_bind_text(st, 1, p->hashes[i], -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, job);
		result = srv_db_exec(db, st);
	}
	return result;
}

ts_err srv_prog_node_caps(srv_db *db, int64_t node, const json_t *programs, char *why, size_t whylen)
{
	static const srv_field fields[] = {
		{"sandbox", F_TEXT, 1, 1, 64},
		{"python3", F_TEXT, 0, 0, 64},
		{"mpi4py", F_TEXT, 0, 0, 64},
		{"mpicc", F_TEXT, 0, 0, 64},
		{"langs", F_ARR, 1, 1, 8},
		{"slots", F_INT, 1, 1, 4096},
	};
	int64_t bits = 0, slots = 0;
	char *text = NULL;
	if (json_is_object(programs)) {
		char inner[200];
		if (srv_json_check(programs, fields, TS_ARRAY_LEN(fields), inner, sizeof(inner))) {
			snprintf(why, whylen, "programs: %s", inner);
			return TS_ERR_BAD_REQUEST;
		}
		size_t i;
		json_t *l;
		json_array_foreach(json_object_get(programs, "langs"), i, l) {
			int64_t bit = json_is_string(l) ? lang_bit(json_string_value(l)) : 0;
			if (!bit) {
				snprintf(why, whylen, "programs: langs[%zu] must be one of py, c, sh", i);
				return TS_ERR_BAD_REQUEST;
			}
			bits |= bit;
		}
		slots = srv_json_int(programs, "slots", 1);
		text = json_dumps(programs, JSON_COMPACT | JSON_SORT_KEYS);
		if (!text)
			return TS_ERR_NOMEM;
	}
	sqlite3_stmt *st = srv_db_stmt(db, Q_NODE_SET_PROGRAMS);
	sqlite3_bind_int64(st, 1, node);
	srv_db_bind_text(st, 2, text);
	sqlite3_bind_int64(st, 3, slots);
	sqlite3_bind_int64(st, 4, bits);
	free(text);
	return srv_db_exec(db, st);
}

ts_err srv_prog_output_put(srv_db *db, int64_t replica, const json_t *result)
{
	kern_prog_outcome o;
	ts_err e = kern_prog_outcome_from_json(result, &o);
	if (e)
		return e;
	sqlite3_stmt *st = srv_db_stmt(db, Q_OUTPUT_INSERT);
	sqlite3_bind_int64(st, 1, replica);
	sqlite3_bind_text(st, 2, o.status, -1, SQLITE_TRANSIENT);
	sqlite3_bind_blob(st, 3, o.out ? (const void *)o.out : "", (int)o.out_len, SQLITE_TRANSIENT);
	sqlite3_bind_blob(st, 4, o.err ? (const void *)o.err : "", (int)o.err_len, SQLITE_TRANSIENT);
	sqlite3_bind_int(st, 5, o.out_truncated);
	sqlite3_bind_int(st, 6, o.err_truncated);
	kern_prog_outcome_free(&o);
	return srv_db_exec(db, st);
}

/* "unit 3: exit status 2: Traceback ... ZeroDivisionError" with the end of stderr, printable. */
static void failure_words(uint64_t seq, const char *status, const unsigned char *err, size_t n, char *out,
			  size_t outlen)
{
	char tail[ERROR_TAIL + 1], shown[4 * ERROR_TAIL + 1];
	size_t from = n > ERROR_TAIL ? n - ERROR_TAIL : 0;
	while (from < n && from > 0 && (err[from] & 0xc0) == 0x80)
		from++; /* start on a character */
	while (n > from && (err[n - 1] == '\n' || err[n - 1] == ' '))
		n--;
	size_t k = 0;
	for (size_t i = from; i < n; i++)
		tail[k++] = err[i] == '\n' || err[i] == '\0' ? ' ' : (char)err[i];
	tail[k] = '\0';
	ts_escape_ctrl(tail, shown, sizeof(shown));
	snprintf(out, outlen, "unit %llu: %s%s%s", (unsigned long long)seq, status, k ? ": " : "", shown);
}

ts_err srv_prog_unit_settled(srv_db *db, srv_work_job *j, const wu_unit *u, int64_t now, int *failed)
{
	sqlite3_stmt *st = srv_db_stmt(db, Q_OUTPUT_OF_UNIT);
	sqlite3_bind_int64(st, 1, u->id);
	sqlite3_bind_int64(st, 2, (int64_t)u->canon[0]);
	sqlite3_bind_int64(st, 3, (int64_t)u->canon[1]);
	int row;
	*failed = 0;
	ts_err result = srv_db_step(db, st, &row);
	if (result || !row) {
		sqlite3_reset(st);
		return result ? result : TS_ERR_DB; /* every accepted program result has its output */
	}
	const char *status = (const char *)sqlite3_column_text(st, 0);
	char why[sizeof(((srv_job *)0)->state) + 1024];
	if (status && strcmp(status, "ok") != 0) {
		*failed = 1;
		failure_words(u->seq, status, sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1), why,
			      sizeof(why));
	}
	sqlite3_reset(st);
	return *failed ? srv_store_job_finish(db, j, why, now) : TS_OK;
}

/* One canonical outcome of Q_OUTPUT_CANON's current row. */
typedef struct prog_row {
	uint64_t seq;
	const char *status;
	const unsigned char *out, *err;
	size_t out_len, err_len;
	int out_truncated, err_truncated;
	int64_t node;
} prog_row;

static prog_row row_read(sqlite3_stmt *st)
{
	return (prog_row){
		.seq = (uint64_t)sqlite3_column_int64(st, 0),
		.status = (const char *)sqlite3_column_text(st, 1),
		.out = sqlite3_column_blob(st, 2),
		.out_len = (size_t)sqlite3_column_bytes(st, 2),
		.err = sqlite3_column_blob(st, 3),
		.err_len = (size_t)sqlite3_column_bytes(st, 3),
		.out_truncated = sqlite3_column_int(st, 4),
		.err_truncated = sqlite3_column_int(st, 5),
		.node = sqlite3_column_int64(st, 6),
	};
}

/* Walks the job's canonical outcomes in unit order from seq `from`, at most max (0: all), calling
 * fn for each until it returns an error. */
typedef ts_err (*row_fn)(void *arg, const prog_row *row, char *why, size_t whylen);
static ts_err rows_each(srv_db *db, int64_t job, uint64_t from, int max, row_fn fn, void *arg, char *why,
			size_t whylen)
{
	ts_err result = TS_OK;
	int seen = 0, page = max > 0 && max < OUTPUTS_PAGE ? max : OUTPUTS_PAGE, got = page;
	while (!result && got == page && (max == 0 || seen < max)) {
		sqlite3_stmt *st = srv_db_stmt(db, Q_OUTPUT_CANON);
		sqlite3_bind_int64(st, 1, job);
		sqlite3_bind_int64(st, 2, (int64_t)from);
		sqlite3_bind_int(st, 3, page);
		int row;
		got = 0;
		while (!result && !(result = srv_db_step(db, st, &row)) && row) {
			prog_row pr = row_read(st);
			got++;
			seen++;
			from = pr.seq + 1;
			result = fn(arg, &pr, why, whylen);
		}
		sqlite3_reset(st);
	}
	return result;
}

/* sum, min and max over JSON numbers, or flat objects of numbers, key by key. Integers stay
 * exact (an overflow is an error); a float anywhere makes that value a float. */
static ts_err combine_number(enum kern_combine how, json_t **acc, json_t *v, const char *key, uint64_t seq,
			     char *why, size_t whylen)
{
	const char *name = key ? key : "the output";
	if (!json_is_number(v)) {
		snprintf(why, whylen, "unit %llu: %.64s%s is not a JSON number", (unsigned long long)seq, key ? "key " : "",
			 name);
		return TS_ERR_BAD_REQUEST;
	}
	if (!*acc) {
		*acc = json_incref(v);
		return TS_OK;
	}
	json_t *a = *acc, *out = NULL;
	if (json_is_integer(a) && json_is_integer(v)) {
		json_int_t x = json_integer_value(a), y = json_integer_value(v), z;
		if (how == KERN_SUM && __builtin_add_overflow(x, y, &z)) {
			snprintf(why, whylen, "unit %llu: the sum of %.64s overflows 64-bit integers", (unsigned long long)seq,
				 name);
			return TS_ERR_BAD_REQUEST;
		}
		out = json_integer(how == KERN_SUM ? z : how == KERN_MIN ? (x < y ? x : y) : (x > y ? x : y));
	} else {
		double x = json_number_value(a), y = json_number_value(v);
		out = json_real(how == KERN_SUM ? x + y : how == KERN_MIN ? (x < y ? x : y) : (x > y ? x : y));
	}
	if (!out)
		return TS_ERR_NOMEM;
	json_decref(*acc);
	*acc = out;
	return TS_OK;
}

struct combine {
	enum kern_combine how;
	json_t *acc;      /* a number or an object of numbers */
	uint64_t bytes;   /* concat */
	uint64_t units;
};

static ts_err combine_row(void *arg, const prog_row *row, char *why, size_t whylen)
{
	struct combine *c = arg;
	c->units++;
	if (c->how == KERN_CONCAT) {
		c->bytes += row->out_len;
		if (c->bytes > SRV_PROG_CONCAT_MAX) {
			snprintf(why, whylen, "the combined output is over %d MiB", SRV_PROG_CONCAT_MAX >> 20);
			return TS_ERR_BAD_REQUEST;
		}
		return TS_OK;
	}
	json_error_t err;
	json_t *v = json_loadb((const char *)row->out, row->out_len, JSON_DECODE_ANY, &err);
	ts_err result = TS_OK;
	if (!v) {
		snprintf(why, whylen, "unit %llu: the output is not a JSON number or object (%.80s)",
			 (unsigned long long)row->seq, err.text);
		return TS_ERR_BAD_REQUEST;
	}
	if (json_is_object(v)) {
		if (c->acc && !json_is_object(c->acc)) {
			snprintf(why, whylen, "unit %llu: an object where earlier units gave a number", (unsigned long long)row->seq);
			result = TS_ERR_BAD_REQUEST;
		}
		if (!result && !c->acc && !(c->acc = json_object()))
			result = TS_ERR_NOMEM;
		const char *key;
		json_t *x;
		json_object_foreach(v, key, x) {
			if (result)
				break;
			json_t *slot = json_incref(json_object_get(c->acc, key));
			if (!slot && json_object_size(c->acc) >= COMBINE_KEYS_MAX) {
				snprintf(why, whylen, "unit %llu: more than %d keys", (unsigned long long)row->seq, COMBINE_KEYS_MAX);
				result = TS_ERR_BAD_REQUEST;
				break;
			}
			result = combine_number(c->how, &slot, x, key, row->seq, why, whylen);
			if (!result)
				json_object_set(c->acc, key, slot);
			json_decref(slot);
		}
	} else if (c->acc && json_is_object(c->acc)) {
		snprintf(why, whylen, "unit %llu: a number where earlier units gave an object", (unsigned long long)row->seq);
		result = TS_ERR_BAD_REQUEST;
	} else {
		result = combine_number(c->how, &c->acc, v, NULL, row->seq, why, whylen);
	}
	json_decref(v);
	return result;
}

struct single {
	json_t *result;
};

static ts_err single_row(void *arg, const prog_row *row, char *why, size_t whylen)
{
	struct single *s = arg;
	s->result = json_pack("{s:s,s:I,s:I,s:b,s:b}", "status", row->status, "stdout_bytes", (json_int_t)row->out_len,
			      "stderr_bytes", (json_int_t)row->err_len, "stdout_truncated", row->out_truncated,
			      "stderr_truncated", row->err_truncated);
	return s->result ? TS_OK : TS_ERR_NOMEM;
}

ts_err srv_prog_finalize(srv_db *db, const srv_work_job *j, char **text, char *error, size_t errlen)
{
	kern_prog p;
	json_t *res = NULL;
	*text = NULL;
	error[0] = '\0';
	ts_err result = kern_prog_parse(j->params, &p, error, errlen);
	if (result)
		return TS_OK; /* error says why: the job fails */
	if (j->row.split.n_units == 1 && p.combine == KERN_CONCAT) {
		struct single s = {NULL};
		result = rows_each(db, j->row.id, 0, 1, single_row, &s, error, errlen);
		res = s.result;
	} else {
		struct combine c = {.how = p.combine};
		result = rows_each(db, j->row.id, 0, 0, combine_row, &c, error, errlen);
		if (result == TS_ERR_BAD_REQUEST) {
			json_decref(c.acc);
			return TS_OK; /* error says why */
		}
		if (!result)
			res = p.combine == KERN_CONCAT
				      ? json_pack("{s:s,s:I,s:I}", "combine", "concat", "bytes", (json_int_t)c.bytes,
						  "units", (json_int_t)c.units)
				      : json_pack("{s:s,s:o,s:I}", "combine", kern_combine_name(p.combine), "value",
						  c.acc ? c.acc : json_null(), "units", (json_int_t)c.units);
		else
			json_decref(c.acc);
	}
	if (result)
		return result;
	*text = res ? json_dumps(res, JSON_COMPACT) : NULL;
	json_decref(res);
	return *text ? TS_OK : TS_ERR_NOMEM;
}

/* ---- routes ---- */

ts_err api_kernels(srv_ctx *ctx, srv_req *r)
{
	json_t *kinds = json_array();
	for (const kern *const *k = kern_table(); kinds && *k; k++)
		json_array_append_new(kinds, kern_describe(*k));
	r->reply = json_pack("{s:o}", "kernels", kinds);
	return r->reply ? TS_OK : TS_ERR_NOMEM;
}

ts_err api_file_put(srv_ctx *ctx, srv_req *r)
{
	ts_err result = may_run_programs(ctx, r);
	if (result)
		return result;
	if (r->in_len > SRV_PROG_FILE_MAX) {
		snprintf(r->why, sizeof(r->why), "the file is %zu bytes; at most %d MiB", r->in_len, SRV_PROG_FILE_MAX >> 20);
		return TS_ERR_TOO_LARGE;
	}
	unsigned char d[32];
	char hash[65];
	ts_sha256(r->in ? (const void *)r->in : "", r->in_len, d);
	ts_hex(d, sizeof(d), hash);
	int64_t have = 0, used = 0;
	result = owned_size(ctx->db, r->who.user_id, hash, &have);
	if (result == TS_ERR_NOT_FOUND) {
		result = SRV_QUERY_INT(ctx->db, Q_FILE_USER_BYTES, 0, &used, r->who.user_id);
		if (!result && used + (int64_t)r->in_len > SRV_PROG_USER_FILES) {
			snprintf(r->why, sizeof(r->why), "you keep %lld bytes of files; this one would pass your %d MiB",
				 (long long)used, SRV_PROG_USER_FILES >> 20);
			return TS_ERR_TOO_LARGE;
		}
	}
	if (result)
		return result;
	sqlite3_stmt *st = srv_db_stmt(ctx->db, Q_FILE_INSERT);
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)r->in_len);
	sqlite3_bind_blob(st, 3, r->in ? (const void *)r->in : "", (int)r->in_len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, r->now);
	result = srv_db_exec(ctx->db, st);
	int created = !result && sqlite3_changes(srv_db_handle(ctx->db)) > 0;
	if (!result) {
		st = srv_db_stmt(ctx->db, Q_FILE_OWN);
		sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, r->who.user_id);
		sqlite3_bind_int64(st, 3, r->now);
		result = srv_db_exec(ctx->db, st);
	}
	if (result)
		return result;
	r->status = created ? 201 : 200;
	r->reply = json_pack("{s:s,s:I}", "sha256", hash, "size", (json_int_t)r->in_len);
	return r->reply ? TS_OK : TS_ERR_NOMEM;
}

ts_err api_file_get(srv_ctx *ctx, srv_req *r)
{
	ts_err result = TS_OK;
	int64_t size = 0, may = r->who.role == ROLE_ADMIN;
	if (r->who.role == ROLE_NODE) {
		sqlite3_stmt *st = srv_db_stmt(ctx->db, Q_FILE_NODE_MAY);
		sqlite3_bind_text(st, 1, r->hash, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, r->who.node_id);
		sqlite3_bind_int64(st, 3, r->now);
		int row;
		result = srv_db_step(ctx->db, st, &row);
		may = row;
		sqlite3_reset(st);
	} else if (!may) {
		result = owned_size(ctx->db, r->who.user_id, r->hash, &size);
		may = !result;
		if (result == TS_ERR_NOT_FOUND)
			result = TS_OK;
	}
	if (result)
		return result;
	if (!may) {
		/* Not "forbidden": whether a file exists is not told to those who may not have it. */
		snprintf(r->why, sizeof(r->why), r->who.role == ROLE_NODE ? "no such file for a unit this node holds"
									   : "no such file of yours");
		return TS_ERR_NOT_FOUND;
	}
	sqlite3_stmt *st = srv_db_stmt(ctx->db, Q_FILE_GET);
	sqlite3_bind_text(st, 1, r->hash, -1, SQLITE_STATIC);
	int row;
	result = srv_db_step(ctx->db, st, &row);
	if (!result && row) {
		size_t n = (size_t)sqlite3_column_bytes(st, 0);
		r->bytes = malloc(n ? n : 1);
		r->bytes_len = n;
		if (r->bytes && n)
			memcpy(r->bytes, sqlite3_column_blob(st, 0), n);
		if (!r->bytes)
			result = TS_ERR_NOMEM;
		r->content_type = "application/octet-stream";
	} else if (!result) {
		snprintf(r->why, sizeof(r->why), "no such file");
		result = TS_ERR_NOT_FOUND;
	}
	sqlite3_reset(st);
	return result;
}

/* The job of r->id if the caller may see it and it is a program job; *job freed by the caller. */
static ts_err program_job(srv_ctx *ctx, srv_req *r, srv_job *job)
{
	ts_err result = srv_store_job(ctx->db, r->id, job);
	if (result == TS_ERR_NOT_FOUND)
		snprintf(r->why, sizeof(r->why), "no job %lld", (long long)r->id);
	if (result)
		return result;
	if (r->who.role != ROLE_ADMIN && job->owner_id != r->who.user_id) {
		snprintf(r->why, sizeof(r->why), "job %lld is not yours", (long long)r->id);
		result = TS_ERR_FORBIDDEN;
	} else if (strcmp(job->kernel, "program") != 0) {
		snprintf(r->why, sizeof(r->why), "job %lld runs %s, not a program: its result is in GET /api/v1/jobs/%lld",
			 (long long)r->id, job->kernel, (long long)r->id);
		result = TS_ERR_BAD_REQUEST;
	}
	if (result)
		srv_store_job_free(job);
	return result;
}

/* The query's keys: each must be one of `known`, given once. */
static ts_err query_parse(srv_req *r, struct evkeyvalq *q, const char *const *known)
{
	TAILQ_INIT(q);
	if (r->call->query && evhttp_parse_query_str(r->call->query, q) != 0) {
		snprintf(r->why, sizeof(r->why), "the query string is malformed");
		return TS_ERR_BAD_REQUEST;
	}
	struct evkeyval *kv;
	TAILQ_FOREACH(kv, q, next) {
		size_t i = 0;
		while (known[i] && strcmp(known[i], kv->key) != 0)
			i++;
		char shown[SRV_QUOTE_MAX];
		if (!known[i]) {
			snprintf(r->why, sizeof(r->why), "unknown query parameter '%s'", srv_json_quote(kv->key, shown));
			return TS_ERR_BAD_REQUEST;
		}
		for (struct evkeyval *o = TAILQ_NEXT(kv, next); o; o = TAILQ_NEXT(o, next))
			if (strcmp(o->key, kv->key) == 0) {
				snprintf(r->why, sizeof(r->why), "query parameter '%s' given twice", kv->key);
				return TS_ERR_BAD_REQUEST;
			}
	}
	return TS_OK;
}

/* A query value that must be a non-negative integer (def when absent). */
static ts_err query_u64(srv_req *r, struct evkeyvalq *q, const char *key, uint64_t def, uint64_t *out)
{
	const char *v = evhttp_find_header(q, key);
	*out = def;
	if (v && ts_parse_u64(v, out)) {
		snprintf(r->why, sizeof(r->why), "%s must be a unit number", key);
		return TS_ERR_BAD_REQUEST;
	}
	return TS_OK;
}

struct bytes_acc {
	unsigned char *buf;
	size_t len, cap;
	int stderr_stream;
	uint64_t want_seq; /* one unit only: its seq; else UINT64_MAX */
	int found;
};

static ts_err bytes_row(void *arg, const prog_row *row, char *why, size_t whylen)
{
	struct bytes_acc *b = arg;
	if (b->want_seq != UINT64_MAX && row->seq != b->want_seq)
		return TS_OK;
	b->found = 1;
	const unsigned char *src = b->stderr_stream ? row->err : row->out;
	size_t n = b->stderr_stream ? row->err_len : row->out_len;
	if (b->len + n > SRV_PROG_CONCAT_MAX) {
		snprintf(why, whylen, "the output is over %d MiB", SRV_PROG_CONCAT_MAX >> 20);
		return TS_ERR_TOO_LARGE;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->len + n + 1) * 2;
		unsigned char *p = realloc(b->buf, cap);
		if (!p)
			return TS_ERR_NOMEM;
		b->buf = p;
		b->cap = cap;
	}
	if (n)
		memcpy(b->buf + b->len, src, n);
	b->len += n;
	return TS_OK;
}

ts_err api_job_output(srv_ctx *ctx, srv_req *r)
{
	static const char *const known[] = {"unit", "stream", NULL};
	struct evkeyvalq q;
	srv_job job;
	ts_err result = program_job(ctx, r, &job);
	if (result)
		return result;
	struct bytes_acc b = {.want_seq = UINT64_MAX};
	result = query_parse(r, &q, known);
	const char *stream = evhttp_find_header(&q, "stream");
	const char *unit = evhttp_find_header(&q, "unit");
	if (!result && stream && strcmp(stream, "stdout") != 0 && strcmp(stream, "stderr") != 0) {
		snprintf(r->why, sizeof(r->why), "stream must be stdout or stderr");
		result = TS_ERR_BAD_REQUEST;
	}
	if (!result && stream && !unit) {
		snprintf(r->why, sizeof(r->why), "stream needs unit=SEQ: the combined output is stdout only");
		result = TS_ERR_BAD_REQUEST;
	}
	if (!result && unit)
		result = query_u64(r, &q, "unit", 0, &b.want_seq);
	if (result)
		goto out;
	b.stderr_stream = stream && strcmp(stream, "stderr") == 0;
	if (!unit && strcmp(job.state, "done") != 0) {
		snprintf(r->why, sizeof(r->why), strcmp(job.state, "failed") == 0
			 ? "job %lld failed: its units' outputs are at ?unit=SEQ (see /outputs)"
			 : "job %lld is %s: its output comes when it is done", (long long)job.id, job.state);
		result = TS_ERR_CONFLICT;
		goto out;
	}
	json_t *res = job.result ? json_loads(job.result, 0, NULL) : NULL;
	json_t *value = json_object_get(res, "value");
	if (!unit && value) {
		/* sum, min, max: the combined value. */
		char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
		size_t n = text ? strlen(text) : 0;
		if (text && (b.buf = malloc(n + 2))) {
			memcpy(b.buf, text, n);
			b.buf[n] = '\n';
			b.len = n + 1;
		}
		free(text);
		result = b.buf ? TS_OK : TS_ERR_NOMEM;
	} else {
		result = rows_each(ctx->db, job.id, unit ? b.want_seq : 0, unit ? 1 : 0, bytes_row, &b, r->why,
				   sizeof(r->why));
		if (!result && unit && !b.found) {
			snprintf(r->why, sizeof(r->why), "unit %llu of job %lld has no settled result",
				 (unsigned long long)b.want_seq, (long long)job.id);
			result = TS_ERR_NOT_FOUND;
		}
	}
	json_decref(res);
	if (!result && !b.buf && !(b.buf = malloc(1)))
		result = TS_ERR_NOMEM;
	if (!result) {
		r->bytes = b.buf;
		r->bytes_len = b.len;
		r->content_type = "application/octet-stream";
		b.buf = NULL;
	}
out:
	free(b.buf);
	evhttp_clear_headers(&q);
	srv_store_job_free(&job);
	return result;
}

/* Bytes as JSON text: at most max bytes, each invalid UTF-8 sequence (and NUL) as U+FFFD. */
static json_t *text_json(const unsigned char *s, size_t n, size_t max)
{
	size_t lim = n < max ? n : max, k = 0;
	char *out = malloc(lim * 3 + 1);
	if (!out)
		return NULL;
	for (size_t i = 0; i < lim;) {
		unsigned char c = s[i];
		size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
		int ok = len > 0 && c != 0 && i + len <= lim && !(len == 2 && c < 0xc2);
		for (size_t j = 1; ok && j < len; j++)
			ok = (s[i + j] & 0xc0) == 0x80;
		if (ok && len == 3) {
			unsigned cp = (c & 0x0fu) << 12 | (s[i + 1] & 0x3fu) << 6 | (s[i + 2] & 0x3fu);
			ok = cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff);
		}
		if (ok && len == 4) {
			unsigned cp = (c & 0x07u) << 18 | (s[i + 1] & 0x3fu) << 12 | (s[i + 2] & 0x3fu) << 6 | (s[i + 3] & 0x3fu);
			ok = cp >= 0x10000 && cp <= 0x10ffff;
		}
		if (ok) {
			memcpy(out + k, s + i, len);
			k += len;
			i += len;
		} else {
			memcpy(out + k, "\xef\xbf\xbd", 3);
			k += 3;
			i++;
		}
	}
	json_t *j = json_stringn(out, k);
	free(out);
	return j;
}

static ts_err list_row(void *arg, const prog_row *row, char *why, size_t whylen)
{
	json_t *units = arg;
	json_t *out = text_json(row->out, row->out_len, OUTPUT_TEXT_MAX);
	json_t *err = text_json(row->err, row->err_len, OUTPUT_TEXT_MAX);
	json_t *u = out && err ? json_pack("{s:I,s:s,s:o,s:o,s:I,s:I,s:b,s:b,s:I}", "seq", (json_int_t)row->seq,
					  "status", row->status, "stdout", out, "stderr", err, "stdout_bytes",
					  (json_int_t)row->out_len, "stderr_bytes", (json_int_t)row->err_len,
					  "stdout_truncated", row->out_truncated, "stderr_truncated",
					  row->err_truncated, "node_id", (json_int_t)row->node)
			       : NULL;
	if (!u) {
		json_decref(out);
		json_decref(err);
		return TS_ERR_NOMEM;
	}
	return json_array_append_new(units, u) ? TS_ERR_NOMEM : TS_OK;
}

ts_err api_job_outputs(srv_ctx *ctx, srv_req *r)
{
	static const char *const known[] = {"from", NULL};
	struct evkeyvalq q;
	srv_job job;
	uint64_t from = 0;
	ts_err result = program_job(ctx, r, &job);
	if (result)
		return result;
	json_t *units = json_array();
	result = query_parse(r, &q, known);
	if (!result)
		result = query_u64(r, &q, "from", 0, &from);
	if (!result)
		result = units ? rows_each(ctx->db, job.id, from, OUTPUTS_PAGE, list_row, units, r->why, sizeof(r->why))
			       : TS_ERR_NOMEM;
	if (!result) {
		size_t n = json_array_size(units);
		json_t *last = n ? json_object_get(json_array_get(units, n - 1), "seq") : NULL;
		r->reply = json_pack("{s:O,s:o}", "units", units,
				     "next", n == OUTPUTS_PAGE && last ? json_integer(json_integer_value(last) + 1) : json_null());
		result = r->reply ? TS_OK : TS_ERR_NOMEM;
	}
	json_decref(units);
	evhttp_clear_headers(&q);
	srv_store_job_free(&job);
	return result;
}
