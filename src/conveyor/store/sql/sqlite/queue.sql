-- Queue settings (pause, depth limit, concurrency limit) and the counts the limits need.

-- name: select_depth_limits
-- Queues of an enqueue batch that have a depth limit, with their current depth (jobs queued or
-- waiting for their run_at), covered by jobs_queue_status_idx.
SELECT q.name, q.max_depth,
       (SELECT count(*) FROM jobs
        WHERE jobs.queue = q.name AND jobs.status IN ('queued', {{waiting}}))
FROM queues AS q
WHERE q.max_depth IS NOT NULL AND q.name IN (SELECT value FROM json_each(?))

-- name: select_claim_settings
-- Paused flag and, for queues with a concurrency limit, how many of their jobs run now.
SELECT name, paused, concurrency,
       CASE WHEN concurrency IS NULL THEN 0 ELSE
           (SELECT count(*) FROM jobs WHERE jobs.queue = queues.name AND jobs.status = 'running')
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
