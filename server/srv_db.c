#include "srv_db.h"

#include "srv_backup.h"
#include "wu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


extern const char srv_schema_sql[]; /* schema/NNN_*.sql, embedded by cmake/embed.cmake */

/* Transaction control runs on every request: prepared once like everything else. */
enum { TX_BEGIN, TX_COMMIT, TX_SAVEPOINT, TX_RELEASE, TX_ROLLBACK_TO, TX__COUNT };
static const char *const tx_sql[TX__COUNT] = {
	[TX_BEGIN] = "BEGIN IMMEDIATE",
	[TX_COMMIT] = "COMMIT",
	[TX_SAVEPOINT] = "SAVEPOINT request",
	[TX_RELEASE] = "RELEASE request",
	[TX_ROLLBACK_TO] = "ROLLBACK TO request",
};

struct srv_db {
	sqlite3 *h;
	sqlite3_stmt *st[Q__COUNT];
	int group;      /* group commit: requests' transactions are savepoints of one transaction */
	int group_open; /* that transaction is open and holds work not yet committed */
	int depth;        /* nested srv_db_begin calls open now */
	int group_failed; /* the group transaction was lost: its flush reports failure */
	sqlite3_stmt *tx[TX__COUNT];
};

/* The states of workunits/wu.h as SQL literals (a partial index is only used by a query that
 * names its literal): each is checked against its enum here. */
#define U_OPEN "1"
#define U_VALID "2"
#define U_DROPPED "3"
#define R_LEASED "1"
#define R_REPORTED "2"
#define R_DROPPED "3"
#define R_EXPIRED "4"
_Static_assert(WU_OPEN == 1 && WU_VALID == 2 && WU_DROPPED == 3, "unit states in SQL");
_Static_assert(WU_R_LEASED == 1 && WU_R_REPORTED == 2 && WU_R_DROPPED == 3 && WU_R_EXPIRED == 4,
	       "replica states in SQL");
_Static_assert(WU_J_VALID == 1, "judgements in SQL");

#define NODE_COLS \
	"n.id, n.name, n.platform, n.cores, n.disabled, n.created_at, n.last_seen, n.units_done," \
	" n.n_valid, n.n_invalid, n.streak, n.rates, n.volunteer, h.at, h.load1, h.mem_total_bytes," \
	" h.mem_available_bytes, h.temp_c, h.uptime_s, h.paused"
#define REPLICA_COLS "id, unit_id, node_id, volunteer, state, leases, verdict, counted, deadline, res0, res1"
#define UNIT_COLS \
	"id, job_id, seq, start, count, state, quorum, wanted, max_results, n_results, missing, res0, res1," \
	" valid_at, valid_rank"

