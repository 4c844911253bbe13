-- Jobs: submitting, reading, the worker protocol, housekeeping and operator actions.
-- Times are INTEGER microseconds since the epoch; batches travel as one JSON parameter read
-- with json_each(), so a batch of any size is one statement with one cached plan.

-- name: insert_job
INSERT INTO jobs ({{job_columns}})
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)

-- name: select_live_by_unique_keys
-- The live (non-terminal) jobs holding any of the batch's unique keys. The status condition is
-- spelled exactly as the partial jobs_unique_key_idx's (migration 0007), so the index serves it.
SELECT {{job_columns}} FROM jobs
WHERE unique_key IN (SELECT value FROM json_each(?))
  AND {{live}}

-- name: select_job
SELECT {{job_columns}} FROM jobs WHERE id = ?

-- name: select_jobs
SELECT {{job_columns}} FROM jobs WHERE id IN (SELECT value FROM json_each(?))

-- name: select_job_state
SELECT status, attempt, worker_id, started_at FROM jobs WHERE id = ?

-- name: list_jobs
-- Newest first. The where placeholder takes the list_filter_* conditions that apply, joined by
-- list_filter_and (or list_filter_all); parameters: theirs in the same order, then the limit.
SELECT {{job_columns}} FROM jobs WHERE {where} ORDER BY id DESC LIMIT ?

-- name: list_filter_queue
queue = ?

-- name: list_filter_status
status = ?

-- name: list_filter_parked_status
-- A status with a listing index (see migrations 0005, 0007): SQLite uses a partial index only
-- when the query spells its WHERE term.
status = ? AND {{parked_any}}

-- name: list_filter_type
type = ?

-- name: list_filter_tag
EXISTS (SELECT 1 FROM json_each(jobs.tags) AS t WHERE t.value = ?)

-- name: list_filter_tenant
tenant = ?

-- name: list_filter_created_after
created_at >= ?

-- name: list_filter_created_before
created_at < ?

-- name: list_filter_cursor
id < ?

-- name: list_filter_all
1

-- name: list_filter_and
AND

-- name: count_by_queue_status
-- Three covered walks (migration 0007): the jobs neither queued nor running through the partial
-- jobs_queue_status_idx, queued ones through jobs_claim_idx, running ones through jobs_lease_idx
-- (these few read their row for the queue).
SELECT queue, status, count(*) FROM jobs
 WHERE status <> 'queued' AND status <> 'running'
 GROUP BY queue, status
UNION ALL
SELECT queue, 'queued', count(*) FROM jobs INDEXED BY jobs_claim_idx
 WHERE status = 'queued'
 GROUP BY queue
UNION ALL
SELECT queue, 'running', count(*) FROM jobs INDEXED BY jobs_lease_idx
 WHERE status = 'running'
 GROUP BY queue

