-- Jobs: submitting, reading, the worker protocol (claim, outcomes, heartbeat), housekeeping
-- (reap, promote, prune) and operator actions. Unqualified names resolve through the
-- connection's search_path (the store's schema).
--
-- Hot-path statements are data-modifying CTEs, so the status change, its job_events row and
-- any NOTIFY happen in one implicit transaction: no BEGIN/COMMIT round trips, nothing
-- half-written, and asyncpg's per-connection statement cache keeps each one prepared.
--
-- job_events holds one row per transition except creation, claims and completion (migration
-- 0005, see store.common.audit_trail): the job row keeps those (created_at; started_at,
-- attempt and worker_id; finished_at), and a transition out of `running` records its
-- attempt's started_at. A job that succeeds first time writes no event row at all.
-- job_events has no foreign key to jobs (migration 0003: its per-row check cost a quarter of a
-- batched insert), so every statement that deletes jobs deletes their events with them.

-- name: enqueue
-- One statement over the batch (one JSON array of job objects): depth check, insert
-- (unique_key conflicts skipped) and, when $2 names the channel, one NOTIFY
-- per queue that received ready jobs, delivered at commit: one round trip from submit to
-- wake-up. With $2 NULL no NOTIFY is sent (and PostgreSQL's notify lock is not taken): the
-- caller sends it after the commit instead (see NotifyCoalescer for which path does which).
-- The final SELECT always yields at least one row (from `notified`, an aggregate), so
-- `full_queues` reaches the caller even when nothing was inserted. Depth is checked against
-- the statement's snapshot: concurrent enqueues into a full queue can overshoot max_depth by a
-- batch, which is fine for backpressure. Ids are assigned, and within-batch duplicate
-- unique_keys folded, by the caller (store.common.plan_batch).
-- The depth count reads two ranges of partial indexes, never the table (a count through jobs
-- cost every submit into a limited queue a scan of all jobs, finished ones included): the
-- queue's queued jobs in jobs_claim_idx, then its waiting ones in jobs_queue_status_idx
-- (migration 0008). Only queues the batch adds new jobs to are checked: a job whose unique_key
-- is live adds nothing, so resubmitting it is never refused, even by a queue over its limit
-- (as on SQLite). LIMIT max_depth + 1 is all the comparison needs (a queue already over its
-- limit is full whatever the batch adds), so a deep backlog costs max_depth index entries, not
-- its length (index-only walks once vacuum has marked the pages all-visible; before that the
-- planner may take a bitmap scan of the queue's whole range, still not the table's). The
-- batch's queues are a plain `= ANY` filter, which runs before the counts; as a semi-join it
-- let the plan count every limited queue, in the batch or not.
WITH input AS (
    SELECT *
      FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (
               id uuid, queue text, type text, payload jsonb, priority int4, run_at timestamptz,
               max_retries int4, timeout float8, unique_key text, tags text[], tenant text))
           WITH ORDINALITY
           AS t(id, queue, type, payload, priority, run_at, max_retries, timeout,
                unique_key, tags, tenant, ord)
), full_queues AS (
    SELECT q.name
      FROM queues q
     CROSS JOIN LATERAL (  -- the batch's new jobs for q (a live unique_key adds nothing)
           SELECT count(*) AS n FROM input i
            WHERE i.queue = q.name
              AND (i.unique_key IS NULL OR NOT EXISTS (
                   SELECT 1 FROM jobs u
                    WHERE u.unique_key = i.unique_key
                      AND u.status NOT IN ({{terminal}})))) added
     WHERE q.max_depth IS NOT NULL
       AND q.name = ANY (ARRAY(SELECT queue FROM input))
       AND added.n > 0
       AND (SELECT count(*) FROM (
                   SELECT 1 FROM jobs j WHERE j.queue = q.name AND j.status = 'queued'
                   UNION ALL
                   SELECT 1 FROM jobs j WHERE j.queue = q.name AND j.status IN ({{waiting}})
                    LIMIT q.max_depth + 1) d) + added.n
         > q.max_depth
), ins AS (
    INSERT INTO jobs (id, queue, type, payload, priority, status, run_at, max_retries, timeout,
                      unique_key, tags, tenant, created_at, updated_at)
    SELECT id, queue, type, coalesce(payload, 'null'::jsonb), priority,
           CASE WHEN run_at IS NULL OR run_at <= now() THEN 'queued' ELSE 'scheduled' END,
           CASE WHEN run_at IS NULL OR run_at <= now() THEN now() ELSE run_at END,
           max_retries, timeout, unique_key, coalesce(tags, '{}'), tenant, now(), now()
      FROM input
     WHERE NOT EXISTS (SELECT 1 FROM full_queues)
     ORDER BY ord
        ON CONFLICT (unique_key)
           WHERE unique_key IS NOT NULL AND status NOT IN ({{terminal}})
        DO NOTHING
    RETURNING id, status, run_at, created_at, queue,
              CASE WHEN {{publish}} THEN to_jsonb(jobs) END AS snapshot
), ob AS (  -- the outbox (migration 0006): nothing unless the store publishes events
    INSERT INTO outbox (from_status, job) SELECT NULL, snapshot FROM ins WHERE {{publish}}
), notified AS (
    SELECT count(pg_notify($2, d.queue)) AS n
      FROM (SELECT DISTINCT queue FROM ins WHERE status = 'queued' AND $2::text IS NOT NULL) d
)
SELECT ins.id, ins.status, ins.run_at, ins.created_at, ins.queue,
       (SELECT array_agg(name) FROM full_queues) AS full_queues
  FROM notified LEFT JOIN ins ON true

