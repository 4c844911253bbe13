-- Worker registrations: what each worker process said about itself, and when it was last seen.

-- name: register_worker
INSERT INTO workers ({{worker_columns}})
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (id) DO UPDATE
   SET hostname = EXCLUDED.hostname, pid = EXCLUDED.pid, queues = EXCLUDED.queues,
       concurrency = EXCLUDED.concurrency, started_at = EXCLUDED.started_at,
       last_seen_at = EXCLUDED.last_seen_at, running = EXCLUDED.running, meta = EXCLUDED.meta

-- name: touch_worker
UPDATE workers SET last_seen_at = now(), running = $2 WHERE id = $1

-- name: touch_worker_meta
UPDATE workers SET last_seen_at = now(), running = $2, meta = $3 WHERE id = $1

-- name: deregister_worker
DELETE FROM workers WHERE id = $1

-- name: list_workers
SELECT {{worker_columns}} FROM workers ORDER BY id

-- name: prune_workers
DELETE FROM workers WHERE last_seen_at < $1
