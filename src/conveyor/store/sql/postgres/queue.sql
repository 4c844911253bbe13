-- Queue settings (pause, max_depth, concurrency) and the row locks that serialise claimers of
-- concurrency-limited queues. A queue without a row has the defaults.

-- name: get_queue
SELECT name, paused, max_depth, concurrency FROM queues WHERE name = $1

-- name: list_queues
SELECT name, paused, max_depth, concurrency FROM queues ORDER BY name

-- name: upsert_queue
INSERT INTO queues (name, paused, max_depth, concurrency) VALUES ($1, $2, $3, $4)
ON CONFLICT (name) DO UPDATE
   SET paused = EXCLUDED.paused, max_depth = EXCLUDED.max_depth,
       concurrency = EXCLUDED.concurrency
RETURNING name, paused, max_depth, concurrency

-- name: limited_queues
-- Which queues have a concurrency limit (the claim path is chosen from this, cached briefly).
SELECT name FROM queues WHERE concurrency IS NOT NULL

-- name: lock_limited_queues
-- Serialises claimers of concurrency-limited queues (ordered to avoid deadlocks); claim_many
-- runs next in the same transaction and counts their running jobs.
SELECT name FROM queues
 WHERE name = ANY($1::text[]) AND concurrency IS NOT NULL
 ORDER BY name
   FOR UPDATE
