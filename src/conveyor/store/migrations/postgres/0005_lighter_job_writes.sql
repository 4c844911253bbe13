-- Fewer rows and index entries written per job (issue 13; WAL per job measured in
-- benchmarks/RESULTS.md).
--
-- 1. job_events: no row for creation, claims or completion (store.common.audit_trail rebuilds
--    them from the job row); any other transition out of `running` records when its attempt
--    started. A job that succeeds first time writes no event row. Adding a nullable column
--    rewrites nothing.
ALTER TABLE job_events ADD COLUMN IF NOT EXISTS started_at timestamptz NULL;

-- 2. Listing indexes that every version of every job entered: status changes at each step and
--    no update is HOT, so (queue, id) and (status, id) took three entries per job. Listing by
--    queue, or by a status most jobs pass through (queued, running, completed), now reads the
--    primary key newest first (ids are time-ordered) or the claim and lease indexes; the
--    statuses a job rests in, which operators list (the dead-letter queue above all), keep an
--    index of their own. The status list matches the {{parked}} token the queries use.
DROP INDEX IF EXISTS jobs_queue_id_idx;
DROP INDEX IF EXISTS jobs_status_id_idx;
CREATE INDEX jobs_status_id_idx ON jobs (status, id)
    WHERE status IN ('cancelled', 'dead', 'retrying', 'scheduled');
