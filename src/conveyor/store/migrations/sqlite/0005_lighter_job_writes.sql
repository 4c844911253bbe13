-- Fewer rows and index entries written per job, as PostgreSQL's 0005_lighter_job_writes.
--
-- 1. job_events: no row for creation, claims or completion (store.common.audit_trail rebuilds
--    them from the job row); any other transition out of `running` records when its attempt
--    started (microseconds since the epoch, like every time column here).
ALTER TABLE job_events ADD COLUMN started_at INTEGER;

-- 2. Listing by status through an index only for the statuses a job rests in (operators list
--    the dead-letter queue above all); the list is spelled as the {{parked}} token the queries
--    use, which SQLite needs to match a partial index. (queue, id) goes too, as on PostgreSQL.
DROP INDEX jobs_queue_id_idx;
DROP INDEX jobs_status_id_idx;
CREATE INDEX jobs_status_id_idx ON jobs (status, id)
    WHERE status IN ('cancelled', 'dead', 'retrying', 'scheduled');
