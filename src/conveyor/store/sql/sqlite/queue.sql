-- Queue settings (pause, depth limit, concurrency limit) and the counts the limits need.

-- name: select_depth_limits
-- Queues of an enqueue batch that have a depth limit, with their current depth (jobs queued or
-- waiting for their run_at): queued ones counted in jobs_claim_idx, waiting ones in the partial
-- jobs_queue_status_idx, whose predicate the second count repeats (migration 0007).
SELECT q.name, q.max_depth,
       (SELECT count(*) FROM jobs INDEXED BY jobs_claim_idx
        WHERE jobs.queue = q.name AND jobs.status = 'queued')
       + (SELECT count(*) FROM jobs INDEXED BY jobs_queue_status_idx
          WHERE jobs.queue = q.name AND jobs.status IN ({{waiting}})
            AND jobs.status <> 'queued' AND jobs.status <> 'running')
FROM queues AS q
WHERE q.max_depth IS NOT NULL AND q.name IN (SELECT value FROM json_each(?))

-- name: select_claim_settings
-- Paused flag and, for queues with a concurrency limit, how many of their jobs run now: a walk
-- of the running jobs' lease index (jobs_lease_idx, as on PostgreSQL), which carries the queue:
-- no row is read. Their number is bounded by the workers' slots; an index by queue would cost
-- every claim and completion an entry moved (migration 0007).
SELECT name, paused, concurrency,
       CASE WHEN concurrency IS NULL THEN 0 ELSE
           (SELECT count(*) FROM jobs INDEXED BY jobs_lease_idx
            WHERE jobs.status = 'running' AND jobs.queue = queues.name)
       END
FROM queues WHERE name IN (SELECT value FROM json_each(?))

-- name: select_queue
SELECT name, paused, max_depth, concurrency FROM queues WHERE name = ?

-- name: list_queues
SELECT name, paused, max_depth, concurrency FROM queues ORDER BY name

-- name: upsert_queue
INSERT INTO queues (name, paused, max_depth, concurrency) VALUES (?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET
    paused = excluded.paused, max_depth = excluded.max_depth,
    concurrency = excluded.concurrency
RETURNING name, paused, max_depth, concurrency
