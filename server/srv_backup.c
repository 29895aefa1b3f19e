#include "srv_backup.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "srv_db.h"
#include "ts_util.h"

/* Pages per backup step: 4 MiB at SQLite's default 4 KiB page, a few ms of I/O at a time. */
#define STEP_PAGES 1024
#define BUSY_MS 5000

/* What SQLite may keep beside a database file. */
static const char *const side_suffixes[] = {"-journal", "-wal", "-shm"};

static void side_path(char *out, size_t n, const char *path, const char *suffix)
{
	snprintf(out, n, "%s%s", path, suffix);
}

/* Removes path and the files SQLite keeps beside it. */
static void remove_db_files(const char *path)
{
	char side[4200];
	unlink(path);
	for (size_t i = 0; i < TS_ARRAY_LEN(side_suffixes); i++) {
		side_path(side, sizeof(side), path, side_suffixes[i]);
		unlink(side);
	}
}

/* fsync of a file, or (dir) of the directory holding it, so that a rename there survives a
 * crash. */
static int sync_path(const char *path, int dir)
{
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s", path);
	int fd = open(dir ? dirname(buf) : buf, O_RDONLY | O_CLOEXEC | (dir ? O_DIRECTORY : 0));
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	if (rc != 0 && dir && errno == EINVAL)
		rc = 0; /* a file system that cannot sync directories */
	close(fd);
	return rc;
}

static const char *db_name(sqlite3 *h)
{
	const char *name = sqlite3_db_filename(h, "main");
	return name && *name ? name : "the store";
}

/* The error for a failed SQLite call on a file that should be a store: not one at all is the
 * caller's mistake, busy is worth a retry, the rest is I/O or ours. */
static ts_err file_error(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
	case SQLITE_ERROR: /* "no such table": some other SQLite database */
		return TS_ERR_BAD_REQUEST;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return TS_ERR_UNAVAILABLE;
	case SQLITE_CANTOPEN:
	case SQLITE_IOERR:
	case SQLITE_FULL:
	case SQLITE_PERM:
	case SQLITE_READONLY:
		return TS_ERR_IO;
	default:
		return TS_ERR_DB;
	}
}

/* The first column of the first row of sql as text into out ("" for none); an SQLite code. */
static int query_text(sqlite3 *h, const char *sql, char *out, size_t cap, char *why, size_t whylen)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(h, sql, -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	out[0] = '\0';
	if (rc == SQLITE_ROW) {
		const unsigned char *text = sqlite3_column_text(st, 0);
		snprintf(out, cap, "%s", text ? (const char *)text : "");
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_OK;
	} else {
		snprintf(why, whylen, "%s: %s", db_name(h), sqlite3_errmsg(h));
	}
	sqlite3_finalize(st);
	return rc;
}

