/* srv_stats: what the dashboard and operators watch: /api/v1/stats, a job's units, /metrics. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kern.h"
#include "srv_health.h"
#include "srv_http.h"
#include "srv_view.h"
#include "ts_util.h"

void srv_rate_add(srv_rate *r, int64_t now, double results, double indices)
{
	size_t slot = (size_t)now % SRV_RATE_WINDOW_S;
	if (r->sec[slot] != now) {
		r->sec[slot] = now;
		r->results[slot] = r->indices[slot] = 0;
	}
	r->results[slot] += results;
	r->indices[slot] += indices;
}

void srv_rate_sum(const srv_rate *r, int64_t now, double *results, double *indices)
{
	*results = *indices = 0;
	for (size_t i = 0; i < SRV_RATE_WINDOW_S; i++) {
		if (r->sec[i] > now - SRV_RATE_WINDOW_S && r->sec[i] <= now) {
			*results += r->results[i];
			*indices += r->indices[i];
		}
	}
}

ts_err api_stats(srv_ctx *ctx, srv_req *r)
{
	json_t *jobs = json_pack("{s:i,s:i,s:i,s:i,s:i}", "queued", 0, "running", 0, "done", 0,
				 "failed", 0, "cancelled", 0);
	json_t *failures = json_array();
	sqlite3_stmt *st = srv_db_stmt(ctx->db, Q_STATS_NODES);
	sqlite3_bind_int64(st, 1, r->now - ctx->node_timeout_s);
	int row, failed = 0;
	ts_err result = srv_db_step(ctx->db, st, &row);
	failed |= result != TS_OK;
	json_t *nodes = row
		? json_pack("{s:I,s:I,s:I,s:I}", "online", (json_int_t)sqlite3_column_int64(st, 0), "lost",
			    (json_int_t)sqlite3_column_int64(st, 1), "disabled",
			    (json_int_t)sqlite3_column_int64(st, 2), "cores_online",
			    (json_int_t)sqlite3_column_int64(st, 3))
		: json_object();
	sqlite3_reset(st);
	st = srv_db_stmt(ctx->db, Q_STATS_JOBS);
	while (!failed && !(result = srv_db_step(ctx->db, st, &row)) && row)
		json_object_set_new(jobs, (const char *)sqlite3_column_text(st, 0),
				    json_integer(sqlite3_column_int64(st, 1)));
	sqlite3_reset(st);
	double units = 0, indices = 0;
	srv_rate_sum(&ctx->rate, r->now, &units, &indices);
	failed |= result != TS_OK;
	st = srv_db_stmt(ctx->db, Q_STATS_FAILURES);
	while (!failed && !(result = srv_db_step(ctx->db, st, &row)) && row)
		json_array_append_new(failures, json_pack("{s:I,s:s?,s:I}", "job_id",
			(json_int_t)sqlite3_column_int64(st, 0), "error",
			(const char *)sqlite3_column_text(st, 1), "finished_at",
			(json_int_t)sqlite3_column_int64(st, 2)));
	sqlite3_reset(st);
	if (failed || result) {
		json_decref(nodes);
		json_decref(jobs);
		json_decref(failures);
		return result ? result : TS_ERR_DB;
	}
	r->reply = json_pack("{s:o,s:o,s:{s:f,s:f,s:i},s:o}", "nodes", nodes, "jobs", jobs, "rate",
			     "units_per_s", units / SRV_RATE_WINDOW_S, "indices_per_s", indices / SRV_RATE_WINDOW_S,
			     "window_s", SRV_RATE_WINDOW_S, "recent_failures", failures);
	return r->reply ? TS_OK : TS_ERR_NOMEM;
}

ts_err api_job_units(srv_ctx *ctx, srv_req *r)
{
	int64_t owner = 0;
	json_t *job = NULL;
	ts_err result = srv_view_job(ctx->db, r->id, 0, r->now, ctx->node_timeout_s, &job, &owner);
	if (result == TS_ERR_NOT_FOUND)
		snprintf(r->why, sizeof(r->why), "no job %lld", (long long)r->id);
	if (result)
		return result;
	const kern *k = kern_find(json_string_value(json_object_get(job, "kernel")));
	json_decref(job);
	if (r->who.role != ROLE_ADMIN && owner != r->who.user_id) {
		snprintf(r->why, sizeof(r->why), "job %lld is not yours", (long long)r->id);
		return TS_ERR_FORBIDDEN;
	}
	if (!k)
		return TS_ERR_INTERNAL;
	json_t *units = json_array();
	sqlite3_stmt *st = srv_db_stmt(ctx->db, Q_JOB_UNITS);
	sqlite3_bind_int64(st, 1, r->id);
	int row;
	while (!(result = srv_db_step(ctx->db, st, &row)) && row) {
		kern_partial p = {{(uint64_t)sqlite3_column_int64(st, 3), (uint64_t)sqlite3_column_int64(st, 4)}};
		const char *node = (const char *)sqlite3_column_text(st, 5);
		/* Newest first from the store (to keep the latest 5000); the page wants them in order. */
		json_array_insert_new(units, 0, json_pack("{s:I,s:I,s:I,s:o,s:s?,s:I}", "seq",
			(json_int_t)sqlite3_column_int64(st, 0), "start", (json_int_t)sqlite3_column_int64(st, 1),
			"count", (json_int_t)sqlite3_column_int64(st, 2), "result", k->partial_to_json(&p),
			"node", node, "valid_at", (json_int_t)sqlite3_column_int64(st, 6)));
	}
	sqlite3_reset(st);
	if (result) {
		json_decref(units);
		return result;
	}
	r->reply = json_pack("{s:o}", "units", units);
	return r->reply ? TS_OK : TS_ERR_NOMEM;
}