/* Every statement the server runs. */
static const char *const stmt_sql[Q__COUNT] = {
	[Q_USER_BY_NAME] = "SELECT id, pw_hash, role, disabled FROM users WHERE name = ?1",
	[Q_USER_INSERT] = "INSERT INTO users (name, pw_hash, role, created_at) VALUES (?1, ?2, ?3, ?4)",
	[Q_USER_LIST] = "SELECT u.id, u.name, u.role, u.disabled, u.created_at,"
			" (SELECT count(*) FROM jobs j WHERE j.owner_id = u.id), u.may_run_programs"
			" FROM users u WHERE u.deleted = 0 ORDER BY u.id",
	[Q_USER_GET] = "SELECT u.id, u.name, u.role, u.disabled, u.created_at,"
		       " (SELECT count(*) FROM jobs j WHERE j.owner_id = u.id), u.may_run_programs"
		       " FROM users u WHERE u.id = ?1 AND u.deleted = 0",
	[Q_USER_SET_DISABLED] = "UPDATE users SET disabled = ?2 WHERE id = ?1 AND deleted = 0",
	[Q_USER_SET_PASSWORD] = "UPDATE users SET pw_hash = ?2 WHERE id = ?1 AND deleted = 0",
	[Q_USER_DELETE] = "UPDATE users SET deleted = 1, disabled = 1, name = name || '#deleted#' || id"
			  " WHERE id = ?1 AND deleted = 0",
	[Q_USER_OTHER_ADMINS] = "SELECT count(*) FROM users WHERE role = 'admin' AND disabled = 0"
				" AND deleted = 0 AND id != ?1",
	[Q_USER_OPEN_JOBS] = "SELECT id FROM jobs WHERE owner_id = ?1 AND state IN ('queued', 'running')",
	[Q_TOKEN_REVOKE_USER] = "UPDATE tokens SET revoked = 1 WHERE user_id = ?1"
				" AND kind IN ('session', 'api') AND id != ?2",
	[Q_TOKEN_REVOKE] = "UPDATE tokens SET revoked = 1 WHERE id = ?1",
	[Q_TOKEN_GET] = "SELECT id, kind, user_id FROM tokens WHERE id = ?1",
	[Q_TOKEN_LIST] = "SELECT id, name, created_at, expires_at, revoked FROM tokens"
			 " WHERE user_id = ?1 AND kind = 'api' ORDER BY id",
	[Q_ENROLL_LIST] = "SELECT id, uses_left, expires_at, revoked, created_at FROM tokens"
			  " WHERE kind = 'enroll' ORDER BY id DESC LIMIT 200",
	[Q_STATS_NODES] = "SELECT coalesce(sum(disabled = 0 AND last_seen >= ?1), 0),"
			  " coalesce(sum(disabled = 0 AND last_seen < ?1), 0), coalesce(sum(disabled), 0),"
			  " coalesce(sum(CASE WHEN disabled = 0 AND last_seen >= ?1 THEN cores ELSE 0 END), 0)"
			  " FROM nodes",
	[Q_STATS_JOBS] = "SELECT state, count(*) FROM jobs GROUP BY state",
	[Q_STATS_FAILURES] = "SELECT id, error, finished_at FROM jobs WHERE state = 'failed'"
			     " ORDER BY finished_at DESC LIMIT 5",
	/* From the jobs' counters, so a metrics scrape never scans the units. */
	[Q_STATS_UNITS] = "SELECT 'valid', coalesce(sum(units_done), 0) FROM jobs UNION ALL"
			  " SELECT 'open', coalesce(sum(next_seq - units_done), 0) FROM jobs"
			  " WHERE state IN ('queued', 'running')",
	[Q_STATS_PENDING] = "SELECT coalesce(sum(n_units - next_seq), 0) FROM jobs"
			    " WHERE state IN ('queued', 'running')",
	/* Finished jobs keep their row and result; their units and replicas can go, in batches. */
	[Q_COMPACT_REPLICAS] = "DELETE FROM replicas WHERE rowid IN (SELECT r.rowid FROM replicas r"
			       " JOIN units u ON u.id = r.unit_id JOIN jobs j ON j.id = u.job_id"
			       " WHERE j.state IN ('done', 'failed', 'cancelled') AND j.finished_at < ?1"
			       " LIMIT ?2)",
	[Q_COMPACT_UNITS] = "DELETE FROM units WHERE rowid IN (SELECT u.rowid FROM units u"
			    " JOIN jobs j ON j.id = u.job_id WHERE j.state IN ('done', 'failed', 'cancelled')"
			    " AND j.finished_at < ?1 AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.unit_id = u.id)"
			    " LIMIT ?2)",
	[Q_JOB_UNITS] = "SELECT u.seq, u.start, u.count, u.res0, u.res1, n.name, u.valid_at FROM units u"
			" LEFT JOIN replicas r ON r.unit_id = u.id AND r.counted = 1"
			" LEFT JOIN nodes n ON n.id = r.node_id"
			" WHERE u.job_id = ?1 AND u.state = " U_VALID " ORDER BY u.valid_rank DESC LIMIT 5000",
	[Q_TOKEN_BY_HASH] =
		"SELECT t.hash, t.kind, t.user_id, t.node_id, t.uses_left, t.expires_at, t.revoked,"
		" u.role, u.name, coalesce(u.disabled, n.disabled, 0), t.id, coalesce(n.last_seen, 0)"
		" FROM tokens t LEFT JOIN users u ON u.id = t.user_id"
		" LEFT JOIN nodes n ON n.id = t.node_id WHERE t.hash = ?1",
	[Q_TOKEN_INSERT] = "INSERT INTO tokens (hash, kind, user_id, node_id, uses_left, expires_at,"
			   " created_at, name) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[Q_TOKEN_USE] = "UPDATE tokens SET uses_left = uses_left - 1"
			" WHERE hash = ?1 AND uses_left > 0 AND revoked = 0",
	[Q_NODE_INSERT] = "INSERT INTO nodes (name, platform, cores, created_at, last_seen, rates, volunteer)"
			  " VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)",
	[Q_NODE_INFO] = "SELECT cores, rates, streak, coalesce(volunteer, -id), slots, langs FROM nodes WHERE id = ?1",
	[Q_NODE_SET_RATES] = "UPDATE nodes SET rates = ?2 WHERE id = ?1",
	[Q_NODE_SEEN] = "UPDATE nodes SET last_seen = ?2 WHERE id = ?1",
	/* srv_view_node's columns; the health is srv_health_view's, from column 13. */
	[Q_NODE_LIST] = "SELECT " NODE_COLS " FROM nodes n LEFT JOIN node_health h ON h.node_id = n.id"
			" ORDER BY n.id",
	[Q_NODE_GET] = "SELECT " NODE_COLS " FROM nodes n LEFT JOIN node_health h ON h.node_id = n.id"
		       " WHERE n.id = ?1",
	[Q_NODE_TRUST] = "UPDATE nodes SET n_valid = n_valid + ?2, n_invalid = n_invalid + ?3,"
			   " streak = CASE WHEN ?5 THEN 0 ELSE streak END + ?6, units_done = units_done + ?4 WHERE id = ?1",
	[Q_NODE_SET_DISABLED] = "UPDATE nodes SET disabled = ?2 WHERE id = ?1",
	[Q_NODE_RELEASE] = "UPDATE replicas INDEXED BY replicas_node SET deadline = ?2"
			   " WHERE node_id = ?1 AND state = " R_LEASED " AND deadline > ?2",
	[Q_LOST_RELEASE] = "UPDATE replicas SET deadline = ?1 WHERE state = " R_LEASED " AND deadline > ?1"
			   " AND node_id IN (SELECT id FROM nodes WHERE last_seen < ?2)",
	[Q_JOB_INSERT] =
		"INSERT INTO jobs (owner_id, kernel, params, state, space, unit_size, n_units,"
		" replication, quorum, deadline_s, acc0, acc1, created_at, adaptive)"
		" VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
	[Q_JOB_GET] =
		"SELECT j.id, u.name, j.kernel, j.params, j.state, j.space, j.unit_size, j.n_units,"
		" j.next_seq, j.units_done, j.replication, j.quorum, j.deadline_s, j.acc0, j.acc1,"
		" j.compute_s, j.result, j.error, j.created_at, j.started_at, j.finished_at, j.owner_id,"
		" j.adaptive FROM jobs j JOIN users u ON u.id = j.owner_id WHERE j.id = ?1",
	[Q_JOB_LIST_ALL] = "SELECT id FROM jobs ORDER BY id DESC LIMIT ?1",
	[Q_JOB_LIST_OWNER] = "SELECT id FROM jobs WHERE owner_id = ?1 ORDER BY id DESC LIMIT ?2",
	[Q_JOB_CANCEL] = "UPDATE jobs SET state = 'cancelled', feeding = 0, finished_at = ?2"
			 " WHERE id = ?1 AND state IN ('queued', 'running')",
	/* The oldest feeding job this node can run (slots ?1, language bits ?2). */
	[Q_JOB_NEXT_OPEN] = "SELECT id FROM jobs INDEXED BY jobs_feeding WHERE feeding = 1 AND slots <= ?1"
			    " AND (lang & ?2) = lang ORDER BY id LIMIT 1",
	[Q_JOB_ADVANCE] = "UPDATE jobs SET next_seq = ?2 WHERE id = ?1",
	[Q_JOB_START] = "UPDATE jobs SET state = 'running', started_at = ?2 WHERE id = ?1 AND state = 'queued'",
	[Q_JOB_FED] = "UPDATE jobs SET feeding = 0 WHERE id = ?1",
	/* A request's units_done and aggregate of a job, written once at its end. */
	[Q_JOB_ACCOUNT] = "UPDATE jobs SET units_done = ?2, acc0 = ?3, acc1 = ?4, compute_s = compute_s + ?5"
			  " WHERE id = ?1",
	[Q_JOB_FINISH] = "UPDATE jobs SET state = ?2, result = ?3, error = ?4, finished_at = ?5, feeding = 0"
			 " WHERE id = ?1",
	[Q_JOB_LEASED] = "SELECT count(*) FROM units u WHERE u.job_id = ?1 AND u.state = " U_OPEN " AND EXISTS"
			 " (SELECT 1 FROM replicas r INDEXED BY replicas_unit WHERE r.unit_id = u.id AND r.state = " R_LEASED ")",
	[Q_JOB_BY_NODE] = "SELECT n.id, n.name, count(*) FROM replicas r JOIN units u ON u.id = r.unit_id"
			  " JOIN nodes n ON n.id = r.node_id WHERE u.job_id = ?1 AND r.counted = 1"
			  " GROUP BY n.id ORDER BY n.id",
	[Q_UNIT_INSERT] = "INSERT INTO units (job_id, seq, start, count, state, quorum, wanted, max_results,"
			  " missing) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	[Q_UNIT_GET] = "SELECT " UNIT_COLS " FROM units WHERE id = ?1",
	[Q_UNIT_NEEDY] = /* Units that want a replica and have none with this node or its volunteer, from ?2 to ?3
	 * (the caller starts at a random id, so extra replicas go to no predictable node). */
		"SELECT u.id FROM units u INDEXED BY units_needy WHERE u.state = " U_OPEN " AND u.missing > 0"
		" AND u.id >= ?2 AND u.id < ?3 AND NOT EXISTS (SELECT 1 FROM replicas r INDEXED BY replicas_unit"
		" WHERE r.unit_id = u.id AND (r.node_id = ?1 OR r.volunteer = ?4)) AND EXISTS (SELECT 1 FROM jobs j"
		" WHERE j.id = u.job_id AND j.slots <= ?6 AND (j.lang & ?7) = j.lang) ORDER BY u.id LIMIT ?5",
	[Q_UNIT_NEEDY_SPAN] = "SELECT min(id), max(id) FROM units INDEXED BY units_needy WHERE state = " U_OPEN
			 " AND missing > 0",
	[Q_UNIT_PUT] = "UPDATE units SET state = ?2, quorum = ?3, wanted = ?4, max_results = ?5, n_results = ?6,"
		       " missing = ?7, res0 = ?8, res1 = ?9, valid_at = nullif(?10, 0), valid_rank = nullif(?11, 0)"
		       " WHERE id = ?1",
	[Q_REPLICA_EXPIRING] = "SELECT id FROM replicas WHERE state = " R_LEASED " AND deadline <= ?1 LIMIT 512",
	[Q_REPLICA_GET] = "SELECT " REPLICA_COLS " FROM replicas WHERE id = ?1",
	[Q_REPLICA_MINE_EXPIRED] = "SELECT r.id FROM replicas r INDEXED BY replicas_node JOIN units u ON u.id = r.unit_id"
			  " WHERE r.node_id = ?1 AND r.state = " R_EXPIRED " AND r.leases < ?2 AND u.state = " U_OPEN
			  " AND u.missing > 0 ORDER BY r.id LIMIT ?3",
	[Q_UNIT_LARGEST] = "SELECT res0, res1, count(*) AS c FROM replicas INDEXED BY replicas_unit"
			   " WHERE unit_id = ?1 AND state = " R_REPORTED
			   " GROUP BY res0, res1 ORDER BY c DESC LIMIT 1",
	[Q_UNIT_INFLIGHT] = "SELECT count(*) FROM replicas INDEXED BY replicas_unit WHERE unit_id = ?1 AND state = " R_LEASED,
	[Q_UNIT_DROP_JOB] = "UPDATE units SET state = " U_DROPPED " WHERE job_id = ?1 AND state = " U_OPEN,
	[Q_REPLICA_DROP_JOB] = "UPDATE replicas SET state = " R_DROPPED " WHERE state = " R_LEASED
			       " AND unit_id IN (SELECT id FROM units WHERE job_id = ?1)",
	[Q_REPLICA_INSERT] = "INSERT INTO replicas (unit_id, node_id, volunteer, state, deadline, leases, issued_at)"
			     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[Q_REPLICA_MINE] = "SELECT r.id FROM replicas r INDEXED BY replicas_node"
			   " JOIN units u ON u.id = r.unit_id"
			   " JOIN jobs j ON j.id = u.job_id WHERE r.node_id = ?1 AND r.state = " R_LEASED
			   " AND r.deadline > ?2 AND u.state = " U_OPEN " AND j.state = 'running' ORDER BY r.id LIMIT ?3",
	[Q_REPLICA_RECHECK] = "SELECT r.id FROM replicas r INDEXED BY replicas_node JOIN units u ON u.id = r.unit_id"
			    " JOIN jobs j ON j.id = u.job_id WHERE r.node_id = ?1 AND r.state = " R_REPORTED
			    " AND r.counted = 1 AND u.state = " U_VALID " AND u.quorum = 1 AND j.state = 'running'"
			    " AND j.replication > 1 LIMIT ?2",
	[Q_REPLICA_FIND] = "SELECT " REPLICA_COLS " FROM replicas WHERE unit_id = ?1 AND node_id = ?2",
	[Q_REPLICA_PUT_REPORT] = "UPDATE replicas SET state = ?2, deadline = ?3, leases = ?4, verdict = ?5,"
				 " counted = ?6, res0 = ?7, res1 = ?8, wall_s = ?9, reported_at = ?10 WHERE id = ?1",
	[Q_REPLICA_PUT] = "UPDATE replicas SET state = ?2, deadline = ?3, leases = ?4, verdict = ?5, counted = ?6,"
			     " res0 = ?7, res1 = ?8 WHERE id = ?1",
	[Q_REPLICA_REPORTED] = "SELECT " REPLICA_COLS " FROM replicas INDEXED BY replicas_unit"
			      " WHERE unit_id = ?1 AND state = " R_REPORTED " ORDER BY id",
	/* Stragglers: units in flight on one live lease, quorum 1 and no result yet, of running jobs
	 * that hand out nothing new, that this node's volunteer has no replica of, and that this
	 * node (rates ?4, JSON) would finish before their holder is expected to by its measured
	 * rate (unknown rates: never). */
	[Q_UNIT_STRAGGLERS] = "SELECT u.id FROM replicas r INDEXED BY replicas_lease JOIN units u ON u.id = r.unit_id"
			      " JOIN jobs j ON j.id = u.job_id JOIN nodes n ON n.id = r.node_id"
			      " WHERE r.state = " R_LEASED " AND r.deadline > ?1 AND u.state = " U_OPEN
			      " AND u.quorum = 1 AND u.n_results = 0 AND u.wanted = 1 AND j.feeding = 0"
			      " AND j.state = 'running' AND NOT EXISTS (SELECT 1 FROM replicas m INDEXED BY"
			      " replicas_unit WHERE m.unit_id = u.id AND (m.node_id = ?3 OR m.volunteer = ?2))"
			      " AND (r.issued_at + u.count / json_extract(n.rates, '$.' || j.kernel)"
			      " > ?1 + u.count / json_extract(?4, '$.' || j.kernel)"
			      " OR r.issued_at + u.count / json_extract(n.rates, '$.' || j.kernel) + ?6 < ?1)"
			      " ORDER BY r.issued_at LIMIT ?5",
	/* Distinct volunteers among the nodes seen since ?1: replicas of a unit need as many. */
	[Q_VOLUNTEERS_ONLINE] = "SELECT count(DISTINCT coalesce(volunteer, -id)) FROM nodes"
				" WHERE disabled = 0 AND last_seen >= ?1",
	[Q_NODES_OF_VOLUNTEER] = "SELECT id FROM nodes WHERE volunteer = ?1 AND disabled = 0 LIMIT ?2",
	[Q_JOB_VALID_PARTIALS] = "SELECT res0, res1 FROM units WHERE job_id = ?1 AND state = " U_VALID,
	/* Programs (srv_prog.c). */
	[Q_NODE_SET_PROGRAMS] = "UPDATE nodes SET programs = ?2, slots = ?3, langs = ?4 WHERE id = ?1",
	[Q_JOB_SET_NEEDS] = "UPDATE jobs SET slots = ?2, lang = ?3 WHERE id = ?1",
	[Q_FILE_INSERT] = "INSERT OR IGNORE INTO files (sha256, size, data, created_at) VALUES (?1, ?2, ?3, ?4)",
	[Q_FILE_OWN] = "INSERT OR IGNORE INTO file_owners (sha256, user_id, created_at) VALUES (?1, ?2, ?3)",
	[Q_FILE_USER_BYTES] = "SELECT coalesce(sum(f.size), 0) FROM file_owners o JOIN files f ON f.sha256 = o.sha256"
			      " WHERE o.user_id = ?1",
	[Q_FILE_OWNED_SIZE] = "SELECT f.size FROM file_owners o JOIN files f ON f.sha256 = o.sha256"
			      " WHERE o.user_id = ?1 AND o.sha256 = ?2",
	[Q_FILE_GET] = "SELECT data FROM files WHERE sha256 = ?1",
	/* A node may download a file while it holds a live lease of a job naming it. */
	[Q_FILE_NODE_MAY] = "SELECT 1 FROM job_files jf JOIN units u ON u.job_id = jf.job_id JOIN replicas r"
			    " INDEXED BY replicas_unit ON r.unit_id = u.id AND r.node_id = ?2"
			    " WHERE jf.sha256 = ?1 AND r.state = " R_LEASED " AND r.deadline > ?3 LIMIT 1",
	[Q_JOB_FILE_INSERT] = "INSERT OR IGNORE INTO job_files (sha256, job_id) VALUES (?1, ?2)",
	[Q_OUTPUT_INSERT] = "INSERT OR REPLACE INTO outputs (replica_id, status, stdout, stderr, stdout_truncated,"
			    " stderr_truncated) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	/* The canonical outcome of each settled unit of a job from seq ?2 on: the first reported
	 * replica whose digest is the unit's. */
	[Q_OUTPUT_CANON] = "SELECT u.seq, o.status, o.stdout, o.stderr, o.stdout_truncated, o.stderr_truncated,"
			   " r.node_id FROM units u JOIN replicas r ON r.id = (SELECT min(m.id) FROM replicas m"
			   " INDEXED BY replicas_unit WHERE m.unit_id = u.id AND m.state = " R_REPORTED
			   " AND m.res0 = u.res0 AND m.res1 = u.res1) JOIN outputs o ON o.replica_id = r.id"
			   " WHERE u.job_id = ?1 AND u.state = " U_VALID " AND u.seq >= ?2 ORDER BY u.seq LIMIT ?3",
	[Q_OUTPUT_OF_UNIT] = "SELECT o.status, o.stderr FROM replicas r INDEXED BY replicas_unit JOIN outputs o"
			     " ON o.replica_id = r.id WHERE r.unit_id = ?1 AND r.state = " R_REPORTED
			     " AND r.res0 = ?2 AND r.res1 = ?3 ORDER BY r.id LIMIT 1",
	[Q_USER_MAY_PROGRAMS] = "SELECT may_run_programs FROM users WHERE id = ?1",
	[Q_USER_SET_PROGRAMS] = "UPDATE users SET may_run_programs = ?2 WHERE id = ?1 AND deleted = 0",
	/* A program job's needs, and the most slots an online node with its language offers. */
	[Q_JOB_PROGRAM_OFFER] = "SELECT j.slots, j.lang, (SELECT coalesce(max(n.slots), 0) FROM nodes n WHERE"
				" n.disabled = 0 AND n.last_seen >= ?2 AND (n.langs & j.lang) = j.lang)"
				" FROM jobs j WHERE j.id = ?1 AND j.slots > 0",
	/* Node health (srv_health.c): each heartbeat that has it replaces the row. */
	[Q_HEALTH_PUT] = "INSERT OR REPLACE INTO node_health (node_id, at, load1, mem_total_bytes,"
			 " mem_available_bytes, temp_c, uptime_s, paused) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	/* ... and the gauges of the nodes online now (seen since ?1, not disabled). */
	[Q_HEALTH_ONLINE] = "SELECT n.id, n.name, h.load1, h.mem_total_bytes, h.mem_available_bytes, h.temp_c,"
			    " h.uptime_s, h.paused FROM node_health h JOIN nodes n ON n.id = h.node_id"
			    " WHERE n.disabled = 0 AND n.last_seen >= ?1 ORDER BY n.id",
};

