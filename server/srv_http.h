/* srv_http: the HTTPS front: evhttp over bufferevent_openssl, the route table, bodies, replies.
 *
 * A request goes: route match (404/405) -> bearer check against the route's roles (401/403),
 * before the body is parsed -> body inflate (gzip) and JSON parse (413/400) -> handler ->
 * exactly one reply, sent by srv_http's dispatcher, never by the handler. */
#ifndef SRV_HTTP_H
#define SRV_HTTP_H

#include <stdint.h>

#include <jansson.h>
#include <openssl/ssl.h>

#include "srv_auth.h"
#include "srv_db.h"
#include "ts_err.h"

#define SRV_MAX_BODY (1 << 20)      /* bytes, plain or inflated */
/* evhttp drops bodies over this itself (a bare 413); between SRV_MAX_BODY and this we answer a
 * JSON 413, since libevent 2.1 has no hook to shape its own errors. */
#define SRV_MAX_BODY_HARD (8 << 20)
#define SRV_MAX_HEADERS 16384       /* bytes of request headers */
#define SRV_GZIP_MIN 1024           /* replies smaller than this go uncompressed */
#define SRV_IDLE_TIMEOUT_S 60

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
	int64_t node_timeout_s; /* a node unseen this long is lost; its leases are released */
	uint64_t requests;
} srv_ctx;

/* One request as handlers see it. */
typedef struct srv_req {
	struct evhttp_request *ev;
	srv_principal who;
	json_t *body;    /* the parsed body object (routes that take one), else NULL */
	int64_t id;      /* the {id} of the path, if the route has one */
	int64_t now;
	int status;      /* success status; 200 unless the handler sets 201 */
	json_t *reply;   /* set by the handler on success; the dispatcher sends and frees it */
	char why[256];   /* on error: the message the client sees */
} srv_req;

/* A handler returns TS_OK with r->reply set, or an error with r->why filled in. */
typedef ts_err (*srv_handler)(srv_ctx *ctx, srv_req *r);

/* Binds host:port (port 0: any free port, stored in ctx->port) and serves on ctx->base. */
ts_err srv_http_start(srv_ctx *ctx, const char *host, int port);
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
ts_err api_work_report(srv_ctx *ctx, srv_req *r);

#endif
