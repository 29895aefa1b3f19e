/* srv_work: node liveness (the work routes are declared in srv_http.h; leasing is srv_lease.c,
 * reporting srv_report.c). */
#ifndef SRV_WORK_H
#define SRV_WORK_H

#include <stdint.h>

#include "srv_http.h"

/* Ends the leases of nodes unseen for ctx->node_timeout_s; run from a timer. */
ts_err srv_work_sweep(srv_ctx *ctx, int64_t now);

/* Disables (its leases end at once) or enables a node, in the caller's transaction (the
 * dispatcher's: it rolls back on error). */
ts_err srv_work_node_set_disabled(srv_ctx *ctx, int64_t node, int disabled, int64_t now);

/* Disables every node enrolled with one enrollment token (one volunteer), in the caller's
 * transaction; *n gets how many. */
ts_err srv_work_volunteer_disable(srv_ctx *ctx, int64_t enroll_token, int64_t now, int *n);

/* Records that the request's node was seen now (once per second at most). */
/* Leasing (srv_lease.c): the checks of a report's "fetch" object (a fetch body without
 * wait_s), and filling a batch of units for the requesting node as a fetch does. */
ts_err srv_lease_check(const json_t *spec, char *why, size_t whylen);
ts_err srv_lease_fill(srv_ctx *ctx, srv_req *r, const json_t *spec, json_t **units);
ts_err srv_work_node_seen(srv_db *db, srv_req *r);

#endif