static ts_err db_exec_sql(sqlite3 *h, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(h, sql, NULL, NULL, &msg) != SQLITE_OK) {
		fprintf(stderr, "%s: %s\n", __func__, msg ? msg : sqlite3_errmsg(h));
		sqlite3_free(msg);
		return TS_ERR_DB;
	}
	return TS_OK;
}

/* The store's schema version, or -1 with SQLite's reason printed. */
static int db_user_version(sqlite3 *h)
{
	sqlite3_stmt *st = NULL;
	int v = -1, rc = sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	if (v < 0)
		fprintf(stderr, "srv_db: reading the schema version: %s\n", sqlite3_errmsg(h));
	sqlite3_finalize(st);
	return v;
}

static void db_fault(sqlite3_context *c, int argc, sqlite3_value **argv)
{
	sqlite3_result_error(c, "injected fault (TESSERA_FAULT_SQL)", -1);
}

/* schema/NNN_*.sql, concatenated in order, each starting with a line "-- @version N". A store
 * at version v gets the sections after v, in one transaction. */
#define VERSION_MARK "-- @version "

int srv_db_schema_latest(void)
{
	int latest = 0;
	for (const char *p = strstr(srv_schema_sql, VERSION_MARK); p; p = strstr(p + 1, VERSION_MARK))
		latest = atoi(p + strlen(VERSION_MARK));
	return latest;
}

