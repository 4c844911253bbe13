-- job_events without its foreign key to jobs, as PostgreSQL's 0003_events_without_fk: events
-- are only ever written by the statements that change their job and deleted by the statements
-- that delete it (prune_finished, discard_dead), so the key guarded nothing the store does not
-- already guarantee, while its check ran for every event inserted (every enqueue, claim and
-- completion).
--
-- SQLite cannot drop a constraint, so the table is rebuilt (create, copy, drop, rename), inside
-- the migration's write transaction: rows, ids, the AUTOINCREMENT sequence and the index are
-- kept. Dropping the old table with foreign_keys on is safe: nothing references job_events.

CREATE TABLE job_events_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id      TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    from_status TEXT,
    to_status   TEXT    NOT NULL,
    attempt     INTEGER NOT NULL,
    worker_id   TEXT,
    message     TEXT
);

INSERT INTO job_events_new (id, job_id, at, from_status, to_status, attempt, worker_id, message)
SELECT id, job_id, at, from_status, to_status, attempt, worker_id, message FROM job_events;

-- The copy set the new table's sequence to its highest id; carry the old one over instead, so
-- the ids of events deleted since are never handed out again.
DELETE FROM sqlite_sequence WHERE name = 'job_events_new';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'job_events_new', seq FROM sqlite_sequence WHERE name = 'job_events';

DROP TABLE job_events;
ALTER TABLE job_events_new RENAME TO job_events;

CREATE INDEX job_events_job_idx ON job_events (job_id, id);