-- name: enqueue_one
-- `enqueue` for a batch of one, with plain parameters: the same steps, the same row shape,
-- without a JSON document to parse, a batch to materialize and sort, or a queue list to
-- group: ~0.03-0.1 ms less per call than `enqueue` with one job. A lone job without a
-- unique_key takes enqueue_lone instead. $1 id, $2 queue, $3 type, $4 payload, $5 priority,
-- $6 run_at, $7 max_retries, $8 timeout, $9 unique_key, $10 tags, $11 tenant, $12 NOTIFY
-- channel (NULL: none, see enqueue).
WITH full_queues AS (
    SELECT q.name
      FROM queues q
     WHERE q.name = $2::text
       AND q.max_depth IS NOT NULL
       AND ($9::text IS NULL OR NOT EXISTS (  -- a live unique_key adds nothing
                SELECT 1 FROM jobs u
                 WHERE u.unique_key = $9::text AND u.status NOT IN ({{terminal}})))
       AND (SELECT count(*) FROM (
                   SELECT 1 FROM jobs j WHERE j.queue = q.name AND j.status = 'queued'
                   UNION ALL
                   SELECT 1 FROM jobs j WHERE j.queue = q.name AND j.status IN ({{waiting}})
                    LIMIT q.max_depth) d)
         >= q.max_depth
), ins AS (
    INSERT INTO jobs (id, queue, type, payload, priority, status, run_at, max_retries, timeout,
                      unique_key, tags, tenant, created_at, updated_at)
    SELECT $1::uuid, $2::text, $3::text, coalesce($4::jsonb, 'null'::jsonb), $5::int4,
           CASE WHEN $6::timestamptz IS NULL OR $6::timestamptz <= now()
                THEN 'queued' ELSE 'scheduled' END,
           CASE WHEN $6::timestamptz IS NULL OR $6::timestamptz <= now()
                THEN now() ELSE $6::timestamptz END,
           $7::int4, $8::float8, $9::text, coalesce($10::text[], '{}'), $11::text, now(), now()
     WHERE NOT EXISTS (SELECT 1 FROM full_queues)
        ON CONFLICT (unique_key)
           WHERE unique_key IS NOT NULL AND status NOT IN ({{terminal}})
        DO NOTHING
    RETURNING id, status, run_at, created_at, queue,
              CASE WHEN {{publish}} THEN to_jsonb(jobs) END AS snapshot
), ob AS (  -- the outbox (migration 0006): nothing unless the store publishes events
    INSERT INTO outbox (from_status, job) SELECT NULL, snapshot FROM ins WHERE {{publish}}
), notified AS (
    SELECT count(pg_notify($12::text, queue)) AS n
      FROM ins WHERE status = 'queued' AND $12::text IS NOT NULL
)
SELECT ins.id, ins.status, ins.run_at, ins.created_at, ins.queue,
       (SELECT array_agg(name) FROM full_queues) AS full_queues
  FROM notified LEFT JOIN ins ON true