/* A store newer than this binary is refused before anything touches it: its schema may mean
 * things this server does not know. */
static ts_err db_refuse_newer(int version, int latest, const char *path)
{
	if (version <= latest)
		return TS_OK;
	fprintf(stderr, "srv_db: %s has schema version %d, written by a newer tessera-server; this one knows"
		" up to %d. Run the newer server, or restore a copy made before the upgrade (%s.before-v%d,"
		" docs/OPERATIONS.md)\n", path, version, latest, path, latest);
	return TS_ERR_DB;
}

/* The sections after version in one transaction: all of them or none. Before it, a copy of the
 * store as it is goes to path.before-vN, the way back to the old binary. */
static ts_err db_migrate(sqlite3 *h, const char *path, int version)
{
	int latest = srv_db_schema_latest(), failed_at = 0;
	char why[1024] = "", backup[4200];
	if (version == latest)
		return TS_OK;
	ts_err result = db_refuse_newer(version, latest, path);
	if (result)
		return result;
	if (version > 0) {
		snprintf(backup, sizeof(backup), "%s.before-v%d", path, version);
		result = srv_backup_copy(h, backup, why, sizeof(why));
		if (result) {
			fprintf(stderr, "srv_db: not upgrading %s from schema version %d: the copy before it failed"
				" (%s); the store is unchanged\n", path, version, why);
			return result;
		}
		fprintf(stderr, "srv_db: %s is at schema version %d; copied it to %s before upgrading it to %d\n",
			path, version, backup, latest);
	}
	result = db_exec_sql(h, "BEGIN");
	for (const char *p = strstr(srv_schema_sql, VERSION_MARK); p && !result;) {
		const char *next = strstr(p + 1, VERSION_MARK);
		int v = atoi(p + strlen(VERSION_MARK));
		if (v > version) {
			size_t len = next ? (size_t)(next - p) : strlen(p);
			char *sql = strndup(p, len), set[64], *msg = NULL;
			snprintf(set, sizeof(set), "PRAGMA user_version=%d", v);
			if (!sql)
				result = TS_ERR_NOMEM;
			else if (sqlite3_exec(h, sql, NULL, NULL, &msg) != SQLITE_OK ||
				 sqlite3_exec(h, set, NULL, NULL, &msg) != SQLITE_OK)
				result = TS_ERR_DB;
			if (result) {
				failed_at = v;
				snprintf(why, sizeof(why), "%s", msg ? msg : sqlite3_errmsg(h));
			}
			sqlite3_free(msg);
			free(sql);
		}
		p = next;
	}
	if (!result)
		result = db_exec_sql(h, "COMMIT");
	if (result) {
		db_exec_sql(h, "ROLLBACK");
		if (version > 0 || failed_at)
			fprintf(stderr, "srv_db: upgrading %s from schema version %d to %d failed%s%.0d%s%s; the store"
				" is unchanged (still version %d)\n", path, version, latest,
				failed_at ? " in the step to version " : "", failed_at, *why ? ": " : "", why, version);
	} else if (version > 0) {
		fprintf(stderr, "srv_db: %s upgraded from schema version %d to %d\n", path, version, latest);
	}
	return result;
}

