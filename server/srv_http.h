/* srv_http: the HTTPS front: evhttp over bufferevent_openssl, the route table, bodies, replies.
 *
 * A request goes: route match (404/405) -> bearer check against the route's roles (401/403),
 * before the body is parsed -> body inflate (gzip) and JSON parse (413/400) -> handler ->
 * exactly one reply, sent by srv_http's dispatcher, never by the handler. */
#ifndef SRV_HTTP_H
#define SRV_HTTP_H

#include <stdint.h>

#include <event2/http.h>
#include <jansson.h>
#include <openssl/ssl.h>

#include "srv_auth.h"
#include "srv_conn.h"
#include "srv_db.h"
#include "srv_kdf.h"
#include "srv_limit.h"
#include "ts_err.h"

/* Bytes of a request body, both as sent (gzipped or not) and inflated. evhttp refuses a body
 * announced or chunked over it with its own bare 413 before reading it (libevent 2.1 has no hook
 * to shape its errors); a gzip body that inflates over it gets the JSON 413. */
#define SRV_MAX_BODY (1 << 20)
/* Raw uploads (PUT /api/v1/files) have the same cap, as sent and inflated: a larger evhttp cap
 * for them would let any route's body be read (and buffered) to that size before it is refused. */
#define SRV_MAX_UPLOAD SRV_MAX_BODY
#define SRV_MAX_HEADERS 16384       /* bytes of request headers */
#define SRV_GZIP_MIN 1024           /* replies smaller than this go uncompressed */
#define SRV_IDLE_TIMEOUT_S 60

#define SRV_ROUTES_MAX 48
#define SRV_NAME_MAX 200 /* bytes of a {name} path segment, NUL included */
#define SRV_LATENCY_BUCKETS 12

/* Request counts and latencies per route, for /metrics. */
typedef struct srv_route_stats {
	uint64_t by_class[6]; /* replies by status class: [2] 2xx ... [5] 5xx */
	double seconds;       /* total time in the handler and reply */
} srv_route_stats;

/* Settings of `tessera-server run` (the option table in srv_main.c gives defaults and ranges). */
typedef struct srv_config {
	int64_t node_timeout_s;     /* a node unseen this long is lost; its leases are released */
	int64_t rate_limit;         /* requests per second per address and per token; 0: off */
	int64_t login_rate;         /* login and enroll attempts per minute per address; 0: off */
	int64_t max_connections;
	int64_t max_conns_per_addr;
	int64_t request_timeout_s;  /* accept to first complete request */
	int64_t idle_timeout_s;     /* between requests on a kept-alive connection */
	int64_t group_commit;       /* 1: many requests per transaction, replies after its commit */
	int64_t kdf_workers;        /* threads that hash passwords off the event loop */
	int64_t kdf_queue;          /* password checks queued or running at most; beyond: 429 */
	int64_t busy_timeout_ms;    /* how long a statement waits for a lock before a 503 */
} srv_config;

#define SRV_GROUP_MAX 128 /* replies held for one group commit at most */
#define SRV_PRIORITIES 3  /* event priorities: the base must be made with these (see srv_main) */
struct srv_held;

/* Results reported per second over the last minute, for the grid's rate (in memory: it only
 * says how fast the grid goes now). */
#define SRV_RATE_WINDOW_S 60
typedef struct srv_rate {
	int64_t sec[SRV_RATE_WINDOW_S];
	double results[SRV_RATE_WINDOW_S], indices[SRV_RATE_WINDOW_S];
} srv_rate;
void srv_rate_add(srv_rate *r, int64_t now, double results, double indices);
void srv_rate_sum(const srv_rate *r, int64_t now, double *results, double *indices);

/* The server's one context, passed to every callback. */
typedef struct srv_ctx {
	struct event_base *base;
	struct evhttp *http;
	SSL_CTX *ssl;
	srv_db *db;
	char data_dir[1024];
	unsigned char pin[32];
	int port;
	int quiet;
	int64_t node_timeout_s; /* = cfg.node_timeout_s */
	srv_config cfg;
	srv_conns *conns;
	srv_limiter *lim_addr, *lim_token, *lim_login;
	srv_kdf *kdf;              /* password hashing off the loop; NULL: inline (fuzzer, tools) */
	struct event *flush_ev;    /* commits the group and sends the held replies */
	struct srv_held *held;     /* replies waiting for the group commit */
	size_t n_held;
	/* Long-poll: fetches that found no work wait here (oldest first) until work may have
	 * appeared (work_hint, set by the handlers that make work) or their time is up. A NULL
	 * wake_ev (the fuzzer, srv_http_handle callers) answers every fetch at once. */
	struct srv_waiter *waiters;
	size_t n_waiters, max_waiters;
	int work_hint;
	struct event *wake_ev;
	uint64_t commits, grouped; /* group commits done, and the requests they carried */
	srv_rate rate;
	uint64_t requests;
	srv_route_stats route_stats[SRV_ROUTES_MAX + 1]; /* the last one: no route matched */
	uint64_t latency[SRV_LATENCY_BUCKETS + 1];      /* cumulative histogram, +Inf last */
	struct srv_boinc *boinc; /* BOINC support (srv_boinc.h); NULL: its routes answer 404 */
} srv_ctx;