/* A growable text buffer for the metrics page. */
struct text {
	char *p;
	size_t len, cap;
	int failed;
};

static void text_add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		va_start(ap, fmt);
		int n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->failed = 1;
			return;
		}
		if (t->p && t->len + (size_t)n < t->cap) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = (t->cap ? t->cap * 2 : 8192) + (size_t)n;
		char *grown = realloc(t->p, cap);
		if (!grown) {
			t->failed = 1;
			return;
		}
		t->p = grown;
		t->cap = cap;
	}
}

static const char *const method_names[] = {"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS",
					   "TRACE", "CONNECT", "PATCH"};

static const char *method_name(enum evhttp_cmd_type m)
{
	for (size_t i = 0; i < TS_ARRAY_LEN(method_names); i++)
		if ((int)m == 1 << i)
			return method_names[i];
	return "OTHER";
}

/* Writes "name{label="value"} count" rows of a two-column statement. */
static void metric_rows(srv_ctx *ctx, struct text *t, enum srv_stmt q, const char *name,
			const char *label, const char *const *names)
{
	sqlite3_stmt *st = srv_db_stmt(ctx->db, q);
	int row;
	while (!t->failed && !(t->failed = srv_db_step(ctx->db, st, &row) != TS_OK) && row) {
		char num[24];
		const char *v = (const char *)sqlite3_column_text(st, 0);
		if (names) {
			int i = sqlite3_column_int(st, 0);
			snprintf(num, sizeof(num), "%d", i);
			v = i >= 1 && i <= 4 ? names[i] : num;
		}
		text_add(t, "%s{%s=\"%s\"} %lld\n", name, label, v, (long long)sqlite3_column_int64(st, 1));
	}
	sqlite3_reset(st);
}

/* A Prometheus label value: backslash, quote and newline escaped (names have no other
 * control characters). */
static const char *label_escape(const char *s, char *out, size_t cap)
{
	size_t n = 0;
	for (; s && *s && n + 3 < cap; s++) {
		if (*s == '\\' || *s == '"')
			out[n++] = '\\';
		out[n++] = *s == '\n' ? 'n' : *s;
	}
	out[n] = '\0';
	return out;
}

