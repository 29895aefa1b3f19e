/* srv_view: the JSON views of jobs and nodes that the API answers with. */
#ifndef SRV_VIEW_H
#define SRV_VIEW_H

#include <stdint.h>

#include <jansson.h>

#include "srv_db.h"
#include "ts_err.h"


/* Builds job id's view into *out (with the per-node unit counts if with_nodes); *owner gets its
 * owner's user id when owner is not NULL. Nodes unseen for lost_s do not count as online
 * volunteers. TS_ERR_NOT_FOUND when there is no such job. */
ts_err srv_view_job(srv_db *db, int64_t id, int with_nodes, int64_t now, int64_t lost_s, json_t **out,
		    int64_t *owner);

/* The view of the node in the current row of Q_NODE_LIST or Q_NODE_GET; a node unseen for
 * lost_s shows as lost. */
json_t *srv_view_node(sqlite3_stmt *row, int64_t now, int64_t lost_s);

#endif
