-- What a transport in front of the store (conveyor.transport) asks of it: claim the exact jobs
-- a worker took from the transport, and list the ready jobs a transport may have lost.

-- name: claim_ids
-- The jobs $1 that `claim` could take now, and no others: queued, due, their queue not paused
-- and without a concurrency limit (those take claim_ids_limited, as in claim_one). Ids that
-- are not claimable (cancelled, taken by another worker, finished, unknown, or of a queue
-- limited since the caller last looked) are skipped: the caller learns of them by omission.
-- Like every claim, no job_events row (the job row holds it: store.common.audit_trail).
-- The ids are looked up through the primary key and nothing else: 'queued' comes from a column
-- of the materialized input, as in `complete`. With the literal, the generic plan that
-- asyncpg's prepared statement settles on ANDed a bitmap of the primary key with one of
-- jobs_claim_idx for `run_at <= now()`, i.e. read every queued job's entry (and every dead one
-- left by earlier claims) to claim one id: 5 ms at 39k entries, growing with the backlog.
-- The array comes through a sub-select so that plans cannot see its length (see complete).
-- Without the room arithmetic of claim_ids_limited: 9.7 instead of 12.3 us per claimed row.
WITH input AS MATERIALIZED (
    SELECT t.id, 'queued'::text AS queued FROM unnest((SELECT $1::uuid[])) AS t(id)
), claimed AS (
    UPDATE jobs
       SET status = 'running', attempt = attempt + 1, lease_token = lease_token + 1,
           worker_id = $2, lease_expires_at = now() + $3::float8 * interval '1 second',
           started_at = now(), updated_at = now()
     WHERE id = ANY(ARRAY(
               SELECT j.id
                 FROM input i JOIN jobs j ON j.id = i.id
                WHERE j.status = i.queued AND j.run_at <= now()
                  AND NOT EXISTS (SELECT 1 FROM queues s
                                   WHERE s.name = j.queue
                                     AND (s.paused OR s.concurrency IS NOT NULL))
                  FOR UPDATE OF j SKIP LOCKED))
    {{claim_returning}}

-- name: claim_ids_limited
-- `claim_ids` for a store with concurrency-limited queues: a limited queue's jobs are claimed
-- up to its room (lowest claim order first), and only when named in $4, which the caller
-- passes after locking their rows (lock_limited_queues), as claim_many does. Plans as in
-- claim_ids.
-- `room` is materialized so that a limited queue's running jobs are counted once per queue:
-- inlined into `picked`, the count ran in the join filter, once per candidate id (a claim of
-- 100 ids counted a queue's 1,000 running jobs 100 times).
WITH input AS MATERIALIZED (
    SELECT t.id, 'queued'::text AS queued FROM unnest((SELECT $1::uuid[])) AS t(id)
), cand AS (
    SELECT j.id, j.queue, j.priority, j.run_at
      FROM input i JOIN jobs j ON j.id = i.id
     WHERE j.status = i.queued AND j.run_at <= now()
       FOR UPDATE OF j SKIP LOCKED
), room AS MATERIALIZED (
    SELECT q.name,
           CASE WHEN s.concurrency IS NULL THEN 2147483647
                ELSE s.concurrency - (
                         SELECT count(*) FROM jobs r
                          WHERE r.status = 'running' AND r.queue = q.name)::int
           END AS room
      FROM (SELECT DISTINCT queue AS name FROM cand) q
      LEFT JOIN queues s ON s.name = q.name
     WHERE s.name IS NULL
        OR (NOT s.paused AND (s.concurrency IS NULL OR s.name = ANY($4::text[])))
), picked AS (
    SELECT c.id
      FROM (SELECT cand.*, row_number() OVER (
                       PARTITION BY queue ORDER BY priority DESC, run_at, id) AS n
              FROM cand) c
      JOIN room r ON r.name = c.queue
     WHERE c.n <= r.room
), claimed AS (
    UPDATE jobs
       SET status = 'running', attempt = attempt + 1, lease_token = lease_token + 1,
           worker_id = $2, lease_expires_at = now() + $3::float8 * interval '1 second',
           started_at = now(), updated_at = now()
     WHERE id IN (SELECT id FROM picked)
    {{claim_returning}}

-- name: ready_jobs
-- Queued, due jobs of one queue in claim order (a walk of jobs_claim_idx that LIMIT stops).
SELECT id, queue, priority, run_at, updated_at FROM jobs
 WHERE status = 'queued' AND queue = $1 AND run_at <= now()
 ORDER BY priority DESC, run_at, id
 LIMIT $2