/* The gauges of one node-health column; NULL values (no thermal zone) are left out. */
static const struct health_gauge {
	const char *name, *help;
	int col;
} health_gauges[] = {
	{"tessera_node_load1", "1-minute load average of each online node.", 2},
	{"tessera_node_mem_total_bytes", "Memory of each online node.", 3},
	{"tessera_node_mem_available_bytes", "Memory available on each online node.", 4},
	{"tessera_node_temp_celsius", "Hottest thermal zone of each online node that has one.", 5},
	{"tessera_node_uptime_seconds", "Uptime of each online node's machine.", 6},
};

/* Per-node gauges from the latest heartbeats of the nodes online now; tessera_node_paused is 1
 * for the reason a node is paused for and 0 for the others. */
static void metric_node_health(srv_ctx *ctx, struct text *t, int64_t since)
{
	sqlite3_stmt *st = srv_db_stmt(ctx->db, Q_HEALTH_ONLINE);
	for (size_t g = 0; g <= TS_ARRAY_LEN(health_gauges) && !t->failed; g++) {
		int paused = g == TS_ARRAY_LEN(health_gauges), row;
		if (paused)
			text_add(t, "# HELP tessera_node_paused Whether the volunteer's controls pause each "
				    "online node, by reason.\n# TYPE tessera_node_paused gauge\n");
		else
			text_add(t, "# HELP %s %s\n# TYPE %s gauge\n", health_gauges[g].name,
				 health_gauges[g].help, health_gauges[g].name);
		sqlite3_bind_int64(st, 1, since);
		while (!t->failed && !(t->failed = srv_db_step(ctx->db, st, &row) != TS_OK) && row) {
			char name[4 * 64 + 1];
			long long id = (long long)sqlite3_column_int64(st, 0);
			label_escape((const char *)sqlite3_column_text(st, 1), name, sizeof(name));
			if (paused) {
				const char *p = (const char *)sqlite3_column_text(st, 7);
				for (const char *const *why = srv_health_reasons; *why; why++)
					text_add(t, "tessera_node_paused{node=\"%s\",node_id=\"%lld\",reason=\"%s\"} %d\n",
						 name, id, *why, p && strcmp(p, *why) == 0);
			} else if (sqlite3_column_type(st, health_gauges[g].col) != SQLITE_NULL) {
				text_add(t, "%s{node=\"%s\",node_id=\"%lld\"} %.15g\n", health_gauges[g].name, name,
					 id, sqlite3_column_double(st, health_gauges[g].col));
			}
		}
		sqlite3_reset(st);
	}
}