-- name: count_finished
-- Finished jobs per status and time bucket since a time (parameter 1), the buckets parameter 2
-- microseconds wide (a bucket's number is its start over its width): a range scan of the
-- covering jobs_prune_idx (status, finished_at).
SELECT status, finished_at / ?2 AS bucket, count(*) FROM jobs
 WHERE status IN ({{terminal}}) AND finished_at >= ?1
 GROUP BY status, bucket

-- name: any_queued
-- A cheap look before taking the write lock (outside any transaction): idle pollers (possibly
-- many processes) then never queue up on the write lock just to find nothing.
SELECT 1 FROM jobs
WHERE status = 'queued' AND queue IN (SELECT value FROM json_each(?)) LIMIT 1

-- name: claim_arm
-- One arm per queue: each walks the partial claim index in claim order and stops after its
-- own limit, so no claim ever sorts the whole backlog (an IN list over queues would). The index
-- holds the rowid, so the claim finds its rows without a lookup in the primary key's index.
SELECT * FROM (
    SELECT rowid AS rid, priority, run_at, id FROM jobs
    WHERE queue = ? AND status = 'queued'
    ORDER BY priority DESC, run_at, id LIMIT ?
)

-- name: claim_arm_union
UNION ALL

-- name: claim
-- The arms placeholder takes claim_arm once per claimable queue, joined by claim_arm_union.
-- Returns the claimed_columns: what the claim did not set itself (the driver fills in status,
-- worker_id, lease_expires_at, started_at and updated_at from its own parameters), as every
-- returned column costs its conversion for every job.
UPDATE jobs
SET status = 'running', attempt = attempt + 1, lease_token = lease_token + 1,
    worker_id = ?, lease_expires_at = ?, started_at = ?, updated_at = ?
WHERE rowid IN (
    SELECT rid FROM ({arms}) ORDER BY priority DESC, run_at, id LIMIT ?
) AND status = 'queued'
RETURNING {{claimed_columns}}

-- name: complete
-- Guarded batch updates (complete, fail, release) match (id, lease token, running). A
-- completion writes no event row: the completed job row is its own record, keeping the
-- worker_id of the attempt that completed it (migration 0005, store.common.audit_trail).
-- Batch items: [job id, lease token, result JSON text or null]. No RETURNING: SQLite then
-- reads every column of the old row, and buffers the returned ids; nearly always every item
-- applies, which the count of changed rows tells (the items are distinct jobs). When it does
-- not, the driver runs it again with `RETURNING id` to learn which applied.
UPDATE jobs
SET status = 'completed', result = c.value ->> 2, finished_at = ?, updated_at = ?,
    lease_expires_at = NULL
FROM json_each(?) AS c
WHERE jobs.id = c.value ->> 0 AND jobs.lease_token = c.value ->> 1 AND +jobs.status = 'running'

-- name: fail_events
-- Failures and releases write their event first, from the same guarded join the UPDATE then
-- applies: inside one BEGIN IMMEDIATE transaction both statements see the same rows, and the
-- event still sees the worker_id the UPDATE clears. Claims write no event: these rows carry
-- their attempt's started_at instead. Batch items: [job id, lease token, error, retry_at or null (null: dead)].
INSERT INTO job_events (job_id, at, from_status, to_status, attempt, worker_id, message,
                        started_at)
SELECT jobs.id, ?, 'running',
       CASE WHEN f.value ->> 3 IS NULL THEN 'dead' ELSE 'retrying' END,
       jobs.attempt, jobs.worker_id, f.value ->> 2, jobs.started_at
FROM json_each(?) AS f CROSS JOIN jobs ON jobs.id = f.value ->> 0
WHERE jobs.lease_token = f.value ->> 1 AND +jobs.status = 'running'

-- name: fail
UPDATE jobs
SET status = CASE WHEN f.value ->> 3 IS NULL THEN 'dead' ELSE 'retrying' END,
    run_at = coalesce(f.value ->> 3, jobs.run_at),
    finished_at = CASE WHEN f.value ->> 3 IS NULL THEN ? ELSE NULL END,
    last_error = f.value ->> 2, updated_at = ?, worker_id = NULL, lease_expires_at = NULL
FROM json_each(?) AS f
WHERE jobs.id = f.value ->> 0 AND jobs.lease_token = f.value ->> 1 AND +jobs.status = 'running'
RETURNING id

-- name: release_events
-- Batch items: [job id, lease token, run_at or null (null: queued now), reason]. The event
-- names the attempt handed back (uncharged: the next claim runs it again).
INSERT INTO job_events (job_id, at, from_status, to_status, attempt, worker_id, message,
                        started_at)
SELECT jobs.id, ?, 'running',
       CASE WHEN r.value ->> 2 IS NULL THEN 'queued' ELSE 'scheduled' END,
       jobs.attempt, jobs.worker_id, r.value ->> 3, jobs.started_at
FROM json_each(?) AS r CROSS JOIN jobs ON jobs.id = r.value ->> 0
WHERE jobs.lease_token = r.value ->> 1 AND +jobs.status = 'running'

-- name: release
UPDATE jobs
SET status = CASE WHEN r.value ->> 2 IS NULL THEN 'queued' ELSE 'scheduled' END,
    run_at = coalesce(r.value ->> 2, ?),
    attempt = max(jobs.attempt - 1, 0), updated_at = ?, worker_id = NULL,
    lease_expires_at = NULL
FROM json_each(?) AS r
WHERE jobs.id = r.value ->> 0 AND jobs.lease_token = r.value ->> 1 AND +jobs.status = 'running'
RETURNING id, queue, status

-- name: heartbeat
-- Batch items: [job id, lease token].
UPDATE jobs SET lease_expires_at = ?, updated_at = ?
FROM json_each(?) AS l
WHERE jobs.id = l.value ->> 0 AND jobs.lease_token = l.value ->> 1 AND +jobs.status = 'running'
RETURNING id

-- name: reclaim
-- After a claim whose answer a worker never read: the jobs still running under that worker id,
-- other than the ones it holds (a JSON array of ids), each with a fresh lease token and lease.
-- The attempt stays as the claim counted it; no status changes, so no event.
UPDATE jobs SET lease_token = lease_token + 1, lease_expires_at = ?, updated_at = ?
WHERE status = 'running' AND worker_id = ? AND id NOT IN (SELECT value FROM json_each(?))
RETURNING {{job_columns}}

-- name: any_expired
-- Before taking the write lock (as any_queued).
SELECT 1 FROM jobs INDEXED BY jobs_lease_idx
WHERE status = 'running' AND lease_expires_at <= ? LIMIT 1

-- name: select_expired
SELECT id, worker_id, attempt, max_retries, lease_token, queue, started_at
FROM jobs INDEXED BY jobs_lease_idx
WHERE status = 'running' AND lease_expires_at <= ?
ORDER BY lease_expires_at LIMIT ?

-- name: reap
-- The new status and message are decided by store.common (lost_lease_status/_message).
UPDATE jobs
SET status = ?, last_error = ?, finished_at = ?, updated_at = ?,
    worker_id = NULL, lease_expires_at = NULL
WHERE id = ? AND lease_token = ? AND status = 'running'

-- name: any_due
-- The status list is spelled exactly as the partial jobs_due_idx's (migration 0004): INDEXED BY
-- fails to prepare otherwise.
SELECT 1 FROM jobs INDEXED BY jobs_due_idx
WHERE status IN ({{waiting}}) AND run_at <= ? LIMIT 1

-- name: select_due
SELECT id, status, attempt, queue FROM jobs INDEXED BY jobs_due_idx
WHERE status IN ({{waiting}}) AND run_at <= ?
ORDER BY run_at LIMIT ?

-- name: promote
UPDATE jobs SET status = 'queued', updated_at = ?
WHERE id IN (SELECT value FROM json_each(?)) AND status IN ({{waiting}})

-- name: prune_finished
-- One slice; the store repeats it, each slice its own transaction: one huge DELETE would hold
-- the write lock (and stall every worker) for as long as it takes. job_events has no foreign
-- key (migration 0003), so the store deletes the returned jobs' events in the same
-- transaction (delete_events_of_jobs).
DELETE FROM jobs WHERE id IN (
    SELECT id FROM jobs
    WHERE status = ? AND finished_at < ? AND status IN ({{terminal}})
    LIMIT ?
)
RETURNING id

-- name: cancel
UPDATE jobs
SET status = 'cancelled', finished_at = ?, updated_at = ?, worker_id = NULL,
    lease_expires_at = NULL
WHERE id = ?
RETURNING {{job_columns}}

-- name: requeue_dead
UPDATE jobs
SET status = 'queued', attempt = 0, run_at = ?, payload = coalesce(?, payload),
    finished_at = NULL, result = NULL, updated_at = ?
WHERE id = ? AND status = 'dead'
RETURNING {{job_columns}}

-- name: discard_dead
-- Events of the returned jobs go with them (delete_events_of_jobs), as in prune_finished.
DELETE FROM jobs WHERE id IN (SELECT value FROM json_each(?)) AND status = 'dead'
RETURNING id

-- name: queued_queues
-- The queues that hold ready jobs, for a worker consuming every queue: a loose index scan of
-- jobs_claim_idx (one short descent per queue, however many jobs each one holds).
WITH RECURSIVE q(name) AS (
    SELECT (SELECT min(queue) FROM jobs INDEXED BY jobs_claim_idx WHERE status = 'queued')
    UNION ALL
    SELECT (SELECT min(queue) FROM jobs INDEXED BY jobs_claim_idx
             WHERE status = 'queued' AND queue > q.name)
      FROM q WHERE q.name IS NOT NULL
)
SELECT name FROM q WHERE name IS NOT NULL

-- name: any_queued_anywhere
-- any_queued for a worker consuming every queue.
SELECT 1 FROM jobs INDEXED BY jobs_claim_idx WHERE status = 'queued' LIMIT 1