ts_err srv_db_open(const char *path, int create, srv_db **out)
{
	ts_err result = TS_ERR_DB;
	srv_db *db = calloc(1, sizeof(*db));
	if (!db)
		return TS_ERR_NOMEM;
	if (!create && access(path, F_OK) != 0) {
		fprintf(stderr, "%s: no database at %s (run tessera-server init first)\n", __func__, path);
		result = TS_ERR_IO;
		goto out;
	}
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
	/* No memory statistics: they take a global mutex around every SQLite malloc and free on
	 * the hot path, and nothing here reads them. Only before SQLite starts (else a no-op). */
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	if (sqlite3_open_v2(path, &db->h, flags, NULL) != SQLITE_OK) {
		fprintf(stderr, "%s: %s: %s\n", __func__, path, db->h ? sqlite3_errmsg(db->h) : "no memory");
		goto out;
	}
	/* A larger lookaside (the per-connection allocator for small, short-lived objects: parsed
	 * records, cursors) than the default 100 x 1200 bytes: fewer mallocs per statement. */
	(void)sqlite3_db_config(db->h, SQLITE_DBCONFIG_LOOKASIDE, NULL, 1200, 1000);
	sqlite3_busy_timeout(db->h, 5000);
	int version = db_user_version(db->h);
	if (version < 0 || db_refuse_newer(version, srv_db_schema_latest(), path))
		goto out;
	/* WAL with synchronous=FULL: a commit is on disk (fsync) before its reply, so it survives a
	 * power loss too; group commit shares one fsync among the requests ready together.
	 * TESSERA_SYNCHRONOUS=normal trades that for speed (a kill -9 still loses nothing; a power
	 * loss may lose the last commits): see docs/OPERATIONS.md. */
	const char *sync = getenv("TESSERA_SYNCHRONOUS");
	if (sync && strcmp(sync, "normal") != 0 && strcmp(sync, "full") != 0) {
		fprintf(stderr, "%s: TESSERA_SYNCHRONOUS must be 'full' or 'normal', not '%s'\n", __func__, sync);
		result = TS_ERR_BAD_REQUEST;
		goto out;
	}
	result = db_exec_sql(db->h, sync && strcmp(sync, "normal") == 0 ? "PRAGMA synchronous=NORMAL"
									 : "PRAGMA synchronous=FULL");
	if (result)
		goto out;
	result = db_exec_sql(db->h, "PRAGMA journal_mode=WAL;"
				    " PRAGMA foreign_keys=ON; PRAGMA cache_size=-65536;"
				    " PRAGMA temp_store=MEMORY;");
	if (result)
		goto out;
	result = db_migrate(db->h, path, version);
	if (result)
		goto out;
	for (int i = 0; i < TX__COUNT; i++) {
		if (sqlite3_prepare_v3(db->h, tx_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &db->tx[i], NULL) != SQLITE_OK) {
			fprintf(stderr, "%s: %s: %s\n", __func__, tx_sql[i], sqlite3_errmsg(db->h));
			result = TS_ERR_DB;
			goto out;
		}
	}
	/* Fault injection for tests: TESSERA_FAULT_SQL=prefix makes every statement whose SQL starts
	 * with prefix fail when stepped, as an I/O error would (SQLITE_ERROR from a function). */
	const char *fault = getenv("TESSERA_FAULT_SQL");
	if (fault && *fault)
		sqlite3_create_function(db->h, "tessera_fault", 0, SQLITE_UTF8, NULL, db_fault, NULL, NULL);
	for (int i = 0; i < Q__COUNT; i++) {
		const char *sql = fault && *fault && strncmp(stmt_sql[i], fault, strlen(fault)) == 0
					  ? "SELECT tessera_fault()" : stmt_sql[i];
		if (sqlite3_prepare_v3(db->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &db->st[i], NULL) != SQLITE_OK) {
			fprintf(stderr, "%s: statement %d: %s\n", __func__, i, sqlite3_errmsg(db->h));
			result = TS_ERR_DB;
			goto out;
		}
	}
	*out = db;
	db = NULL;
	result = TS_OK;
out:
	srv_db_close(db);
	return result;
}

