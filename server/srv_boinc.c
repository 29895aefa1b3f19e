/* srv_boinc: the scheduler RPC. One request: authenticate the account key (an enrollment
 * token), find or make the host's node, report its finished results through api_work_report,
 * lease new units through srv_lease_fill, and answer with a <scheduler_reply>. It all runs in
 * the dispatcher's one transaction: a request that fails changes nothing. */
#include "srv_boinc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "srv_json.h"
#include "srv_store.h"
#include "srv_work.h"
#include "ts_util.h"

#define REPLY_MAX (4u << 20)
#define NO_WORK_DELAY_S 60    /* request_delay when there is nothing to do (an idle host polls) */
#define STOPPED_DELAY_S 3600  /* ...and when the host may not work (revoked, disabled) */
#define LEASE_MAX_UNITS 64

/* What one RPC learns and answers; the reply is written from it at the end. */
typedef struct rpc {
	srv_boinc_request q;
	const srv_boinc_app *app;
	int64_t node;
	const char *stop;      /* why this host gets no work, shown to the volunteer */
	int app_missing;       /* ...only because there is no app for it: what it holds still counts */
	char base[300];        /* https://HOST */
	srv_xbuf out;          /* the parts of the reply after the header */
	int n_units;
} rpc;

/* The host's node: its own (hostid is its node id, of this volunteer, made over BOINC), or a
 * new one, which takes one use of the enrollment token. */
static ts_err host_node(srv_ctx *ctx, srv_req *r, rpc *c, int64_t volunteer)
{
	sqlite3_stmt *st = srv_db_stmt(ctx->db, Q_NODE_GET);
	sqlite3_bind_int64(st, 1, c->q.hostid);
	int row = 0;
	ts_err result = c->q.hostid > 0 ? srv_db_step(ctx->db, st, &row) : TS_OK;
	if (row) {
		const char *platform = (const char *)sqlite3_column_text(st, 2);
		if (sqlite3_column_int64(st, 12) == volunteer && platform && strncmp(platform, "boinc ", 6) == 0) {
			c->node = sqlite3_column_int64(st, 0);
			r->who.last_seen = sqlite3_column_int64(st, 6);
			if (sqlite3_column_int(st, 4))
				c->stop = "this host is disabled on the Tessera server";
		}
	}
	sqlite3_reset(st);
	if (result || c->node)
		return result;
	int64_t used = 0;
	result = srv_auth_use_enroll(ctx->db, c->q.authenticator, r->now, &used);
	if (result == TS_ERR_UNAUTHORIZED) {
		c->stop = "this account key can attach no more hosts (used up or expired)";
		return TS_OK;
	}
	if (result)
		return result;
	char name[65], platform[80];
	snprintf(name, sizeof(name), "%s", ts_utf8_printable(c->q.domain_name) && *c->q.domain_name
						   ? c->q.domain_name : "boinc host");
	snprintf(platform, sizeof(platform), "boinc %s", c->q.n_platforms ? c->q.platforms[0] : "unknown");
	if (!ts_utf8_printable(platform))
		snprintf(platform, sizeof(platform), "boinc unknown");
	int cores = c->q.ncpus < 1 ? 1 : c->q.ncpus > 4096 ? 4096 : c->q.ncpus;
	st = srv_db_stmt(ctx->db, Q_NODE_INSERT);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, platform, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 3, cores);
	sqlite3_bind_int64(st, 4, r->now);
	sqlite3_bind_null(st, 5);
	sqlite3_bind_int64(st, 6, volunteer);
	result = srv_db_exec(ctx->db, st);
	if (result)
		return result;
	c->node = sqlite3_last_insert_rowid(srv_db_handle(ctx->db));
	r->who.last_seen = r->now;
	if (!ctx->quiet) {
		char shown[4 * 65];
		fprintf(stderr, "node %lld enrolled over BOINC: %s\n", (long long)c->node,
			ts_escape_ctrl(name, shown, sizeof(shown)));
	}
	return TS_OK;
}

