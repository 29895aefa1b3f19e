-- @version 3
-- Users' own programs (docs/PROGRAMS-API.md).
-- Uploaded files, content-addressed: one row per distinct content, whoever uploaded it.
CREATE TABLE files (
    sha256     TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    data       BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
-- Who uploaded what: a user may name in a job, and download, only files they uploaded.
CREATE TABLE file_owners (
    sha256     TEXT NOT NULL REFERENCES files (sha256),
    user_id    INTEGER NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, sha256)
) WITHOUT ROWID;
-- The files a job names: a node may download a file while it holds a lease of such a job.
CREATE TABLE job_files (
    sha256 TEXT NOT NULL,
    job_id INTEGER NOT NULL REFERENCES jobs (id),
    PRIMARY KEY (sha256, job_id)
) WITHOUT ROWID;
-- A program unit's outcome as one node reported it (its digest is the replica's res0/res1).
CREATE TABLE outputs (
    replica_id       INTEGER PRIMARY KEY REFERENCES replicas (id),
    status           TEXT NOT NULL,
    stdout           BLOB NOT NULL,
    stderr           BLOB NOT NULL,
    stdout_truncated INTEGER NOT NULL,
    stderr_truncated INTEGER NOT NULL
);
-- 1: the user may submit programs (admins always may).
ALTER TABLE users ADD COLUMN may_run_programs INTEGER NOT NULL DEFAULT 0;
-- What a node must offer to get the job's units: 0 slots for kernels (any node); for a program
-- its processes, and its language.
ALTER TABLE jobs ADD COLUMN slots INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN lang INTEGER NOT NULL DEFAULT 0; -- its language's bit: py 1, c 2, sh 4
-- What a node offers: its programs capabilities (JSON, or NULL: it runs none), the processes
-- it runs at once, and its languages.
ALTER TABLE nodes ADD COLUMN programs TEXT;
ALTER TABLE nodes ADD COLUMN slots INTEGER NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN langs INTEGER NOT NULL DEFAULT 0; -- the bits of its languages