ts_err srv_backup_copy(sqlite3 *src, const char *path, char *why, size_t whylen)
{
	char tmp[4096], text[256];
	sqlite3 *dst = NULL;
	sqlite3_backup *b = NULL;
	int own_tx = 0, rc;
	ts_err result = TS_ERR_IO;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		snprintf(why, whylen, "the path %s is too long", path);
		return TS_ERR_BAD_REQUEST;
	}
	remove_db_files(tmp); /* what a copy that crashed left */
	/* One read transaction for every step: the copy is the snapshot of its start. (A step
	 * outside one takes a fresh snapshot, and a commit of another process in between restarts
	 * the whole copy: under steady load it might never end.) */
	if (sqlite3_get_autocommit(src)) {
		rc = sqlite3_exec(src, "BEGIN; SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			snprintf(why, whylen, "%s: %s", db_name(src), sqlite3_errmsg(src));
			result = file_error(rc);
			goto out;
		}
		own_tx = 1;
	}
	if (sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
		snprintf(why, whylen, "cannot create %s: %s", tmp, dst ? sqlite3_errmsg(dst) : "out of memory");
		goto out;
	}
	b = sqlite3_backup_init(dst, "main", src, "main");
	if (!b) {
		snprintf(why, whylen, "cannot start the copy to %s: %s", tmp, sqlite3_errmsg(dst));
		goto out;
	}
	int waited_ms = 0;
	while ((rc = sqlite3_backup_step(b, STEP_PAGES)) == SQLITE_OK ||
	       ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && waited_ms < BUSY_MS)) {
		if (rc != SQLITE_OK) {
			sqlite3_sleep(10);
			waited_ms += 10;
		}
	}
	sqlite3_backup_finish(b);
	b = NULL;
	if (rc != SQLITE_DONE) {
		snprintf(why, whylen, "copying %s to %s: %s", db_name(src), tmp, sqlite3_errstr(rc));
		result = file_error(rc);
		goto out;
	}
	if (own_tx) {
		sqlite3_exec(src, "COMMIT", NULL, NULL, NULL);
		own_tx = 0;
	}
	/* The copy carries the source's WAL flag; a rollback journal makes it one file that opens
	 * read-only anywhere and can be copied with cp. */
	rc = query_text(dst, "PRAGMA journal_mode=DELETE", text, sizeof(text), why, whylen);
	if (rc == SQLITE_OK && strcmp(text, "delete") != 0) {
		snprintf(why, whylen, "%s stays in journal mode '%s'", tmp, text);
		rc = SQLITE_ERROR;
	}
	if (rc == SQLITE_OK)
		rc = query_text(dst, "PRAGMA integrity_check", text, sizeof(text), why, whylen);
	if (rc == SQLITE_OK && strcmp(text, "ok") != 0) {
		snprintf(why, whylen, "the copy of %s fails integrity_check: %s", db_name(src), text);
		result = TS_ERR_DB;
		goto out;
	}
	if (rc != SQLITE_OK)
		goto out;
	rc = sqlite3_close(dst);
	dst = NULL;
	if (rc != SQLITE_OK || sync_path(tmp, 0) != 0 || rename(tmp, path) != 0) {
		snprintf(why, whylen, "cannot write %s: %s", path, rc != SQLITE_OK ? sqlite3_errstr(rc) : strerror(errno));
		goto out;
	}
	if (sync_path(path, 1) != 0)
		fprintf(stderr, "%s: cannot fsync the directory of %s: %s\n", __func__, path, strerror(errno));
	result = TS_OK;
out:
	if (b)
		sqlite3_backup_finish(b);
	if (own_tx && !sqlite3_get_autocommit(src))
		sqlite3_exec(src, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(dst);
	if (result)
		remove_db_files(tmp);
	return result;
}