/* The report body for one finished BOINC result, or NULL when it is not this node's to
 * report (then it is only acknowledged). An output that is missing or not a JSON object, or a
 * task that failed on the host, reports an error: the unit goes to another node. */
static json_t *report_item(srv_ctx *ctx, const rpc *c, const srv_boinc_reported *res, ts_err *err)
{
	int64_t unit, replica;
	wu_replica rep;
	char *text = NULL;
	*err = TS_OK;
	if (!srv_boinc_parse_result(res->name, &unit, &replica))
		return NULL;
	ts_err result = srv_store_replica(ctx->db, replica, &rep);
	if (result || rep.unit_id != unit || rep.node_id != c->node) {
		*err = result == TS_ERR_NOT_FOUND ? TS_OK : result;
		return NULL;
	}
	if ((*err = srv_boinc_output_read(ctx->boinc, unit, replica, &text)))
		return NULL;
	json_t *partial = text && res->exit_status == 0 ? json_loads(text, 0, NULL) : NULL;
	free(text);
	double wall = isfinite(res->elapsed_s) && res->elapsed_s > 0 && res->elapsed_s < 1e7 ? res->elapsed_s : 0;
	json_t *item;
	if (json_is_object(partial)) {
		item = json_pack("{s:I,s:O,s:f}", "unit_id", (json_int_t)unit, "result", partial, "wall_s", wall);
	} else {
		char why[64];
		snprintf(why, sizeof(why), res->exit_status ? "boinc: the task failed (exit status %d)"
							     : "boinc: no output", res->exit_status);
		item = json_pack("{s:I,s:s,s:f}", "unit_id", (json_int_t)unit, "error", why, "wall_s", wall);
	}
	json_decref(partial);
	if (!item)
		*err = TS_ERR_NOMEM;
	return item;
}

static int reported(const json_t *results, int64_t unit)
{
	size_t i;
	json_t *item;
	json_array_foreach(results, i, item)
		if (json_integer_value(json_object_get(item, "unit_id")) == unit)
			return 1;
	return 0;
}

/* The host's measured rate for a reported result's kernel (indices per second of its wall
 * time, all its cores busy), from the unit's input, into rates; tasks under a second are too
 * coarse to tell (the client counts elapsed time in whole poll seconds). */
static void note_rate(const struct srv_boinc *b, int64_t unit, int64_t replica, double elapsed_s, json_t *rates)
{
	char *text = NULL;
	if (!(elapsed_s >= 1) || srv_boinc_input_read(b, unit, replica, &text) || !text)
		return;
	json_t *in = json_loads(text, 0, NULL);
	free(text);
	const char *kernel = json_string_value(json_object_get(in, "kernel"));
	json_int_t count = json_integer_value(json_object_get(in, "count"));
	if (kernel && count > 0 && kern_find(kernel))
		json_object_set_new(rates, kernel, json_real((double)count / elapsed_s));
	json_decref(in);
}

/* Merges measured rates into the node's, which size its next fetches. */
static ts_err rates_put(srv_ctx *ctx, int64_t node, json_t *measured)
{
	srv_node_info info;
	char *text = NULL, why[256];
	if (!json_object_size(measured))
		return TS_OK;
	ts_err result = srv_store_node_info(ctx->db, node, &info);
	if (result)
		return result;
	json_t *rates = json_is_object(info.rates) ? info.rates : json_object();
	json_object_update(rates, measured);
	if (srv_json_rates(rates, &text, why, sizeof(why)) == TS_OK && text) {
		sqlite3_stmt *st = srv_db_stmt(ctx->db, Q_NODE_SET_RATES);
		sqlite3_bind_int64(st, 1, node);
		sqlite3_bind_text(st, 2, text, -1, SQLITE_TRANSIENT);
		result = srv_db_exec(ctx->db, st);
	}
	free(text);
	if (rates != info.rates)
		json_decref(rates);
	json_decref(info.rates);
	return result;
}

/* Reports the finished results through the report route's own code (one node principal, the
 * same transaction) and acknowledges every one, taken or not, so the client stops sending it. */
