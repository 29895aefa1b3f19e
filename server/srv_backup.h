/* srv_backup: consistent copies of the store (SQLite's online backup API), the checks a file
 * must pass to become the store, and restoring one.
 *
 * A copy is one self-contained SQLite file (rollback journal, no -wal beside it) that passed
 * integrity_check. Every function here leaves its destination untouched on failure and says
 * why in why (a sentence for the operator, no trailing newline). */
#ifndef SRV_BACKUP_H
#define SRV_BACKUP_H

#include <stddef.h>

#include <sqlite3.h>

#include "ts_err.h"

/* Copies the open database src to path: written to path.tmp in steps of a few MiB, all inside
 * one read transaction of src (one snapshot, so the copy is consistent and never restarts while
 * a server commits; a WAL reader does not block the writers), checked, then renamed over path
 * and the directory fsynced. src is left with no transaction open if it had none. */
ts_err srv_backup_copy(sqlite3 *src, const char *path, char *why, size_t whylen);

/* `tessera-server backup`: copies the store at store (opened read-only, beside a live server) to
 * path. An existing path is refused unless force. *version gets the copy's schema version. */
ts_err srv_backup_store(const char *store, const char *path, int force, int *version, char *why,
			size_t whylen);

/* Whether the database at path (opened read-only) is a Tessera store this server can open:
 * SQLite, integrity_check ok, schema version 1 to srv_db_schema_latest(), the tables of
 * version 1 present. *version gets its version (0 when unknown). TS_ERR_BAD_REQUEST if not. */
ts_err srv_backup_check(const char *path, int *version, char *why, size_t whylen);

/* `tessera-server restore`: replaces dir/tessera.db by a checked copy of file. The current store
 * (its WAL folded in) is kept as dir/tessera.db.before-restore; stale -wal and -shm go. The
 * caller holds dir's lock (srv_lock), so no server has the store open. file is only read. */
ts_err srv_backup_restore(const char *dir, const char *file, int *version, char *why, size_t whylen);

#endif