void srv_db_close(srv_db *db)
{
	if (!db)
		return;
	for (int i = 0; i < Q__COUNT; i++)
		sqlite3_finalize(db->st[i]);
	for (int i = 0; i < TX__COUNT; i++)
		sqlite3_finalize(db->tx[i]);
	sqlite3_close(db->h);
	free(db);
}

sqlite3_stmt *srv_db_stmt(srv_db *db, enum srv_stmt id)
{
	sqlite3_stmt *st = db->st[id];
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return st;
}

sqlite3 *srv_db_handle(srv_db *db)
{
	return db->h;
}

/* A failed step's error: busy, locked, interrupted, I/O, full or out of memory is worth a retry
 * (503); a constraint is a conflict (409); anything else is ours (500). */
ts_err srv_db_error(srv_db *db, int rc, const char *what)
{
	fprintf(stderr, "srv_db: %s: %s\n", what ? what : "?", sqlite3_errmsg(db->h));
	switch (rc & 0xff) {
	case SQLITE_CONSTRAINT:
		return TS_ERR_CONFLICT;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_IOERR:
	case SQLITE_INTERRUPT:
	case SQLITE_FULL:
	case SQLITE_NOMEM:
	case SQLITE_CANTOPEN:
	case SQLITE_PROTOCOL:
		return TS_ERR_UNAVAILABLE;
	default:
		return TS_ERR_DB;
	}
}