-- name: enqueue_lone
-- `enqueue_one` for a job without a unique_key (a lone App.enqueue, a single HTTP submit): no
-- conflict to arbitrate, so no ON CONFLICT clause, and the depth check folds into the
-- INSERT's WHERE (a queue without max_depth costs one probe of its row). No row back means the
-- queue was full: nothing else can skip the insert. The depth count is enqueue's, bounded at
-- max_depth (the test is `>=`, with no batch to add). Measured on the 2-core dev VM without
-- WAL flushes: 0.82x enqueue_one's time for the same job. $1 id, $2 queue, $3 type,
-- $4 payload, $5 priority, $6 run_at, $7 max_retries, $8 timeout, $9 tags, $10 tenant,
-- $11 NOTIFY channel (NULL: none, see enqueue).
WITH ins AS (
    INSERT INTO jobs (id, queue, type, payload, priority, status, run_at, max_retries, timeout,
                      unique_key, tags, tenant, created_at, updated_at)
    SELECT $1::uuid, $2::text, $3::text, coalesce($4::jsonb, 'null'::jsonb), $5::int4,
           CASE WHEN $6::timestamptz IS NULL OR $6::timestamptz <= now()
                THEN 'queued' ELSE 'scheduled' END,
           CASE WHEN $6::timestamptz IS NULL OR $6::timestamptz <= now()
                THEN now() ELSE $6::timestamptz END,
           $7::int4, $8::float8, NULL, coalesce($9::text[], '{}'), $10::text, now(), now()
     WHERE NOT EXISTS (
           SELECT 1 FROM queues q
            WHERE q.name = $2::text
              AND q.max_depth IS NOT NULL
              AND (SELECT count(*) FROM (
                          SELECT 1 FROM jobs j
                           WHERE j.queue = q.name AND j.status = 'queued'
                          UNION ALL
                          SELECT 1 FROM jobs j
                           WHERE j.queue = q.name AND j.status IN ({{waiting}})
                           LIMIT q.max_depth) d)
                  >= q.max_depth)
    RETURNING id, status, run_at, created_at, queue,
              CASE WHEN {{publish}} THEN to_jsonb(jobs) END AS snapshot
), ob AS (  -- the outbox (migration 0006): nothing unless the store publishes events
    INSERT INTO outbox (from_status, job) SELECT NULL, snapshot FROM ins WHERE {{publish}}
)
SELECT id, status, run_at, created_at,
       CASE WHEN status = 'queued' AND $11::text IS NOT NULL
            THEN pg_notify($11::text, queue) END AS notified
  FROM ins

-- name: live_by_unique_key
-- The live jobs holding these unique keys (an enqueue that skipped a conflict returns them).
SELECT {{job_columns}} FROM jobs
 WHERE unique_key = ANY($1::text[]) AND status NOT IN ({{terminal}})

-- name: get_job
SELECT {{job_columns}} FROM jobs WHERE id = $1

-- name: get_jobs
SELECT {{job_columns}} FROM jobs WHERE id = ANY($1::uuid[])

-- name: job_events
-- The job's columns, then its stored rows' (none: NULLs), in one statement so both come from
-- one snapshot: store.common.audit_trail rebuilds the history from the two together.
SELECT j.*, e.at, e.from_status, e.to_status, e.attempt, e.worker_id, e.message, e.started_at
  FROM (SELECT {{job_columns}} FROM jobs WHERE id = $1) j
  LEFT JOIN job_events e ON e.job_id = j.id
 ORDER BY e.id

-- name: count_by_queue_status
SELECT queue, status, count(*) AS n FROM jobs GROUP BY queue, status

-- name: count_finished
-- Finished jobs per status and bucket ($2 seconds wide; the bucket's number is its start over
-- $2) since $1: an index-only range scan of jobs_prune_idx (status, finished_at), whose
-- predicate the status list repeats.
SELECT status, floor(extract(epoch FROM finished_at) / $2::int)::bigint AS bucket, count(*) AS n
  FROM jobs
 WHERE status IN ({{terminal}}) AND finished_at >= $1
 GROUP BY status, bucket

