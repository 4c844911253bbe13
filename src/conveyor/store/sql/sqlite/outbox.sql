-- The outbox (migration 0006): written by the transition transactions of a store that publishes
-- events; the relay reads it oldest first and deletes what the broker has taken.

-- name: outbox_add
-- In the transaction of the change, after it: the changed jobs (a JSON array of ids) as they
-- now are, each a JSON array of the jobs columns that _row_to_job reads back.
INSERT INTO outbox (from_status, job)
SELECT ?, json_array({{job_columns}}) FROM jobs WHERE id IN (SELECT value FROM json_each(?))

-- name: outbox_pending
SELECT id, from_status, job FROM outbox ORDER BY id LIMIT ?

-- name: outbox_delete
DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?))
