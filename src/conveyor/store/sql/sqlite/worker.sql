-- Worker rows: registration, liveness (last_seen_at) and the published running count and meta.

-- name: register_worker
INSERT OR REPLACE INTO workers ({{worker_columns}}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)

-- name: touch_worker
UPDATE workers SET last_seen_at = ?, running = ? WHERE id = ?

-- name: touch_worker_meta
UPDATE workers SET last_seen_at = ?, running = ?, meta = ? WHERE id = ?

-- name: touch_worker_seen
-- In the heartbeat's transaction, with the lease extension.
UPDATE workers SET last_seen_at = ? WHERE id = ?

-- name: deregister_worker
DELETE FROM workers WHERE id = ?

-- name: list_workers
SELECT {{worker_columns}} FROM workers ORDER BY id

-- name: prune_workers
DELETE FROM workers WHERE last_seen_at < ?