-- name: list_jobs
-- list_jobs is assembled from this head, the `list_jobs_by_*` conditions in use (joined with
-- AND after WHERE) and `list_jobs_tail`, so each combination of filters gets a plan that can
-- use the matching index instead of one generic "$1 IS NULL OR" plan. `${}` is filled with the
-- parameter's number.
SELECT {{job_columns}} FROM jobs

-- name: list_jobs_by_queue
queue = ${}

-- name: list_jobs_by_status
status = ${}

-- name: list_jobs_by_parked_status
-- A status with a listing index (see migration 0005): the literal list lets every plan, generic
-- ones included, prove the partial index applies.
status = ${} AND status IN ({{parked}})

-- name: list_jobs_by_type
type = ${}

-- name: list_jobs_by_tag
${} = ANY(tags)

-- name: list_jobs_by_tenant
tenant = ${}

-- name: list_jobs_by_created_after
created_at >= ${}

-- name: list_jobs_by_created_before
created_at < ${}

-- name: list_jobs_by_cursor
id < ${}

-- name: list_jobs_tail
ORDER BY id DESC LIMIT ${}

-- fragment: claim_returning
-- How every claim statement (claim_one, claim_many, claim_ids, claim_ids_limited) ends, after
-- its `claimed AS (UPDATE jobs ... WHERE ...`: the outbox rows of the claimed jobs, then what
-- the driver reads, in claim order. That is {{claimed_columns}} and started_at: the driver
-- fills in what the claim set itself (status, worker_id, updated_at = started_at,
-- lease_expires_at = started_at + the lease), as SQLite's does. Decoding a timestamp costs the
-- worker ~0.5 us, so the whole row cost it ~1 us per job more, for values it already knew. The
-- outbox snapshot still takes the whole row (`to_jsonb(c)`).
    RETURNING {{job_columns}}
), ob AS (  -- the outbox (migration 0006): nothing unless the store publishes events
    INSERT INTO outbox (from_status, job)
    SELECT 'queued', to_jsonb(c) FROM claimed c WHERE {{publish}}
)
SELECT {{claimed_columns}}, started_at FROM claimed ORDER BY priority DESC, run_at, id