static ts_err open_readonly(const char *path, sqlite3 **out, char *why, size_t whylen)
{
	if (sqlite3_open_v2(path, out, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(why, whylen, "cannot open %s: %s", path, *out ? sqlite3_errmsg(*out) : "out of memory");
		sqlite3_close(*out);
		*out = NULL;
		return TS_ERR_IO;
	}
	sqlite3_busy_timeout(*out, BUSY_MS);
	return TS_OK;
}

/* The schema version of an open database into *version; an SQLite code, why set on failure. */
static int read_version(sqlite3 *h, int *version, char *why, size_t whylen)
{
	char text[32];
	int rc = query_text(h, "PRAGMA user_version", text, sizeof(text), why, whylen);
	*version = rc == SQLITE_OK ? atoi(text) : 0;
	return rc;
}

ts_err srv_backup_check(const char *path, int *version, char *why, size_t whylen)
{
	static const char tables_sql[] = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN"
					 " ('users', 'nodes', 'tokens', 'jobs', 'units', 'replicas')";
	sqlite3 *h = NULL;
	char text[256];
	int latest = srv_db_schema_latest(), rc;
	*version = 0;
	ts_err result = open_readonly(path, &h, why, whylen);
	if (result)
		return result;
	rc = query_text(h, tables_sql, text, sizeof(text), why, whylen);
	if (rc == SQLITE_OK && atoi(text) != 6) {
		snprintf(why, whylen, "%s is not a Tessera store (it lacks the tables users, nodes, tokens, jobs,"
			 " units and replicas)", path);
		result = TS_ERR_BAD_REQUEST;
		goto out;
	}
	if (rc == SQLITE_OK)
		rc = read_version(h, version, why, whylen);
	if (rc == SQLITE_OK && (*version < 1 || *version > latest)) {
		if (*version > latest)
			snprintf(why, whylen, "%s has schema version %d, newer than this tessera-server knows"
				 " (up to %d): use the newer server", path, *version, latest);
		else
			snprintf(why, whylen, "%s has schema version %d: not a Tessera store", path, *version);
		result = TS_ERR_BAD_REQUEST;
		goto out;
	}
	if (rc == SQLITE_OK)
		rc = query_text(h, "PRAGMA integrity_check", text, sizeof(text), why, whylen);
	if (rc == SQLITE_OK && strcmp(text, "ok") != 0) {
		snprintf(why, whylen, "%s fails integrity_check: %s", path, text);
		result = TS_ERR_BAD_REQUEST;
		goto out;
	}
	if (rc != SQLITE_OK)
		result = file_error(rc);
out:
	sqlite3_close(h);
	return result;
}

/* TS_OK when the directory that is to hold path exists, else TS_ERR_NOT_FOUND and why. */
static ts_err dir_of_exists(const char *path, char *why, size_t whylen)
{
	char buf[4096];
	struct stat st;
	snprintf(buf, sizeof(buf), "%s", path);
	const char *dir = dirname(buf);
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(why, whylen, "the directory %s does not exist", dir);
		return TS_ERR_NOT_FOUND;
	}
	return TS_OK;
}

static int same_file(const struct stat *a, const char *path)
{
	struct stat b;
	return stat(path, &b) == 0 && a->st_dev == b.st_dev && a->st_ino == b.st_ino;
}

ts_err srv_backup_store(const char *store, const char *path, int force, int *version, char *why,
			size_t whylen)
{
	struct stat st, out;
	sqlite3 *src = NULL;
	*version = 0;
	if (stat(store, &st) != 0) {
		snprintf(why, whylen, "no store at %s (is --data the server's data dir?)", store);
		return TS_ERR_NOT_FOUND;
	}
	ts_err result = dir_of_exists(path, why, whylen);
	if (result)
		return result;
	if (stat(path, &out) == 0) {
		if (same_file(&st, path) || S_ISDIR(out.st_mode)) {
			snprintf(why, whylen, "%s is %s", path, S_ISDIR(out.st_mode) ? "a directory" : "the store itself");
			return TS_ERR_BAD_REQUEST;
		}
		if (!force) {
			snprintf(why, whylen, "%s exists (--force replaces it)", path);
			return TS_ERR_CONFLICT;
		}
	}
	result = open_readonly(store, &src, why, whylen);
	if (!result)
		result = srv_backup_copy(src, path, why, whylen);
	sqlite3_close(src);
	if (!result) {
		sqlite3 *copy = NULL;
		result = open_readonly(path, &copy, why, whylen);
		if (!result && read_version(copy, version, why, whylen) != SQLITE_OK)
			result = TS_ERR_DB;
		sqlite3_close(copy);
	}
	return result;
}

/* Moves a store and the files beside it to a new name (the -shm is only an index of the WAL:
 * it goes). Old files under the new name go first, so no stale WAL pairs with the moved store.
 * On failure what moved is put back: the store stays whole under one name. */
static ts_err move_store(const char *from, const char *to, char *why, size_t whylen)
{
	char a[4200], b[4200];
	remove_db_files(to);
	if (rename(from, to) != 0) {
		snprintf(why, whylen, "cannot rename %s to %s: %s", from, to, strerror(errno));
		return TS_ERR_IO;
	}
	for (size_t i = 0; i < TS_ARRAY_LEN(side_suffixes); i++) {
		side_path(a, sizeof(a), from, side_suffixes[i]);
		side_path(b, sizeof(b), to, side_suffixes[i]);
		if (strcmp(side_suffixes[i], "-shm") == 0) {
			unlink(a);
		} else if (rename(a, b) != 0 && errno != ENOENT) {
			snprintf(why, whylen, "cannot rename %s to %s: %s", a, b, strerror(errno));
			for (size_t j = 0; j < i; j++) {
				side_path(a, sizeof(a), from, side_suffixes[j]);
				side_path(b, sizeof(b), to, side_suffixes[j]);
				rename(b, a);
			}
			rename(to, from);
			return TS_ERR_IO;
		}
	}
	return TS_OK;
}

