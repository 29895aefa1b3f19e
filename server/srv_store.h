/* srv_store: typed rows of the work tables. Each row kind is decoded in one place, the state
 * enums of workunits/wu.h are bound here, and every step returns an error: a failed read is
 * never taken for "no row" (TS_ERR_UNAVAILABLE when the store is busy, else TS_ERR_DB).
 *
 * The work handlers (srv_lease.c, srv_report.c) read rows into wu_unit / wu_replica, change
 * them only through wu_ transitions, and write them back with the _put functions. */
#ifndef SRV_STORE_H
#define SRV_STORE_H

#include <stdint.h>

#include <jansson.h>

#include "kern.h"
#include "srv_db.h"
#include "ts_err.h"
#include "wu.h"

/* A job row (Q_JOB_GET). Strings are owned by the struct: srv_store_job_free. */
typedef struct srv_job {
	int64_t id, owner_id;
	char owner[80], kernel[64], state[16];
	char *params, *result, *error; /* JSON texts and the failure reason; may be NULL */
	wu_split split;
	uint64_t next_seq, units_done;
	int replication, quorum, adaptive;
	int64_t deadline_s;
	uint64_t acc[2];
	double compute_s;
	int64_t created_at, started_at, finished_at; /* 0: not yet */
} srv_job;

/* TS_ERR_NOT_FOUND when there is no such job. */
ts_err srv_store_job(srv_db *db, int64_t id, srv_job *out);
void srv_store_job_free(srv_job *j);

/* A job as the work routes use it: its row, kernel and parsed params. */
typedef struct srv_work_job {
	srv_job row;
	const kern *k;
	json_t *params;
	kern_args args;
	double wall_pending; /* reported compute time not yet added to the job's compute_s */
	int dirty;           /* its units_done and aggregate changed: srv_store_flush writes them */
} srv_work_job;

/* A node's standing changes within one request, written once by srv_store_flush. */
typedef struct srv_node_delta {
	int64_t node;
	int valid, invalid, counted;
	int reset;      /* its streak restarts from 0... */
	int streak_add; /* ...then grows by this (the valid results after the last invalid one) */
} srv_node_delta;
#define SRV_NODE_DELTAS 16

/* The jobs one request touches, each loaded once: the units of a fetch or report (64 at most),
 * and room for the jobs a caught liar's results belong to. */
#define SRV_JOB_CACHE 96
typedef struct srv_job_cache {
	srv_work_job jobs[SRV_JOB_CACHE];
	int n;
	int made_work; /* the request gave other nodes work (a unit wants a replica): wake waiters */
	srv_node_delta nodes[SRV_NODE_DELTAS];
	int n_nodes;
} srv_job_cache;

/* Writes what a request accumulated: each touched job's units_done, aggregate and compute time,
 * and each node's standing (one write each, not one per unit). Call before the request ends,
 * and before anything reads those columns from the store. */
ts_err srv_store_flush(srv_db *db, srv_job_cache *c);

/* The job from the cache or the store. A job whose kernel or params this server cannot load
 * fails there and then (alone, with its reason) and *out is NULL with TS_OK; store errors are
 * returned, and TS_ERR_INTERNAL when the cache is full (srv_job_cache_full tells first). */
ts_err srv_store_work_job(srv_db *db, srv_job_cache *c, int64_t id, int64_t now, srv_work_job **out);
void srv_job_cache_free(srv_job_cache *c);
int srv_job_cache_full(const srv_job_cache *c);

/* Unit rows. srv_store_unit: TS_ERR_NOT_FOUND when there is none. */
ts_err srv_store_unit(srv_db *db, int64_t id, wu_unit *out);
ts_err srv_store_unit_insert(srv_db *db, wu_unit *u); /* sets u->id */
ts_err srv_store_unit_put(srv_db *db, const wu_unit *u);

/* Replica rows. srv_store_replica_of: the node's replica of a unit, TS_ERR_NOT_FOUND if none. */
ts_err srv_store_replica(srv_db *db, int64_t id, wu_replica *out);
ts_err srv_store_replica_of(srv_db *db, int64_t unit, int64_t node, wu_replica *out);
ts_err srv_store_replica_insert(srv_db *db, wu_replica *r, int64_t now); /* sets r->id */
ts_err srv_store_replica_put(srv_db *db, const wu_replica *r);
/* srv_store_replica_put with a report's compute time and arrival. */
ts_err srv_store_replica_put_report(srv_db *db, const wu_replica *r, double wall_s, int64_t now);
/* The unit's reported replicas (at most max), for judging. */
ts_err srv_store_replicas_reported(srv_db *db, int64_t unit, wu_replica *out, int max, int *n);

/* Up to max integer first columns of statement q bound with v[0..nv). */
ts_err srv_store_ids(srv_db *db, enum srv_stmt q, const int64_t *v, int nv, int64_t *ids, int max, int *n);
#define SRV_IDS(db, q, ids, max, n, ...)                                                           \
	srv_store_ids(db, q, (const int64_t[]){__VA_ARGS__},                                       \
		      (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), ids, max, n)

/* The node's standing changes by t (kept in c until srv_store_flush). */
ts_err srv_store_node_trust(srv_db *db, srv_job_cache *c, int64_t node, const wu_trust *t);

/* A node's fetch profile: cores, measured rates (JSON, owned: json_decref), streak and the
 * volunteer it belongs to. */
typedef struct srv_node_info {
	int cores;
	json_t *rates;
	int64_t streak, volunteer;
	int64_t slots, langs; /* programs: processes it runs at once and its language bits; 0: none */
} srv_node_info;
ts_err srv_store_node_info(srv_db *db, int64_t node, srv_node_info *out);

/* Ends a job: done with its result, or failed with a reason (its open work dropped). */
ts_err srv_store_job_finish(srv_db *db, srv_work_job *j, const char *error, int64_t now);
/* Drops a job's open units and leases (cancel, failure). */
ts_err srv_store_job_drop(srv_db *db, int64_t job);

#endif
