-- The job history: one row per status change, written in the transaction of the change.
-- No foreign key to jobs (migration 0003): the statements that delete jobs delete their events.

-- name: insert_event
INSERT INTO job_events (job_id, at, from_status, to_status, attempt, worker_id, message)
VALUES (?, ?, ?, ?, ?, ?, ?)

-- name: select_events
SELECT id, job_id, at, from_status, to_status, attempt, worker_id, message
FROM job_events WHERE job_id = ? ORDER BY id

-- name: delete_events_of_jobs
-- The events of the jobs just deleted (a JSON array of ids), in the deleting transaction.
DELETE FROM job_events WHERE job_id IN (SELECT value FROM json_each(?))
