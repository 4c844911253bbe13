-- The job history: one row per status change, written in the transaction of the change.
-- No foreign key to jobs (migration 0003): the statements that delete jobs delete their events.

-- name: insert_event
-- started_at: when the attempt began, on a transition out of `running` (else NULL).
INSERT INTO job_events (job_id, at, from_status, to_status, attempt, worker_id, message,
                        started_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)

-- name: select_events
-- The job's columns, then its stored rows' (none: NULLs), in one statement so both come from
-- one snapshot: store.common.audit_trail rebuilds the history from the two together.
SELECT j.*, e.at, e.from_status, e.to_status, e.attempt, e.worker_id, e.message, e.started_at
FROM (SELECT {{job_columns}} FROM jobs WHERE id = ?) AS j
LEFT JOIN job_events AS e ON e.job_id = j.id
ORDER BY e.id

-- name: delete_events_of_jobs
-- The events of the jobs just deleted (a JSON array of ids), in the deleting transaction.
DELETE FROM job_events WHERE job_id IN (SELECT value FROM json_each(?))
