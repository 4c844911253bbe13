-- Reclaiming dead rows when the server's autovacuum lags or is off (PostgresStore.vacuum).
-- Every claim and outcome leaves a dead version of its job row; left alone, claims walk ever
-- more dead entries at the left edge of jobs_claim_idx (measured: 2,344 buffers per claim
-- after 300k jobs with autovacuum off, and a 1M-job drain 47% slower at its end).

-- name: dead_rows
-- The statistics view, not the table: a cheap look from every maintenance tick.
SELECT relname, n_dead_tup FROM pg_stat_user_tables
 WHERE schemaname = current_schema() AND relname IN ('jobs', 'job_events')

-- name: try_vacuum_lock
-- One vacuum per schema at a time, whichever process gets there first: a session lock on the
-- vacuum's own connection, so it goes with that connection.
SELECT pg_try_advisory_lock(hashtext(current_schema() || ':vacuum'))

-- name: vacuum_jobs
-- ANALYZE too: with autovacuum off the planner's statistics age as fast as the dead rows pile.
VACUUM (ANALYZE) jobs

-- name: vacuum_job_events
VACUUM job_events