/* A request as it came in, without evhttp types, so tests and fuzzers can make one. */
typedef struct srv_call {
	enum evhttp_cmd_type method;
	const char *path;
	const char *authorization;    /* header value or NULL */
	const char *content_encoding; /* header value or NULL */
	const char *host;             /* header value or NULL */
	const char *query;            /* the URI's query string (after '?') or NULL */
	const char *range;            /* the Range header or NULL (downloads) */
	const char *peer;             /* the client's address, for rate limits (NULL: none) */
	const unsigned char *body;
	size_t body_len;
} srv_call;

/* One request as handlers see it. */
typedef struct srv_req {
	const srv_call *call;
	srv_principal who;
	json_t *body;    /* the parsed body object (routes that take one), else NULL */
	int64_t id;      /* the {id} of the path, if the route has one */
	char hash[65];   /* the {hash} of the path (64 lowercase hex digits), if the route has one */
	char name[SRV_NAME_MAX]; /* the {name} of the path (a file name), if the route has one */
	char content_range[80];  /* a 206 reply's Content-Range */
	const unsigned char *in; /* BODY_RAW routes: the body's bytes (inflated if gzip) */
	size_t in_len;
	unsigned char *in_owned; /* an inflated body, freed by srv_req_clear */
	int64_t now;
	int status;      /* success status; 200 unless the handler sets 201 */
	json_t *reply;   /* set by the handler on success; the dispatcher sends and frees it */
	char *text;      /* or a text reply (malloc'd, freed by the dispatcher)... */
	const unsigned char *raw; /* ...or static bytes (an embedded file) */
	size_t raw_len;
	unsigned char *bytes;     /* ...or bytes of any kind (malloc'd, freed by the dispatcher) */
	size_t bytes_len;
	const char *content_type; /* for text and raw replies */
	double retry_after; /* seconds, with TS_ERR_RATE_LIMITED */
	char why[256];   /* on error: the message the client sees */
	/* Set by srv_http_kdf: the reply waits for this job, then kdf_cont finishes the request. */
	srv_pw_job *kdf_job;
	ts_err (*kdf_cont)(srv_ctx *ctx, struct srv_req *r, srv_pw_job *job);
	/* Long-poll: a fetch handler with nothing to hand out sets wait_until (monotonic seconds)
	 * and no reply; the dispatcher parks the request until then (see srv_ctx.waiters).
	 * rerun: this is a parked request run again (no rate limits, same deadline). */
	double wait_until;
	int rerun;
} srv_req;

/* A handler returns TS_OK with r->reply set, or an error with r->why filled in; or it ends in
 * srv_http_kdf, whose result it returns. */
typedef ts_err (*srv_handler)(srv_ctx *ctx, srv_req *r);
/* The rest of a handler after its password KDF: runs on the loop with the job done (it may
 * use the store; it must not free the job) and returns what a handler returns. */
typedef ts_err (*srv_kdf_cont)(srv_ctx *ctx, srv_req *r, srv_pw_job *job);

/* Runs job (taking it: it is freed whatever happens) off the loop on ctx->kdf, and then cont
 * on the loop; the dispatcher keeps the request meanwhile and sends cont's reply through the
 * same path as any other (group commit included). A handler returns this call's result as
 * its own. When every KDF slot is taken: TS_ERR_RATE_LIMITED (429, Retry-After). Without a
 * pool (ctx->kdf NULL: the fuzzer, srv_http_handle callers) job and cont run inline, now. */
ts_err srv_http_kdf(srv_ctx *ctx, srv_req *r, srv_pw_job *job, srv_kdf_cont cont);

enum srv_body { BODY_NONE = 0, BODY_JSON = 1, BODY_OPTIONAL = 2, BODY_RAW = 3 };

/* A row of the route table: every check a route needs is read from it before its handler runs. */
typedef struct srv_route {
	enum evhttp_cmd_type method;
	const char *path; /* "{id}" matches one positive integer segment, "{hash}" a SHA-256 in hex */
	srv_handler handler;
	int roles;        /* enum srv_role bits, or ROLE_ANY */
	enum srv_body body;
} srv_route;

/* The route table (for tests and metrics); *n gets its length. */
const srv_route *srv_http_routes(size_t *n);

/* The latency histogram's upper bounds in seconds. */
extern const double srv_latency_bounds[SRV_LATENCY_BUCKETS];