ts_err srv_db_step(srv_db *db, sqlite3_stmt *st, int *row)
{
	int rc = sqlite3_step(st);
	*row = rc == SQLITE_ROW;
	if (rc == SQLITE_ROW)
		return TS_OK;
	ts_err result = rc == SQLITE_DONE ? TS_OK : srv_db_error(db, rc, sqlite3_sql(st));
	sqlite3_reset(st);
	return result;
}

ts_err srv_db_exec(srv_db *db, sqlite3_stmt *st)
{
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		;
	ts_err result = rc == SQLITE_DONE ? TS_OK : srv_db_error(db, rc, sqlite3_sql(st));
	sqlite3_reset(st);
	return result;
}

static ts_err tx_run(srv_db *db, int which)
{
	sqlite3_stmt *st = db->tx[which];
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? TS_OK : srv_db_error(db, rc, tx_sql[which]);
}

/* Transactions nest: only the outermost begin and commit act, so a helper that needs a
 * transaction can begin one whether or not its caller (the dispatcher) has. */
ts_err srv_db_begin(srv_db *db)
{
	if (db->depth > 0) {
		db->depth++;
		return TS_OK;
	}
	if (!db->group || !db->group_open) {
		ts_err result = tx_run(db, TX_BEGIN);
		if (result)
			return result;
		db->group_open = db->group;
	}
	if (db->group) {
		ts_err result = tx_run(db, TX_SAVEPOINT);
		if (result)
			return result; /* nothing of this request is open; the group goes on */
	}
	db->depth = 1;
	return TS_OK;
}