ts_err api_metrics(srv_ctx *ctx, srv_req *r)
{
	struct text t = {0};
	size_t n;
	const srv_route *routes = srv_http_routes(&n);

	text_add(&t, "# HELP tessera_jobs Jobs by state.\n# TYPE tessera_jobs gauge\n");
	metric_rows(ctx, &t, Q_STATS_JOBS, "tessera_jobs", "state", NULL);
	text_add(&t, "# HELP tessera_units Units valid (all jobs) and open (handed out, not valid yet).\n"
		     "# TYPE tessera_units gauge\n");
	metric_rows(ctx, &t, Q_STATS_UNITS, "tessera_units", "state", NULL);
	int64_t unissued = 0;
	ts_err result = SRV_QUERY_INT(ctx->db, Q_STATS_PENDING, 0, &unissued, 0);
	if (result) {
		free(t.p);
		return result;
	}
	text_add(&t, "# HELP tessera_units_unissued Units of open jobs not handed out yet.\n"
		     "# TYPE tessera_units_unissued gauge\ntessera_units_unissued %lld\n",
		 (long long)unissued);
	sqlite3_stmt *st = srv_db_stmt(ctx->db, Q_STATS_NODES);
	sqlite3_bind_int64(st, 1, r->now - ctx->node_timeout_s);
	int row;
	t.failed |= srv_db_step(ctx->db, st, &row) != TS_OK;
	if (row)
		text_add(&t, "# HELP tessera_nodes Nodes by state.\n# TYPE tessera_nodes gauge\n"
			     "tessera_nodes{state=\"online\"} %lld\ntessera_nodes{state=\"lost\"} %lld\n"
			     "tessera_nodes{state=\"disabled\"} %lld\n"
			     "# HELP tessera_cores_online Cores of online nodes.\n# TYPE tessera_cores_online gauge\n"
			     "tessera_cores_online %lld\n",
			 (long long)sqlite3_column_int64(st, 0), (long long)sqlite3_column_int64(st, 1),
			 (long long)sqlite3_column_int64(st, 2), (long long)sqlite3_column_int64(st, 3));
	sqlite3_reset(st);
	metric_node_health(ctx, &t, r->now - ctx->node_timeout_s);

	text_add(&t, "# HELP tessera_fetches_waiting Long-poll fetches waiting for work now.\n"
		     "# TYPE tessera_fetches_waiting gauge\ntessera_fetches_waiting %zu\n", ctx->n_waiters);
	text_add(&t, "# HELP tessera_group_commits_total Group commits, and the replies they carried.\n"
		     "# TYPE tessera_group_commits_total counter\ntessera_group_commits_total %llu\n"
		     "# TYPE tessera_group_commit_requests_total counter\ntessera_group_commit_requests_total %llu\n",
		 (unsigned long long)ctx->commits, (unsigned long long)ctx->grouped);
	text_add(&t, "# HELP tessera_http_requests_total Requests by route and status class.\n"
		     "# TYPE tessera_http_requests_total counter\n");
	for (size_t i = 0; i <= n; i++) {
		const char *path = i < n ? routes[i].path : "unmatched";
		const char *method = i < n ? method_name(routes[i].method) : "ANY";
		for (int c = 1; c <= 5; c++)
			if (ctx->route_stats[i < n ? i : SRV_ROUTES_MAX].by_class[c])
				text_add(&t, "tessera_http_requests_total{method=\"%s\",route=\"%s\",code=\"%dxx\"} %llu\n",
					 method, path, c,
					 (unsigned long long)ctx->route_stats[i < n ? i : SRV_ROUTES_MAX].by_class[c]);
	}
	text_add(&t, "# HELP tessera_http_request_seconds_total Time spent serving, by route.\n"
		     "# TYPE tessera_http_request_seconds_total counter\n");
	for (size_t i = 0; i < n; i++)
		if (ctx->route_stats[i].seconds > 0)
			text_add(&t, "tessera_http_request_seconds_total{method=\"%s\",route=\"%s\"} %.6f\n",
				 method_name(routes[i].method), routes[i].path, ctx->route_stats[i].seconds);
	text_add(&t, "# HELP tessera_http_request_duration_seconds Request latency.\n"
		     "# TYPE tessera_http_request_duration_seconds histogram\n");
	uint64_t cum = 0;
	double sum = 0;
	for (size_t i = 0; i <= SRV_ROUTES_MAX; i++)
		sum += ctx->route_stats[i].seconds;
	for (int b = 0; b < SRV_LATENCY_BUCKETS; b++) {
		cum += ctx->latency[b];
		text_add(&t, "tessera_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
			 srv_latency_bounds[b], (unsigned long long)cum);
	}
	cum += ctx->latency[SRV_LATENCY_BUCKETS];
	text_add(&t, "tessera_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
		     "tessera_http_request_duration_seconds_sum %.6f\n"
		     "tessera_http_request_duration_seconds_count %llu\n",
		 (unsigned long long)cum, sum, (unsigned long long)cum);
	if (t.failed) {
		free(t.p);
		return TS_ERR_NOMEM;
	}
	r->text = t.p;
	r->content_type = "text/plain; version=0.0.4; charset=utf-8";
	return TS_OK;
}
