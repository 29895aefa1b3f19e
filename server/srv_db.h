/* srv_db: the SQLite store: open, schema, prepared statements, transactions.
 *
 * Single-threaded: the event loop owns the connection. Every statement is prepared once at open
 * from the table in srv_db.c, so an SQL error shows at start-up, not on a request. */
#ifndef SRV_DB_H
#define SRV_DB_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "ts_err.h"

enum srv_stmt {
	Q_USER_BY_NAME,
	Q_USER_INSERT,
	Q_USER_LIST,
	Q_USER_GET,
	Q_USER_SET_DISABLED,
	Q_USER_SET_PASSWORD,
	Q_USER_DELETE,
	Q_USER_OTHER_ADMINS,
	Q_USER_OPEN_JOBS,
	Q_TOKEN_REVOKE_USER,
	Q_TOKEN_REVOKE,
	Q_TOKEN_GET,
	Q_TOKEN_LIST,
	Q_ENROLL_LIST,
	Q_STATS_NODES,
	Q_STATS_JOBS,
	Q_STATS_FAILURES,
	Q_STATS_UNITS,
	Q_STATS_PENDING,
	Q_JOB_UNITS,
	Q_COMPACT_REPLICAS,
	Q_COMPACT_UNITS,
	Q_TOKEN_BY_HASH,
	Q_TOKEN_INSERT,
	Q_TOKEN_USE,
	Q_NODE_INSERT,
	Q_NODE_SEEN,
	Q_NODE_LIST,
	Q_NODE_GET,
	Q_NODE_TRUST,
	Q_NODE_SET_DISABLED,
	Q_NODE_RELEASE,
	Q_NODE_INFO,
	Q_NODE_SET_RATES,
	Q_LOST_RELEASE,
	Q_JOB_INSERT,
	Q_JOB_GET,
	Q_JOB_LIST_ALL,
	Q_JOB_LIST_OWNER,
	Q_JOB_CANCEL,
	Q_JOB_NEXT_OPEN,
	Q_JOB_ADVANCE,
	Q_JOB_START,
	Q_JOB_FED,
	Q_JOB_ACCOUNT,
	Q_JOB_FINISH,
	Q_JOB_LEASED,
	Q_JOB_BY_NODE,
	Q_UNIT_INSERT,
	Q_UNIT_GET,
	Q_UNIT_NEEDY,
	Q_UNIT_NEEDY_SPAN,
	Q_UNIT_PUT,
	Q_REPLICA_EXPIRING,
	Q_REPLICA_GET,
	Q_REPLICA_PUT_REPORT,
	Q_REPLICA_MINE_EXPIRED,
	Q_UNIT_LARGEST,
	Q_UNIT_INFLIGHT,
	Q_UNIT_DROP_JOB,
	Q_REPLICA_DROP_JOB,
	Q_REPLICA_INSERT,
	Q_REPLICA_MINE,
	Q_REPLICA_RECHECK,
	Q_REPLICA_FIND,
	Q_REPLICA_PUT,
	Q_REPLICA_REPORTED,
	Q_JOB_VALID_PARTIALS,
	Q_NODE_SET_PROGRAMS,
	Q_JOB_SET_NEEDS,
	Q_FILE_INSERT,
	Q_FILE_OWN,
	Q_FILE_USER_BYTES,
	Q_FILE_OWNED_SIZE,
	Q_FILE_GET,
	Q_FILE_NODE_MAY,
	Q_JOB_FILE_INSERT,
	Q_OUTPUT_INSERT,
	Q_OUTPUT_CANON,
	Q_OUTPUT_OF_UNIT,
	Q_USER_MAY_PROGRAMS,
	Q_USER_SET_PROGRAMS,
	Q_JOB_PROGRAM_OFFER,
	Q_UNIT_STRAGGLERS,
	Q_VOLUNTEERS_ONLINE,
	Q_NODES_OF_VOLUNTEER,
	Q_HEALTH_PUT,
	Q_HEALTH_ONLINE,
	Q__COUNT
};

typedef struct srv_db srv_db;

/* Opens (create: also creates and applies the schema) the store at path. A store at an older
 * schema version is first copied to path.before-vN (N its version), then upgraded in one
 * transaction; a failed upgrade leaves it unchanged. A store newer than this binary is refused
 * untouched. Each case is logged to stderr. */
ts_err srv_db_open(const char *path, int create, srv_db **out);
void srv_db_close(srv_db *db);
/* The newest schema version this binary knows (the last schema/NNN_*.sql). */
int srv_db_schema_latest(void);

/* The prepared statement, reset and with its bindings cleared. Owned by db. */
sqlite3_stmt *srv_db_stmt(srv_db *db, enum srv_stmt id);
sqlite3 *srv_db_handle(srv_db *db);

/* Runs a statement that returns no rows (or ignores them) to completion. A constraint
 * violation is TS_ERR_CONFLICT. */
ts_err srv_db_exec(srv_db *db, sqlite3_stmt *st);

/* A request's transaction. begin is BEGIN IMMEDIATE; rollback never fails. Transactions nest:
 * only the outermost begin/commit act, and rollback ends them all. The dispatcher opens one
 * around every handler that may write, so a handler's writes commit or roll back whole.
 * With group commit on, a request's transaction is a savepoint inside one group transaction
 * that srv_db_flush commits for many requests at once; the caller must hold every reply that
 * depends on the store until then (srv_db_pending tells). */
ts_err srv_db_begin(srv_db *db);
ts_err srv_db_commit(srv_db *db);
void srv_db_rollback(srv_db *db);
void srv_db_set_group(srv_db *db, int on);
/* Whether a transaction is open (srv_db_begin without its commit). */
int srv_db_in_tx(const srv_db *db);
/* Whether a group transaction holds uncommitted work. */
int srv_db_pending(const srv_db *db);
/* Commits the group transaction; on failure it is rolled back and the error returned. */
ts_err srv_db_flush(srv_db *db);

/* Runs statement q bound with integers ?1..?n: SRV_EXEC(db, Q_X, a, b, ...). */
ts_err srv_db_exec_ints(srv_db *db, enum srv_stmt q, const int64_t *v, size_t n);
#define SRV_EXEC(db, q, ...)                                                                       \
	srv_db_exec_ints(db, q, (const int64_t[]){__VA_ARGS__},                                    \
			 sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t))

/* The first column of a one-row statement q bound with integers into *out (def when there is
 * no row): SRV_QUERY_INT(db, Q_X, def, &out, a, b, ...). */
ts_err srv_db_query_int(srv_db *db, enum srv_stmt q, const int64_t *v, size_t n, int64_t def, int64_t *out);
#define SRV_QUERY_INT(db, q, def, out, ...)                                                        \
	srv_db_query_int(db, q, (const int64_t[]){__VA_ARGS__},                                    \
			 sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t), def, out)

/* The error for a failed step's SQLite code rc (logged with what): TS_ERR_UNAVAILABLE for what a
 * retry may cure (busy, locked, I/O...), TS_ERR_CONFLICT for a constraint, else TS_ERR_DB. */
ts_err srv_db_error(srv_db *db, int rc, const char *what);

/* Steps a statement: *row says whether it is on a row. At the end or on an error it is reset;
 * an error is TS_ERR_UNAVAILABLE (busy, I/O: retry) or TS_ERR_DB, never "no row". */
ts_err srv_db_step(srv_db *db, sqlite3_stmt *st, int *row);

/* Binds a text that may be NULL. */
void srv_db_bind_text(sqlite3_stmt *st, int i, const char *s);

#endif