ts_err srv_db_commit(srv_db *db)
{
	if (db->depth == 0)
		return TS_ERR_INTERNAL;
	if (--db->depth > 0)
		return TS_OK;
	ts_err result = tx_run(db, db->group ? TX_RELEASE : TX_COMMIT);
	if (result) {
		db->depth = 1;
		srv_db_rollback(db);
	}
	return result;
}

void srv_db_rollback(srv_db *db)
{
	int open = db->depth > 0;
	db->depth = 0;
	if (!open)
		return;
	if (db->group && db->group_open) {
		/* Only this request's work goes; the group's other requests stay. */
		if (tx_run(db, TX_ROLLBACK_TO) == TS_OK && tx_run(db, TX_RELEASE) == TS_OK)
			return;
		/* The savepoint is gone (SQLite rolled the whole transaction back on an I/O error,
		 * say): the group is lost, and its held replies get 503 at the flush. */
		db->group_failed = 1;
	}
	if (!sqlite3_get_autocommit(db->h))
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
	if (db->group)
		db->group_open = db->group_failed;
}

int srv_db_in_tx(const srv_db *db)
{
	return db->depth > 0;
}

void srv_db_set_group(srv_db *db, int on)
{
	db->group = on;
}

int srv_db_pending(const srv_db *db)
{
	return db->group_open;
}

ts_err srv_db_flush(srv_db *db)
{
	if (!db->group_open)
		return TS_OK;
	db->group_open = 0;
	ts_err result = TS_OK;
	if (db->group_failed) {
		db->group_failed = 0;
		result = TS_ERR_UNAVAILABLE;
	} else if (!sqlite3_get_autocommit(db->h)) {
		result = tx_run(db, TX_COMMIT);
	}
	if (result && !sqlite3_get_autocommit(db->h))
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
	return result;
}

ts_err srv_db_exec_ints(srv_db *db, enum srv_stmt q, const int64_t *v, size_t n)
{
	sqlite3_stmt *st = srv_db_stmt(db, q);
	for (size_t i = 0; i < n; i++)
		sqlite3_bind_int64(st, (int)i + 1, v[i]);
	return srv_db_exec(db, st);
}

ts_err srv_db_query_int(srv_db *db, enum srv_stmt q, const int64_t *v, size_t n, int64_t def, int64_t *out)
{
	sqlite3_stmt *st = srv_db_stmt(db, q);
	int row;
	for (size_t i = 0; i < n; i++)
		sqlite3_bind_int64(st, (int)i + 1, v[i]);
	ts_err result = srv_db_step(db, st, &row);
	*out = row ? sqlite3_column_int64(st, 0) : def;
	sqlite3_reset(st);
	return result;
}

void srv_db_bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}