ts_err srv_backup_restore(const char *dir, const char *file, int *version, char *why, size_t whylen)
{
	char store[4096], restoring[4200], kept[4200];
	struct stat st, dir_st;
	sqlite3 *src = NULL;
	int moved = 0;
	*version = 0;
	snprintf(store, sizeof(store), "%s/tessera.db", dir);
	snprintf(restoring, sizeof(restoring), "%s.restoring", store);
	snprintf(kept, sizeof(kept), "%s.before-restore", store);
	if (stat(dir, &dir_st) != 0 || !S_ISDIR(dir_st.st_mode)) {
		snprintf(why, whylen, "no data dir %s (tessera-server init --data %s makes one, with the key and"
			 " certificate a server needs)", dir, dir);
		return TS_ERR_NOT_FOUND;
	}
	if (stat(file, &st) != 0) {
		snprintf(why, whylen, "cannot read %s: %s", file, strerror(errno));
		return TS_ERR_NOT_FOUND;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "%s is not a file", file);
		return TS_ERR_BAD_REQUEST;
	}
	if (same_file(&st, store)) {
		snprintf(why, whylen, "%s is the store itself", file);
		return TS_ERR_BAD_REQUEST;
	}
	/* The copy is checked, not file: file stays as it was, and what is checked is what is put
	 * in place. */
	ts_err result = open_readonly(file, &src, why, whylen);
	if (!result)
		result = srv_backup_copy(src, restoring, why, whylen);
	sqlite3_close(src);
	if (!result)
		result = srv_backup_check(restoring, version, why, whylen);
	if (result) {
		/* The check speaks of the copy; the operator gave file. */
		char msg[1024];
		snprintf(msg, sizeof(msg), "%s", why);
		char *at = strstr(msg, restoring);
		if (at)
			snprintf(why, whylen, "%.*s%s%s", (int)(at - msg), msg, file, at + strlen(restoring));
		remove_db_files(restoring);
		return result;
	}
	if (access(store, F_OK) == 0) {
		/* Fold the WAL into the store first, so that what is kept is one file. Best effort: a
		 * store SQLite cannot open is kept as it is, WAL and all. */
		sqlite3 *h = NULL;
		if (sqlite3_open_v2(store, &h, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK) {
			sqlite3_busy_timeout(h, BUSY_MS);
			sqlite3_exec(h, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
		}
		sqlite3_close(h);
		result = move_store(store, kept, why, whylen);
		moved = !result;
	} else {
		/* No store: what lies beside its name belongs to no database. */
		remove_db_files(store);
	}
	if (!result && rename(restoring, store) != 0) {
		snprintf(why, whylen, "cannot rename %s to %s: %s", restoring, store, strerror(errno));
		result = TS_ERR_IO;
		char ignored[256];
		if (moved && move_store(kept, store, ignored, sizeof(ignored)) != TS_OK)
			fprintf(stderr, "%s: the store is at %s: %s\n", __func__, kept, ignored);
	}
	/* Run as root (sudo), the new store would be root's, and a server that drops to the data
	 * dir's owner (run --user) could not open it. */
	if (!result && geteuid() == 0 && chown(store, dir_st.st_uid, dir_st.st_gid) != 0)
		fprintf(stderr, "%s: cannot give %s to the owner of %s: %s\n", __func__, store, dir, strerror(errno));
	if (result)
		remove_db_files(restoring);
	else if (sync_path(store, 1) != 0)
		fprintf(stderr, "%s: cannot fsync %s: %s\n", __func__, dir, strerror(errno));
	return result;
}