static ts_err report(srv_ctx *ctx, srv_req *r, rpc *c)
{
	json_t *results = json_array();
	ts_err result = results ? TS_OK : TS_ERR_NOMEM;
	for (int i = 0; i < c->q.n_results && !result; i++) {
		json_t *item = report_item(ctx, c, &c->q.results[i], &result);
		if (item)
			json_array_append_new(results, item);
	}
	if (!result && json_array_size(results)) {
		srv_req sub = {.call = r->call, .who = r->who, .now = r->now, .status = 200};
		sub.body = json_pack("{s:O}", "results", results);
		result = sub.body ? api_work_report(ctx, &sub) : TS_ERR_NOMEM;
		if (result)
			snprintf(r->why, sizeof(r->why), "%s", sub.why);
		else if (!ctx->quiet)
			fprintf(stderr, "boinc host %lld reported %zu results, %zu rejected\n", (long long)c->node,
				json_array_size(results), json_array_size(json_object_get(sub.reply, "rejected")));
		json_decref(sub.body);
		json_decref(sub.reply);
	}
	json_t *measured = json_object();
	for (int i = 0; i < c->q.n_results && !result && measured; i++) {
		int64_t unit, replica;
		if (srv_boinc_parse_result(c->q.results[i].name, &unit, &replica) && reported(results, unit) &&
		    c->q.results[i].exit_status == 0)
			note_rate(ctx->boinc, unit, replica, c->q.results[i].elapsed_s, measured);
	}
	if (!result)
		result = rates_put(ctx, c->node, measured);
	json_decref(measured);
	/* The files go only with a report that was taken (a failed one is sent again, files and all;
	 * should the commit itself fail after this, the result comes back as "no output", and its
	 * unit goes to another node: work lost, never a wrong result). */
	for (int i = 0; i < c->q.n_results && !result; i++) {
		int64_t unit, replica;
		if (srv_boinc_parse_result(c->q.results[i].name, &unit, &replica) && reported(results, unit))
			srv_boinc_files_drop(ctx->boinc, unit, replica);
	}
	json_decref(results);
	for (int i = 0; i < c->q.n_results && !result; i++) {
		srv_xbuf_printf(&c->out, "<result_ack>\n");
		srv_xbuf_elem(&c->out, "name", c->q.results[i].name);
		srv_xbuf_printf(&c->out, "</result_ack>\n");
	}
	return result;
}

static void file_ref(srv_xbuf *b, const char *file, const char *open_name)
{
	srv_xbuf_printf(b, "<file_ref>\n");
	srv_xbuf_elem(b, "file_name", file);
	srv_xbuf_elem(b, "open_name", open_name);
	srv_xbuf_printf(b, "<copy_file/>\n</file_ref>\n");
}

/* One leased unit as a BOINC workunit and result: its input written for download, its output
 * file_info carrying the result's upload secret. */
