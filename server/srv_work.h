/* srv_work: leases, results and node liveness (the work routes are declared in srv_http.h). */
#ifndef SRV_WORK_H
#define SRV_WORK_H

#include <stdint.h>

#include "srv_http.h"

/* Ends the leases of nodes unseen for ctx->node_timeout_s; run from a timer. */
ts_err srv_work_sweep(srv_ctx *ctx, int64_t now);

/* Disables (its leases end at once) or enables a node, in one transaction. */
ts_err srv_work_node_set_disabled(srv_ctx *ctx, int64_t node, int disabled, int64_t now);

#endif
