-- Conveyor SQLite schema.
-- Times are INTEGER microseconds since the Unix epoch (UTC): exact round-trips of Python
-- datetimes, correct ordering, and cheap comparisons in SQL.
-- Ids are canonical lowercase UUIDv7 strings, so text order is creation order.

CREATE TABLE jobs (
    id               TEXT    PRIMARY KEY NOT NULL,
    queue            TEXT    NOT NULL,
    type             TEXT    NOT NULL,
    payload          TEXT    NOT NULL DEFAULT '{}',
    priority         INTEGER NOT NULL DEFAULT 0,
    status           TEXT    NOT NULL CHECK (status IN (
                         'scheduled', 'queued', 'running', 'retrying',
                         'completed', 'dead', 'cancelled')),
    run_at           INTEGER NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_retries      INTEGER NOT NULL DEFAULT 3,
    timeout          REAL    NOT NULL DEFAULT 300.0,
    unique_key       TEXT,
    tags             TEXT    NOT NULL DEFAULT '[]',
    tenant           TEXT,
    result           TEXT,
    last_error       TEXT,
    worker_id        TEXT,
    lease_expires_at INTEGER,
    lease_token      INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    updated_at       INTEGER NOT NULL
);

-- The claim: ready jobs of one queue in claim order; narrow because only queued rows are in it.
CREATE INDEX jobs_claim_idx ON jobs (queue, priority DESC, run_at, id) WHERE status = 'queued';
-- promote_due.
CREATE INDEX jobs_due_idx ON jobs (run_at) WHERE status IN ('scheduled', 'retrying');
-- reap_expired.
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE status = 'running';
-- At most one live job per unique_key; finished jobs free the key.
CREATE UNIQUE INDEX jobs_unique_key_idx ON jobs (unique_key)
    WHERE unique_key IS NOT NULL AND status NOT IN ('completed', 'dead', 'cancelled');
-- prune_finished.
CREATE INDEX jobs_finished_idx ON jobs (status, finished_at);
-- Listing, newest first, by queue or by status.
CREATE INDEX jobs_queue_id_idx ON jobs (queue, id);
CREATE INDEX jobs_status_id_idx ON jobs (status, id);
-- Depth checks (max_depth), concurrency counts and count_by_queue_status, covered.
CREATE INDEX jobs_queue_status_idx ON jobs (queue, status);

CREATE TABLE job_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id      TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    from_status TEXT,
    to_status   TEXT    NOT NULL,
    attempt     INTEGER NOT NULL,
    worker_id   TEXT,
    message     TEXT
);
CREATE INDEX job_events_job_idx ON job_events (job_id, id);

CREATE TABLE queues (
    name        TEXT    PRIMARY KEY NOT NULL,
    paused      INTEGER NOT NULL DEFAULT 0,
    max_depth   INTEGER,
    concurrency INTEGER
);

CREATE TABLE workers (
    id           TEXT    PRIMARY KEY NOT NULL,
    hostname     TEXT    NOT NULL,
    pid          INTEGER NOT NULL,
    queues       TEXT    NOT NULL DEFAULT '[]',
    concurrency  INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    running      INTEGER NOT NULL DEFAULT 0,
    meta         TEXT    NOT NULL DEFAULT '{}'
);

CREATE TABLE schedules (
    name        TEXT    PRIMARY KEY NOT NULL,
    cron        TEXT    NOT NULL,
    timezone    TEXT    NOT NULL,
    type        TEXT    NOT NULL,
    payload     TEXT    NOT NULL DEFAULT '{}',
    queue       TEXT    NOT NULL DEFAULT 'default',
    priority    INTEGER NOT NULL DEFAULT 0,
    max_retries INTEGER NOT NULL DEFAULT 3,
    timeout     REAL    NOT NULL DEFAULT 300.0,
    enabled     INTEGER NOT NULL DEFAULT 1,
    next_run_at INTEGER,
    last_run_at INTEGER,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX schedules_due_idx ON schedules (next_run_at) WHERE enabled = 1;

CREATE TABLE leaders (
    name       TEXT    PRIMARY KEY NOT NULL,
    holder     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