/* Binds host:port (port 0: any free port, stored in ctx->port) and serves on ctx->base with
 * the limits of ctx->cfg. */
ts_err srv_http_start(srv_ctx *ctx, const char *host, int port);
/* Routes, authorizes, parses and handles one request into r (status and reply, text or raw
 * bytes), exactly as a request over the network would be; *route_index gets the route's row
 * (SRV_ROUTES_MAX when none matched). The caller sends the reply and calls srv_req_clear.
 * With ctx->kdf set, a handler may leave r->kdf_job set: then there is no reply yet, and the
 * caller must hand r to the pool as srv_http's dispatcher does. */
void srv_http_handle(srv_ctx *ctx, const srv_call *call, srv_req *r, size_t *route_index);
void srv_req_clear(srv_req *r);

/* Polices connections (deadlines and caps) and answers long-polls whose time is up; run from a
 * timer about once a second. */
void srv_http_sweep(srv_ctx *ctx);
/* Work may have appeared (a job submitted, a unit that wants another replica, leases released):
 * the waiting fetches are run again, soon, after the requests ready now. */
void srv_http_work_hint(srv_ctx *ctx);
void srv_http_stop(srv_ctx *ctx);

/* Handlers (srv_api.c, srv_work.c). */
ts_err api_healthz(srv_ctx *ctx, srv_req *r);
ts_err api_login(srv_ctx *ctx, srv_req *r);
ts_err api_job_submit(srv_ctx *ctx, srv_req *r);
ts_err api_job_list(srv_ctx *ctx, srv_req *r);
ts_err api_job_get(srv_ctx *ctx, srv_req *r);
ts_err api_job_cancel(srv_ctx *ctx, srv_req *r);
ts_err api_enroll_token(srv_ctx *ctx, srv_req *r);
ts_err api_node_enroll(srv_ctx *ctx, srv_req *r);
ts_err api_node_list(srv_ctx *ctx, srv_req *r);
ts_err api_node_disable(srv_ctx *ctx, srv_req *r);
ts_err api_node_enable(srv_ctx *ctx, srv_req *r);
ts_err api_node_heartbeat(srv_ctx *ctx, srv_req *r);
ts_err api_work_fetch(srv_ctx *ctx, srv_req *r);
/* Programs (srv_prog.c). */
ts_err api_kernels(srv_ctx *ctx, srv_req *r);
ts_err api_file_put(srv_ctx *ctx, srv_req *r);
ts_err api_file_get(srv_ctx *ctx, srv_req *r);
ts_err api_job_output(srv_ctx *ctx, srv_req *r);
ts_err api_job_outputs(srv_ctx *ctx, srv_req *r);
ts_err api_user_grant(srv_ctx *ctx, srv_req *r);
ts_err api_user_revoke(srv_ctx *ctx, srv_req *r);
ts_err api_work_report(srv_ctx *ctx, srv_req *r);
ts_err api_me(srv_ctx *ctx, srv_req *r);
ts_err api_logout(srv_ctx *ctx, srv_req *r);
ts_err api_user_list(srv_ctx *ctx, srv_req *r);
ts_err api_user_add(srv_ctx *ctx, srv_req *r);
ts_err api_user_disable(srv_ctx *ctx, srv_req *r);
ts_err api_user_enable(srv_ctx *ctx, srv_req *r);
ts_err api_user_password(srv_ctx *ctx, srv_req *r);
ts_err api_user_delete(srv_ctx *ctx, srv_req *r);
ts_err api_token_list(srv_ctx *ctx, srv_req *r);
ts_err api_token_create(srv_ctx *ctx, srv_req *r);
ts_err api_token_revoke(srv_ctx *ctx, srv_req *r);
ts_err api_enroll_list(srv_ctx *ctx, srv_req *r);
ts_err api_enroll_revoke(srv_ctx *ctx, srv_req *r);
ts_err api_enroll_disable_nodes(srv_ctx *ctx, srv_req *r);
ts_err api_stats(srv_ctx *ctx, srv_req *r);
ts_err api_job_units(srv_ctx *ctx, srv_req *r);
ts_err api_metrics(srv_ctx *ctx, srv_req *r);
/* BOINC (srv_boinc.c, srv_boinc_files.c). */
ts_err api_boinc_master(srv_ctx *ctx, srv_req *r);
ts_err api_boinc_scheduler(srv_ctx *ctx, srv_req *r);
ts_err api_boinc_download(srv_ctx *ctx, srv_req *r);
ts_err api_boinc_upload(srv_ctx *ctx, srv_req *r);
/* Serves an embedded web/ file for a GET path, or TS_ERR_NOT_FOUND. */
ts_err srv_assets_serve(const char *path, srv_req *r);

#endif