-- name: claim_one
-- Single queue: `queue = $1` walks jobs_claim_idx in claim order, so LIMIT stops early and
-- there is no sort. The NOT EXISTS is uncorrelated (one-time filter): paused queues and queues
-- with a concurrency limit (claimed through claim_many under the queue row lock) yield nothing.
WITH claimed AS (
    UPDATE jobs
       SET status = 'running', attempt = attempt + 1, lease_token = lease_token + 1,
           worker_id = $3, lease_expires_at = now() + $4::float8 * interval '1 second',
           started_at = now(), updated_at = now()
     WHERE id = ANY(ARRAY(
               SELECT id FROM jobs
                WHERE status = 'queued' AND queue = $1
                  AND NOT EXISTS (SELECT 1 FROM queues
                                   WHERE name = $1 AND (paused OR concurrency IS NOT NULL))
                ORDER BY priority DESC, run_at, id
                LIMIT $2
                  FOR UPDATE SKIP LOCKED))
    {{claim_returning}}

-- name: claim_many
-- Several queues: the active queue list (and each limited queue's room) is computed once,
-- then a LATERAL index walk per queue takes at most `room` rows each; only those few
-- candidates are sorted. Queues with a concurrency limit take part only when named in $5,
-- which the caller passes after locking their rows (lock_limited_queues), so the running
-- counts here are current and cannot race.
WITH active AS (
    SELECT q.name,
           CASE WHEN s.concurrency IS NULL THEN $2::int
                ELSE LEAST($2::int, s.concurrency - (
                         SELECT count(*) FROM jobs r
                          WHERE r.status = 'running' AND r.queue = q.name)::int)
           END AS room
      FROM unnest((SELECT $1::text[])) AS q(name)
      LEFT JOIN queues s ON s.name = q.name
     WHERE s.name IS NULL
        OR (NOT s.paused AND (s.concurrency IS NULL OR s.name = ANY($5::text[])))
), claimed AS (
    UPDATE jobs
       SET status = 'running', attempt = attempt + 1, lease_token = lease_token + 1,
           worker_id = $3, lease_expires_at = now() + $4::float8 * interval '1 second',
           started_at = now(), updated_at = now()
     WHERE id = ANY(ARRAY(
               SELECT c.id
                 FROM active a
                CROSS JOIN LATERAL (
                      SELECT j.id, j.priority, j.run_at FROM jobs j
                       WHERE j.status = 'queued' AND j.queue = a.name
                       ORDER BY j.priority DESC, j.run_at, j.id
                       LIMIT greatest(a.room, 0)
                         FOR UPDATE SKIP LOCKED) c
                ORDER BY c.priority DESC, c.run_at, c.id
                LIMIT $2))
    {{claim_returning}}

-- name: complete
-- Outcomes (complete, fail, release, heartbeat, reap) are guarded by (id, lease_token,
-- status='running'). The status is compared with a column of the materialized input
-- (`i.running`) rather than a literal on purpose: a literal makes `status = 'running'` a
-- restriction the planner may answer with a scan of every running job (jobs_reap_idx /
-- jobs_status_id_idx) whenever stale statistics say few jobs run, which turns a 100-job batch
-- into an O(running jobs) statement; as a join clause it can only be checked per id looked up
-- through the primary key. No event row: the completed job row is its own record (it keeps
-- the worker_id of the attempt that completed it).
-- $3 is jsonb[]: each result arrives encoded (the worker's bytes as an orjson.Fragment).
-- The arrays come through sub-selects, here and in every statement that unnests array
-- parameters, so that no plan knows their length. With bare parameters, a custom plan sees
-- the length and the plan cache compares the generic plan (costed for a few rows) with the
-- custom plans seen so far: after a run of one-job calls it plans every call anew, and the
-- 0.2-0.4 ms of planning outweighed the statement (a lone claim_ids took 1.0 ms, not 0.5).
WITH input AS MATERIALIZED (
    SELECT t.*, 'running'::text AS running
      FROM unnest((SELECT $1::uuid[]), (SELECT $2::int8[]), (SELECT $3::jsonb[]))
           AS t(id, lease_token, result)
), done AS (
    UPDATE jobs j
       SET status = 'completed', result = i.result, finished_at = now(), updated_at = now(),
           lease_expires_at = NULL
      FROM input i
     WHERE j.id = i.id AND j.lease_token = i.lease_token AND j.status = i.running
    RETURNING j.id, CASE WHEN {{publish}} THEN to_jsonb(j) END AS snapshot
), ob AS (  -- the outbox (migration 0006): nothing unless the store publishes events
    INSERT INTO outbox (from_status, job) SELECT 'running', snapshot FROM done WHERE {{publish}}
)
SELECT id FROM done

-- name: fail
-- Guarded like complete. A failure with a retry_at waits as `retrying`; one without goes to
-- the dead-letter queue. The self-join `o` supplies the pre-update worker_id for the event row
-- (RETURNING only sees the new, cleared value).
WITH input AS MATERIALIZED (
    SELECT t.*, 'running'::text AS running
      FROM unnest((SELECT $1::uuid[]), (SELECT $2::int8[]), (SELECT $3::text[]),
                  (SELECT $4::timestamptz[]))
           AS t(id, lease_token, error, retry_at)
), failed AS (
    UPDATE jobs j
       SET status = CASE WHEN i.retry_at IS NULL THEN 'dead' ELSE 'retrying' END,
           run_at = coalesce(i.retry_at, j.run_at),
           finished_at = CASE WHEN i.retry_at IS NULL THEN now() END,
           last_error = i.error, updated_at = now(),
           worker_id = NULL, lease_expires_at = NULL
      FROM input i JOIN jobs o ON o.id = i.id
     WHERE j.id = i.id AND j.lease_token = i.lease_token AND j.status = i.running
    RETURNING j.id, j.status, j.attempt, o.worker_id, i.error, j.started_at,
              CASE WHEN {{publish}} THEN to_jsonb(j) END AS snapshot
), ev AS (
    INSERT INTO job_events (job_id, at, from_status, to_status, attempt, worker_id, message,
                            started_at)
    SELECT id, now(), 'running', status, attempt, worker_id, error, started_at FROM failed
), ob AS (  -- the outbox (migration 0006): nothing unless the store publishes events
    INSERT INTO outbox (from_status, job) SELECT 'running', snapshot FROM failed WHERE {{publish}}
)
SELECT id FROM failed

-- name: release
-- Guarded like complete. Hands jobs back without charging the attempt (the event names the
-- attempt handed back, which the next claim runs again); one NOTIFY per queue that got ready
-- jobs.
WITH input AS MATERIALIZED (
    SELECT t.*, 'running'::text AS running
      FROM unnest((SELECT $1::uuid[]), (SELECT $2::int8[]), (SELECT $3::timestamptz[]),
                  (SELECT $4::text[]))
           AS t(id, lease_token, run_at, reason)
), released AS (
    UPDATE jobs j
       SET status = CASE WHEN i.run_at IS NULL THEN 'queued' ELSE 'scheduled' END,
           run_at = coalesce(i.run_at, now()),
           attempt = greatest(j.attempt - 1, 0), updated_at = now(),
           worker_id = NULL, lease_expires_at = NULL
      FROM input i JOIN jobs o ON o.id = i.id
     WHERE j.id = i.id AND j.lease_token = i.lease_token AND j.status = i.running
    RETURNING j.id, j.queue, j.status, o.attempt, o.worker_id, i.reason, j.started_at,
              CASE WHEN {{publish}} THEN to_jsonb(j) END AS snapshot
), ev AS (
    INSERT INTO job_events (job_id, at, from_status, to_status, attempt, worker_id, message,
                            started_at)
    SELECT id, now(), 'running', status, attempt, worker_id, reason, started_at FROM released
), ob AS (  -- the outbox (migration 0006): nothing unless the store publishes events
    INSERT INTO outbox (from_status, job) SELECT 'running', snapshot FROM released WHERE {{publish}}
), notified AS (
    SELECT count(pg_notify($5, d.queue)) AS n
      FROM (SELECT DISTINCT queue FROM released WHERE status = 'queued') d
)
SELECT released.id FROM notified LEFT JOIN released ON true

-- name: heartbeat
-- Guarded like complete. Extends the leases still held and touches the worker, in one
-- statement.
WITH input AS MATERIALIZED (
    SELECT t.*, 'running'::text AS running
      FROM unnest((SELECT $2::uuid[]), (SELECT $3::int8[])) AS t(id, lease_token)
), seen AS (
    UPDATE workers SET last_seen_at = now() WHERE id = $1
), extended AS (
    UPDATE jobs j
       SET lease_expires_at = now() + $4::float8 * interval '1 second', updated_at = now()
      FROM input i
     WHERE j.id = i.id AND j.lease_token = i.lease_token AND j.status = i.running
    RETURNING j.id
)
SELECT id FROM extended

-- name: reclaim
-- After a claim whose answer a worker never read (its connection dropped after the commit):
-- the jobs still running under that worker id, other than the ones it holds ($2), each with a
-- fresh lease token (fencing out anyone who quotes the old one, e.g. a server handing back an
-- abandoned fetch) and lease. The attempt stays as the claim counted it; no status changes, so
-- no event. jobs_reap_idx holds exactly the running rows.
WITH reclaimed AS (
    UPDATE jobs
       SET lease_token = lease_token + 1,
           lease_expires_at = now() + $3::float8 * interval '1 second', updated_at = now()
     WHERE status = 'running' AND worker_id = $1 AND NOT (id = ANY($2::uuid[]))
    RETURNING {{job_columns}}
)
SELECT * FROM reclaimed ORDER BY priority DESC, run_at, id

-- name: any_expired
-- The reaper's look before it opens a transaction (every maintenance tick, in every worker and
-- scheduler): one index probe, no BEGIN/COMMIT when no lease expired.
SELECT EXISTS (SELECT 1 FROM jobs WHERE status = 'running' AND lease_expires_at < now())

-- name: expired_leases
-- The reaper's first step, inside its transaction: lock up to $1 running jobs whose lease
-- expired (oldest first; rows another reaper holds are skipped). What each one becomes is
-- decided by the caller (store.common.lost_lease_status), then written by `reap`.
SELECT id, lease_token, attempt, max_retries, worker_id FROM jobs
 WHERE status = 'running' AND lease_expires_at < now()
 ORDER BY lease_expires_at
 LIMIT $1
   FOR UPDATE SKIP LOCKED

-- name: reap
-- The reaper's second step: the decided status and last_error per job, guarded like every
-- outcome (the `i.running` join clause: see complete), with their events and one NOTIFY per
-- queue that got queued jobs. The lost attempt stays counted; a terminal status sets
-- finished_at.
WITH input AS MATERIALIZED (
    SELECT t.*, 'running'::text AS running
      FROM unnest((SELECT $1::uuid[]), (SELECT $2::int8[]), (SELECT $3::text[]),
                  (SELECT $4::text[]), (SELECT $5::text[]))
           AS t(id, lease_token, status, error, worker_id)
), reaped AS (
    UPDATE jobs j
       SET status = i.status,
           finished_at = CASE WHEN i.status IN ({{terminal}}) THEN now() END,
           last_error = i.error,
           worker_id = NULL, lease_expires_at = NULL, updated_at = now()
      FROM input i
     WHERE j.id = i.id AND j.lease_token = i.lease_token AND j.status = i.running
    RETURNING j.id, j.queue, j.status, j.attempt, i.worker_id, i.error, j.started_at,
              CASE WHEN {{publish}} THEN to_jsonb(j) END AS snapshot
), ev AS (
    INSERT INTO job_events (job_id, at, from_status, to_status, attempt, worker_id, message,
                            started_at)
    SELECT id, now(), 'running', status, attempt, worker_id, error, started_at FROM reaped
), ob AS (  -- the outbox (migration 0006): nothing unless the store publishes events
    INSERT INTO outbox (from_status, job) SELECT 'running', snapshot FROM reaped WHERE {{publish}}
), notified AS (
    SELECT count(pg_notify($6, d.queue)) AS n
      FROM (SELECT DISTINCT queue FROM reaped WHERE status = 'queued') d
)
SELECT reaped.id FROM notified LEFT JOIN reaped ON true

-- name: promote
-- Waiting jobs whose run_at has come become queued; one NOTIFY per queue. A publishing store
-- records each promotion in the outbox too: not an event, but the Kafka transport's dispatch
-- of the job it made ready (conveyor.domain.events.is_promotion).
-- The due jobs are found through jobs_promote_idx and updated through the primary key and
-- nothing else: joined to `due` instead, the generic plan that asyncpg's prepared statement
-- settles on, with statistics that counted many due jobs (taken during a burst of retries),
-- hash-joined a sequential scan of jobs to promote a few. Their previous status comes from a
-- join of the two small results (`promoted`).
WITH due AS (
    SELECT id, status FROM jobs
     WHERE status IN ({{waiting}}) AND run_at <= now()
     ORDER BY run_at
     LIMIT $1
       FOR UPDATE SKIP LOCKED
), moved AS (
    UPDATE jobs j SET status = 'queued', updated_at = now()
     WHERE j.id = ANY(ARRAY(SELECT id FROM due))
    RETURNING j.id, j.queue, j.attempt, CASE WHEN {{publish}} THEN to_jsonb(j) END AS snapshot
), promoted AS (
    SELECT m.id, m.attempt, m.snapshot, d.status AS from_status
      FROM moved m JOIN due d ON d.id = m.id
), ev AS (
    INSERT INTO job_events (job_id, at, from_status, to_status, attempt)
    SELECT id, now(), from_status, 'queued', attempt FROM promoted
), ob AS (  -- the outbox (migration 0006): nothing unless the store publishes events
    INSERT INTO outbox (from_status, job)
    SELECT from_status, snapshot FROM promoted WHERE {{publish}}
), notified AS (
    SELECT count(pg_notify($2, d.queue)) AS n FROM (SELECT DISTINCT queue FROM moved) d
)
SELECT (SELECT count(*) FROM moved) AS moved FROM notified

-- name: prune
-- One batch of at most $3 finished jobs of status $1 (the terminal set is spelled out too, so
-- the planner can use jobs_prune_idx), with their events.
WITH gone AS (
    DELETE FROM jobs WHERE id = ANY(ARRAY(
        SELECT id FROM jobs
         WHERE status = $1 AND status IN ({{terminal}}) AND finished_at < $2
         LIMIT $3))
    RETURNING id
), ev AS (
    DELETE FROM job_events WHERE job_id IN (SELECT id FROM gone)
)
SELECT count(*) FROM gone

-- name: cancel
-- The row is locked first (`cur`), so the reported previous status is the one the update saw.
-- A missing job yields no row; a terminal one yields a row with a NULL id and its cur_status.
WITH cur AS (
    SELECT id AS cur_id, status AS cur_status, worker_id AS cur_worker_id,
           started_at AS cur_started_at
      FROM jobs WHERE id = $1 FOR UPDATE
), upd AS (
    UPDATE jobs
       SET status = 'cancelled', finished_at = now(), updated_at = now(),
           worker_id = NULL, lease_expires_at = NULL
      FROM cur
     WHERE id = cur_id AND cur_status NOT IN ({{terminal}})
    RETURNING {{job_columns}}, cur_status AS prev_status, cur_worker_id AS prev_worker_id,
              CASE WHEN cur_status = 'running' THEN cur_started_at END AS attempt_started_at
), ev AS (
    INSERT INTO job_events (job_id, at, from_status, to_status, attempt, worker_id, message,
                            started_at)
    SELECT id, now(), prev_status, 'cancelled', attempt, prev_worker_id, $2, attempt_started_at
      FROM upd
), ob AS (  -- the outbox (migration 0006): nothing unless the store publishes events
    INSERT INTO outbox (from_status, job)
    SELECT prev_status, to_jsonb(u) FROM upd u WHERE {{publish}}
)
SELECT upd.*, cur.cur_status FROM cur LEFT JOIN upd ON true

-- name: requeue_dead
-- Locked first like cancel; dead -> queued with attempt 0 and, when $2 is not NULL, a new
-- payload, then one NOTIFY.
WITH cur AS (
    SELECT id AS cur_id, status AS cur_status FROM jobs WHERE id = $1 FOR UPDATE
), upd AS (
    UPDATE jobs
       SET status = 'queued', attempt = 0, payload = coalesce($2::jsonb, payload),
           run_at = now(), finished_at = NULL, result = NULL, updated_at = now(),
           worker_id = NULL, lease_expires_at = NULL
      FROM cur
     WHERE id = cur_id AND cur_status = 'dead'
    RETURNING {{job_columns}}
), ev AS (
    INSERT INTO job_events (job_id, at, from_status, to_status, attempt, message)
    SELECT id, now(), 'dead', 'queued', 0, $3 FROM upd
), ob AS (  -- the outbox (migration 0006): nothing unless the store publishes events
    INSERT INTO outbox (from_status, job) SELECT 'dead', to_jsonb(u) FROM upd u WHERE {{publish}}
), notified AS (
    SELECT count(pg_notify($4, queue)) AS n FROM upd
)
SELECT upd.*, cur.cur_status FROM cur LEFT JOIN upd ON true CROSS JOIN notified

-- name: discard_dead
WITH gone AS (
    DELETE FROM jobs WHERE id = ANY($1::uuid[]) AND status = 'dead' RETURNING id
), ev AS (
    DELETE FROM job_events WHERE job_id IN (SELECT id FROM gone)
)
SELECT count(*) FROM gone

-- name: queued_queues
-- The queues that hold ready jobs, for a worker consuming every queue: a loose index scan of
-- jobs_claim_idx (one short descent per queue, however many jobs each one holds).
WITH RECURSIVE q(name) AS (
    SELECT (SELECT min(queue) FROM jobs WHERE status = 'queued')
    UNION ALL
    SELECT (SELECT min(queue) FROM jobs WHERE status = 'queued' AND queue > q.name)
      FROM q WHERE q.name IS NOT NULL
)
SELECT name FROM q WHERE name IS NOT NULL
