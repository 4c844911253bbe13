-- Cheaper status changes on SQLite (issue 13: the drain). Every claim and completion changes a
-- job's status, and SQLite then evaluates every CHECK and partial-index predicate that names
-- `status`, for the row before and the row after. Two things made that dear:
--
-- 1. A constant IN list of three or more values, in a CHECK or a partial index's WHERE, is
--    evaluated by building a temporary b-tree of the list, for every row written (the one-time
--    evaluation that queries get does not apply there): a 4 KB page zeroed and filled each
--    time. The status CHECK (seven values), jobs_status_id_idx (four) and jobs_unique_key_idx
--    (three, for jobs with a key) did so; they are spelled as comparisons joined by OR / AND
--    below, meaning the same. SQLite cannot change a CHECK in place, so the table is rebuilt
--    (create, copy, drop, rename, as 0003 did for job_events), rows and rowids kept, and its
--    indexes created again. The queries that use the two partial indexes spell their
--    predicates the same way ({{parked_any}}, {{live}}; SQLite matches them as written).
-- 2. jobs_queue_status_idx (queue, status) held every job, so a claim and a completion each
--    moved its entry (a delete and an insert, four b-tree writes per job). It now holds only the
--    jobs that are neither queued nor running: a claim touches it not at all, a completion adds
--    one entry. Queued jobs per queue are counted from jobs_claim_idx, running ones from
--    jobs_lease_idx (as PostgreSQL counts them), see queue.sql and count_by_queue_status.
--
-- Measured (benchmarks/RESULTS.md, "SQLite drain, the store side"): instructions per claimed and
-- completed job in SQLite and the driver, 182k -> 100k before the statement changes.

CREATE TABLE jobs_new (
    id               TEXT    PRIMARY KEY NOT NULL,
    queue            TEXT    NOT NULL,
    type             TEXT    NOT NULL,
    payload          TEXT    NOT NULL DEFAULT '{}',
    priority         INTEGER NOT NULL DEFAULT 0,
    -- The most frequent values first: the comparisons stop at the first match.
    status           TEXT    NOT NULL CHECK (
                         status = 'queued' OR status = 'running' OR status = 'completed'
                         OR status = 'scheduled' OR status = 'retrying' OR status = 'dead'
                         OR status = 'cancelled'),
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

INSERT INTO jobs_new (rowid, id, queue, type, payload, priority, status, run_at, attempt,
                      max_retries, timeout, unique_key, tags, tenant, result, last_error,
                      worker_id, lease_expires_at, lease_token, created_at, started_at,
                      finished_at, updated_at)
SELECT rowid, id, queue, type, payload, priority, status, run_at, attempt, max_retries, timeout,
       unique_key, tags, tenant, result, last_error, worker_id, lease_expires_at, lease_token,
       created_at, started_at, finished_at, updated_at
FROM jobs;

-- Nothing references jobs (job_events lost its foreign key in 0003), so dropping it with
-- foreign_keys on deletes nothing else. Its indexes go with it.
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;

-- The claim: ready jobs of one queue in claim order; narrow because only queued rows are in it.
CREATE INDEX jobs_claim_idx ON jobs (queue, priority DESC, run_at, id) WHERE status = 'queued';
-- promote_due. Two values: SQLite compares them one by one (no temporary b-tree).
CREATE INDEX jobs_due_idx ON jobs (run_at) WHERE status IN ('retrying', 'scheduled');
-- reap_expired, and the running jobs per queue.
-- The queue rides along (no extra write: a heartbeat moves the entry anyway), so a limited
-- queue's running count reads the index alone: 0.25 ms against 5.7 ms with 5,000 jobs running.
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at, queue) WHERE status = 'running';
-- At most one live job per unique_key; finished jobs free the key. {{live}} in the queries.
CREATE UNIQUE INDEX jobs_unique_key_idx ON jobs (unique_key)
    WHERE unique_key IS NOT NULL
      AND status <> 'cancelled' AND status <> 'completed' AND status <> 'dead';
-- prune_finished and count_finished (see 0004).
CREATE INDEX jobs_prune_idx ON jobs (status, finished_at) WHERE finished_at IS NOT NULL;
-- Listing the statuses a job rests in (see 0005). {{parked_any}} in the queries.
CREATE INDEX jobs_status_id_idx ON jobs (status, id)
    WHERE status = 'cancelled' OR status = 'dead' OR status = 'retrying' OR status = 'scheduled';
-- Depth checks (the waiting jobs of a queue) and count_by_queue_status, covered, for the jobs
-- neither queued nor running.
CREATE INDEX jobs_queue_status_idx ON jobs (queue, status)
    WHERE status <> 'queued' AND status <> 'running';
