-- What a transport in front of the store (conveyor.transport) asks of it: claim the exact jobs
-- a worker took from the transport, and list the ready jobs a transport may have lost.

-- name: select_claimable_ids
-- The claimable ones among the given ids (a JSON array), in claim order; the driver then
-- applies pause and concurrency limits as `claim` does.
SELECT id, queue FROM jobs
WHERE id IN (SELECT value FROM json_each(?)) AND status = 'queued' AND run_at <= ?
ORDER BY priority DESC, run_at, id

-- name: claim_ids
-- Returns the claimed_columns, as claim does.
UPDATE jobs
SET status = 'running', attempt = attempt + 1, lease_token = lease_token + 1,
    worker_id = ?, lease_expires_at = ?, started_at = ?, updated_at = ?
WHERE id IN (SELECT value FROM json_each(?)) AND status = 'queued'
RETURNING {{claimed_columns}}

-- name: ready_jobs
-- Queued, due jobs of one queue in claim order (a walk of the partial claim index).
SELECT id, queue, priority, run_at, updated_at FROM jobs
WHERE queue = ? AND status = 'queued' AND run_at <= ?
ORDER BY priority DESC, run_at, id LIMIT ?
