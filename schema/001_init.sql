-- @version 1
-- Tessera store, version 1. Applied once to a new database (PRAGMA user_version 0 -> 1).
-- Unsigned 64-bit values (hits, ranges) are stored in INTEGER columns bit for bit.

CREATE TABLE users (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    pw_hash    TEXT NOT NULL,            -- scrypt$N$r$p$salt$hash (see server/srv_auth.c)
    role       TEXT NOT NULL CHECK (role IN ('admin', 'user')),
    disabled   INTEGER NOT NULL DEFAULT 0,
    deleted    INTEGER NOT NULL DEFAULT 0, -- removed users keep their jobs; the name is freed
    created_at INTEGER NOT NULL
);

CREATE TABLE nodes (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    platform   TEXT NOT NULL,
    cores      INTEGER NOT NULL,
    disabled   INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    units_done INTEGER NOT NULL DEFAULT 0, -- results that were counted into a job
    n_valid    INTEGER NOT NULL DEFAULT 0, -- results that matched the canonical result
    n_invalid  INTEGER NOT NULL DEFAULT 0, -- results that did not
    streak     INTEGER NOT NULL DEFAULT 0, -- valid results since the last invalid one
    rates      TEXT                        -- measured indices/s per kernel (JSON), sizes fetches
);

-- Every token kind; only the SHA-256 of a token is kept.
CREATE TABLE tokens (
    id         INTEGER PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL CHECK (kind IN ('session', 'api', 'enroll', 'node')),
    user_id    INTEGER REFERENCES users (id),  -- owner (for enroll: the admin who made it)
    node_id    INTEGER REFERENCES nodes (id),
    name       TEXT,                     -- API tokens: the user's label
    uses_left  INTEGER,                  -- enrollment tokens only
    expires_at INTEGER,                  -- NULL: no expiry (node tokens)
    revoked    INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE INDEX tokens_user ON tokens (user_id, kind);

CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY,
    owner_id    INTEGER NOT NULL REFERENCES users (id),
    kernel      TEXT NOT NULL,
    params      TEXT NOT NULL,           -- canonical JSON
    state       TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    space       INTEGER NOT NULL,        -- size of the index space
    unit_size   INTEGER NOT NULL,
    n_units     INTEGER NOT NULL,
    next_seq    INTEGER NOT NULL DEFAULT 0, -- units [0, next_seq) exist in table units
    feeding     INTEGER NOT NULL DEFAULT 1, -- open and next_seq < n_units: new units to hand out
    units_done  INTEGER NOT NULL DEFAULT 0,
    replication INTEGER NOT NULL,
    quorum      INTEGER NOT NULL,
    adaptive    INTEGER NOT NULL DEFAULT 0, -- trusted nodes get single replicas (spot-checked)
    deadline_s  INTEGER NOT NULL,
    acc0        INTEGER NOT NULL DEFAULT 0, -- combined partial of the done units
    acc1        INTEGER NOT NULL DEFAULT 0,
    compute_s   REAL NOT NULL DEFAULT 0,
    result      TEXT,
    error       TEXT,
    created_at  INTEGER NOT NULL,
    started_at  INTEGER,
    finished_at INTEGER
);
CREATE INDEX jobs_open ON jobs (state, id);
-- The job a fetch takes new units from. Its own column, so that advancing next_seq (every
-- fetch) leaves every index alone; it changes only when the job stops feeding.
CREATE INDEX jobs_feeding ON jobs (feeding, id);
CREATE INDEX jobs_owner ON jobs (owner_id, id);

-- A unit row exists from its first lease on (see workunits/wu.h).
CREATE TABLE units (
    id          INTEGER PRIMARY KEY,
    job_id      INTEGER NOT NULL REFERENCES jobs (id),
    seq         INTEGER NOT NULL,
    start       INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    state       INTEGER NOT NULL,        -- enum wu_state
    quorum      INTEGER NOT NULL,        -- agreeing results needed (1 for adaptive singles)
    wanted      INTEGER NOT NULL,        -- replicas wanted so far (grows on disagreement)
    max_results INTEGER NOT NULL,
    n_results   INTEGER NOT NULL DEFAULT 0,
    missing     INTEGER NOT NULL,        -- wanted - n_results - leases in flight (wu.h)
    res0        INTEGER,                 -- the canonical partial, once valid
    res1        INTEGER,
    valid_at    INTEGER,
    valid_rank  INTEGER,                 -- 1 for the job's first unit to become valid, 2 ...
    UNIQUE (job_id, seq)
);
-- The units a fetch may hand a replica of: found without scanning every open unit.
CREATE INDEX units_needy ON units (id) WHERE state = 1 AND missing > 0;
CREATE INDEX units_rank ON units (job_id, valid_rank);

-- One node's copy of a unit; a node holds at most one replica of a unit.
CREATE TABLE replicas (
    id          INTEGER PRIMARY KEY,
    unit_id     INTEGER NOT NULL REFERENCES units (id),
    node_id     INTEGER NOT NULL REFERENCES nodes (id),
    state       INTEGER NOT NULL,        -- enum wu_replica_state (1 leased, 2 reported, 3 dropped, 4 expired)
    deadline    INTEGER NOT NULL,
    leases      INTEGER NOT NULL DEFAULT 1, -- 1 + times it was handed back to its node
    res0        INTEGER,                 -- the node's partial, once reported
    res1        INTEGER,
    verdict     INTEGER NOT NULL DEFAULT 0, -- 0 pending, 1 valid, 2 invalid
    counted     INTEGER NOT NULL DEFAULT 0, -- 1 for the one replica whose result was aggregated
    wall_s      REAL,
    issued_at   INTEGER NOT NULL,
    reported_at INTEGER
);
-- A node holds at most one replica of a unit; also the index of every per-unit lookup.
CREATE UNIQUE INDEX replicas_unit ON replicas (unit_id, node_id);
CREATE INDEX replicas_node ON replicas (node_id, state);
CREATE INDEX replicas_lease ON replicas (state, deadline);