static ts_err send_unit(srv_ctx *ctx, rpc *c, const json_t *unit)
{
	int64_t id = json_integer_value(json_object_get(unit, "id"));
	int64_t count = json_integer_value(json_object_get(unit, "count"));
	wu_replica rep;
	ts_err result = srv_store_replica_of(ctx->db, id, c->node, &rep);
	if (result)
		return result;
	char wu[SRV_BOINC_NAME_MAX], res[SRV_BOINC_NAME_MAX + 4], in[SRV_BOINC_NAME_MAX + 40], outf[SRV_BOINC_NAME_MAX + 8];
	char mac[SRV_BOINC_MAC_HEX], label[SRV_BOINC_NAME_MAX + 16], md5[33], url[600];
	srv_boinc_wu_name(id, rep.id, wu);
	snprintf(res, sizeof(res), "%s_0", wu);
	snprintf(label, sizeof(label), "in:%s", wu);
	srv_boinc_mac(ctx->boinc->key, label, mac);
	snprintf(in, sizeof(in), "%s_%s.in", wu, mac);
	snprintf(outf, sizeof(outf), "%s_out", res);
	json_t *input = json_pack("{s:I,s:O,s:O,s:O,s:O}", "unit_id", (json_int_t)id, "kernel",
				  json_object_get(unit, "kernel"), "params", json_object_get(unit, "params"),
				  "start", json_object_get(unit, "start"), "count", json_object_get(unit, "count"));
	char *text = input ? json_dumps(input, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(input);
	if (!text)
		return TS_ERR_NOMEM;
	size_t n = strlen(text);
	srv_boinc_md5_hex(text, n, md5);
	result = srv_boinc_input_put(ctx->boinc, in, text, n);
	free(text);
	if (result)
		return result;
	const kern *k = kern_find(json_string_value(json_object_get(unit, "kernel")));
	/* Flops estimates from the kernel's nominal cost per index and the host's own speed; the
	 * bound is generous, as the client aborts a task that passes it. */
	double fpops = c->q.fpops > 1e6 ? c->q.fpops : 1e9;
	double est = (double)count * (k ? k->ns_per_index : 10) * 1e-9 * fpops;
	srv_xbuf *b = &c->out;
	srv_xbuf_printf(b, "<file_info>\n");
	srv_xbuf_elem(b, "name", in);
	snprintf(url, sizeof(url), "%s/boinc/download/%s", c->base, in);
	srv_xbuf_elem(b, "url", url);
	srv_xbuf_printf(b, "<nbytes>%zu</nbytes>\n", n);
	srv_xbuf_elem(b, "md5_cksum", md5);
	srv_xbuf_printf(b, "</file_info>\n<workunit>\n");
	srv_xbuf_elem(b, "name", wu);
	srv_xbuf_elem(b, "app_name", SRV_BOINC_APP);
	srv_xbuf_printf(b, "<version_num>%d</version_num>\n<rsc_fpops_est>%.0f</rsc_fpops_est>\n"
			"<rsc_fpops_bound>%.0f</rsc_fpops_bound>\n<rsc_memory_bound>%.0f</rsc_memory_bound>\n"
			"<rsc_disk_bound>%.0f</rsc_disk_bound>\n", SRV_BOINC_APP_VERSION, est > 1e9 ? est : 1e9,
			(est > 1e9 ? est : 1e9) * 1000, 256e6, 64e6);
	file_ref(b, in, "in");
	srv_xbuf_printf(b, "</workunit>\n<file_info>\n");
	srv_xbuf_elem(b, "name", outf);
	srv_xbuf_printf(b, "<generated_locally/>\n<upload_when_present/>\n<max_nbytes>%d</max_nbytes>\n",
			SRV_BOINC_OUT_MAX);
	snprintf(url, sizeof(url), "%s/boinc/upload", c->base);
	srv_xbuf_elem(b, "upload_url", url);
	snprintf(label, sizeof(label), "out:%s", outf);
	srv_boinc_mac(ctx->boinc->key, label, mac);
	srv_xbuf_elem(b, "xml_signature", mac);
	srv_xbuf_printf(b, "</file_info>\n<result>\n");
	srv_xbuf_elem(b, "name", res);
	srv_xbuf_elem(b, "wu_name", wu);
	srv_xbuf_elem(b, "platform", c->app->platform);
	srv_xbuf_printf(b, "<version_num>%d</version_num>\n<report_deadline>%lld</report_deadline>\n"
			"<report_immediately/>\n", SRV_BOINC_APP_VERSION,
			(long long)json_integer_value(json_object_get(unit, "deadline")));
	file_ref(b, outf, "out");
	srv_xbuf_printf(b, "</result>\n");
	c->n_units++;
	return TS_OK;
}

/* The app and its one file, sent with every batch of work (the client keeps what it has). */
static void send_app(rpc *c)
{
	srv_xbuf *b = &c->out;
	char url[600];
	srv_xbuf_printf(b, "<app>\n");
	srv_xbuf_elem(b, "name", SRV_BOINC_APP);
	srv_xbuf_elem(b, "user_friendly_name", "Tessera");
	srv_xbuf_printf(b, "</app>\n<file_info>\n");
	srv_xbuf_elem(b, "name", c->app->file);
	snprintf(url, sizeof(url), "%s/boinc/download/%s", c->base, c->app->file);
	srv_xbuf_elem(b, "url", url);
	srv_xbuf_printf(b, "<executable/>\n<nbytes>%zu</nbytes>\n<file_signature>\n%s</file_signature>\n"
			"</file_info>\n<app_version>\n", c->app->nbytes, c->app->signature);
	srv_xbuf_elem(b, "app_name", SRV_BOINC_APP);
	srv_xbuf_elem(b, "platform", c->app->platform);
	srv_xbuf_printf(b, "<version_num>%d</version_num>\n<avg_ncpus>%d</avg_ncpus>\n<max_ncpus>%d</max_ncpus>\n"
			"<flops>%.0f</flops>\n<file_ref>\n", SRV_BOINC_APP_VERSION, c->q.ncpus > 0 ? c->q.ncpus : 1,
			c->q.ncpus > 0 ? c->q.ncpus : 1, (c->q.fpops > 1e6 ? c->q.fpops : 1e9) * (c->q.ncpus > 0 ? c->q.ncpus : 1));
	srv_xbuf_elem(b, "file_name", c->app->file);
	srv_xbuf_printf(b, "<main_program/>\n</file_ref>\n</app_version>\n");
}

/* Leases units for the seconds of work the client asks for, sized as a tessera-client fetch is
 * (its measured rates, else the kernel's nominal cost on its cores). Results it still has in
 * progress are "holding": not sent again. */
static ts_err lease(srv_ctx *ctx, srv_req *r, rpc *c)
{
	json_t *holding = json_array(), *units = NULL;
	for (int i = 0; i < c->q.n_other && json_array_size(holding) < LEASE_MAX_UNITS; i++) {
		int64_t unit, replica;
		if (srv_boinc_parse_result(c->q.other[i], &unit, &replica))
			json_array_append_new(holding, json_integer(unit));
	}
	/* BOINC asks for instance-seconds (seconds times the cores busy); a task here takes all the
	 * host's cores, so that is work_req_s / ncpus seconds of the node's time. */
	double seconds = c->q.work_req_s / (c->q.ncpus > 0 ? c->q.ncpus : 1);
	seconds = seconds < 0.001 ? 0.001 : seconds > 86400 ? 86400 : seconds;
	json_t *spec = json_pack("{s:f,s:i,s:o}", "seconds", seconds, "max_units", LEASE_MAX_UNITS, "holding", holding);
	ts_err result = spec ? srv_lease_fill(ctx, r, spec, &units) : TS_ERR_NOMEM;
	json_decref(spec);
	size_t i;
	json_t *unit;
	if (!result && json_array_size(units))
		send_app(c);
	json_array_foreach(units, i, unit) {
		if (result)
			break;
		const kern *k = kern_find(json_string_value(json_object_get(unit, "kernel")));
		/* Only compute kernels lease to a BOINC host (it has no program slots); never else. */
		result = k && k->compute ? send_unit(ctx, c, unit) : TS_ERR_INTERNAL;
	}
	json_decref(units);
	return result;
}

static char *reply_text(srv_ctx *ctx, rpc *c, size_t *len)
{
	srv_xbuf b;
	srv_xbuf_init(&b, REPLY_MAX);
	srv_xbuf_printf(&b, "<scheduler_reply>\n<scheduler_version>%d</scheduler_version>\n", 700);
	srv_xbuf_elem(&b, "project_name", "Tessera");
	char master[320];
	snprintf(master, sizeof(master), "%s/boinc/", c->base);
	srv_xbuf_elem(&b, "master_url", master);
	if (c->node)
		srv_xbuf_printf(&b, "<hostid>%lld</hostid>\n", (long long)c->node);
	if (c->stop) {
		srv_xbuf_printf(&b, "<message priority=\"notice\">");
		srv_xbuf_text(&b, c->stop);
		srv_xbuf_printf(&b, "</message>\n");
	}
	/* A delay only for a host with nothing in hand: one still computing must be free to report
	 * the moment it finishes (its results may be holding up a job). */
	if (c->stop || (!c->n_units && !c->q.n_other))
		srv_xbuf_printf(&b, "<request_delay>%d</request_delay>\n", c->stop ? STOPPED_DELAY_S : NO_WORK_DELAY_S);
	/* BOINC's heartbeat: the client calls again within this even with nothing to ask, so a host
	 * that stops calling is lost after the node timeout, as a tessera-client that stops beating. */
	if (c->node && !c->stop)
		srv_xbuf_printf(&b, "<next_rpc_delay>%lld</next_rpc_delay>\n",
				(long long)(ctx->node_timeout_s / 2 > 10 ? ctx->node_timeout_s / 2 : 10));
	/* A host that may not work stops what it holds: its results would not be taken. */
	for (int i = 0; c->stop && !c->app_missing && i < c->q.n_other; i++) {
		srv_xbuf_printf(&b, "<result_abort>\n");
		srv_xbuf_elem(&b, "name", c->q.other[i]);
		srv_xbuf_printf(&b, "</result_abort>\n");
	}
	if (!c->q.has_code_sign_key)
		srv_xbuf_printf(&b, "<code_sign_key>\n%s</code_sign_key>\n", srv_boinc_key_public(ctx->boinc->key));
	if (!c->out.failed && c->out.n)
		srv_xbuf_printf(&b, "%.*s", (int)c->out.n, c->out.p);
	if (c->out.failed)
		b.failed = 1;
	srv_xbuf_printf(&b, "</scheduler_reply>\n");
	return srv_xbuf_take(&b, len);
}

ts_err api_boinc_scheduler(srv_ctx *ctx, srv_req *r)
{
	rpc *c = calloc(1, sizeof(*c));
	ts_err result = c ? TS_OK : TS_ERR_NOMEM;
	if (result)
		return result;
	srv_xbuf_init(&c->out, REPLY_MAX);
	if (!ctx->boinc) {
		result = TS_ERR_NOT_FOUND;
		snprintf(r->why, sizeof(r->why), "BOINC is not enabled on this server");
		goto out;
	}
	if (r->in_len > SRV_BOINC_REQ_MAX) {
		result = TS_ERR_TOO_LARGE;
		snprintf(r->why, sizeof(r->why), "a scheduler request is at most %u KiB", SRV_BOINC_REQ_MAX >> 10);
		goto out;
	}
	if ((result = srv_boinc_parse_request((const char *)r->in, r->in_len, &c->q, r->why, sizeof(r->why))) ||
	    (result = srv_boinc_base_url(r, c->base, sizeof(c->base))))
		goto out;
	int64_t volunteer = 0;
	result = srv_auth_enroll_live(ctx->db, c->q.authenticator, &volunteer);
	if (result == TS_ERR_UNAUTHORIZED) {
		/* Answered as BOINC does, with a message the volunteer sees; nothing is written. */
		c->stop = "this account key is not valid on this Tessera server (unknown or revoked)";
		result = TS_OK;
	} else if (!result) {
		result = host_node(ctx, r, c, volunteer);
	}
	if (result || (c->stop && !c->node))
		goto reply;
	r->who = (srv_principal){.role = ROLE_NODE, .node_id = c->node, .last_seen = r->who.last_seen};
	snprintf(r->who.kind, sizeof(r->who.kind), "node");
	if (c->stop)
		goto reply; /* a disabled host: not even its results count */
	result = report(ctx, r, c);
	if (!result)
		result = srv_work_node_seen(ctx->db, r);
	c->app = srv_boinc_app_for(ctx->boinc, c->q.platforms, c->q.n_platforms);
	if (!result && !c->app) {
		c->stop = "Tessera has no app for this host's platform";
		c->app_missing = 1;
	}
	if (!result && !c->stop && c->q.work_req_s > 0)
		result = lease(ctx, r, c);
reply:
	if (result)
		goto out;
	r->text = reply_text(ctx, c, NULL);
	r->content_type = "text/xml";
	if (!r->text)
		result = TS_ERR_NOMEM;
out:
	srv_xbuf_free(&c->out);
	free(c);
	return result;
}
