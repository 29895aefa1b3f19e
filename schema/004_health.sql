-- @version 4
-- Node health (the seeds' Ganglia): what a node's latest heartbeat said about its machine, and
-- whether the volunteer's controls pause it. One row per node, replaced by each heartbeat that
-- carries "health" or "paused"; nodes whose clients send neither have none.
CREATE TABLE node_health (
    node_id             INTEGER PRIMARY KEY REFERENCES nodes (id),
    at                  INTEGER NOT NULL,  -- when the heartbeat came (unix seconds)
    load1               REAL,              -- 1-minute load average
    mem_total_bytes     INTEGER,
    mem_available_bytes INTEGER,
    temp_c              REAL,              -- the hottest thermal zone; NULL where none
    uptime_s            INTEGER,
    paused              TEXT               -- 'busy', 'hot', 'hours', 'battery'; NULL: computing
);
