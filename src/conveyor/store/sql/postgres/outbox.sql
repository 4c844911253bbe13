-- The outbox (migration 0006): the transition statements of job.sql write it when the store
-- publishes events; the relay reads it oldest first and deletes what the broker has taken.

-- name: outbox_pending
-- Each snapshot back as a jobs row, so the job decodes as every other job does.
SELECT {{job_columns}}, seq, from_status FROM (
    SELECT o.id AS seq, o.from_status, r.*
      FROM outbox o CROSS JOIN LATERAL jsonb_populate_record(NULL::jobs, o.job) r
     ORDER BY o.id
     LIMIT $1
) x ORDER BY seq

-- name: outbox_next
-- The relay's round in one round trip: delete the rows of the last round ($2, published), and
-- read the next ones. The delete and the read share a snapshot, so the read leaves out $2.
-- The delete commits without waiting for the WAL flush (synchronous_commit off for this
-- transaction only): a delete lost in a crash only publishes its rows again (at least once),
-- and the flush would otherwise sit between a commit and its dispatch in every round.
WITH gone AS (
    DELETE FROM outbox
     WHERE id = ANY($2::int8[])
       AND set_config('synchronous_commit', 'off', true) IS NOT NULL
)
SELECT {{job_columns}}, seq, from_status FROM (
    SELECT o.id AS seq, o.from_status, r.*
      FROM outbox o CROSS JOIN LATERAL jsonb_populate_record(NULL::jobs, o.job) r
     WHERE o.id <> ALL($2::int8[])
     ORDER BY o.id
     LIMIT $1
) x ORDER BY seq

-- name: outbox_delete
DELETE FROM outbox WHERE id = ANY($1::int8[])
