-- Cron schedules. A fire time is claimed by a compare-and-set on next_run_at (fire_schedule),
-- so one fire time yields exactly one job however many schedulers run.

-- name: upsert_schedule
-- next_run_at and last_run_at given as NULL keep the stored values.
INSERT INTO schedules ({{schedule_columns}})
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, now(), now())
ON CONFLICT (name) DO UPDATE
   SET cron = EXCLUDED.cron, timezone = EXCLUDED.timezone, type = EXCLUDED.type,
       payload = EXCLUDED.payload, queue = EXCLUDED.queue, priority = EXCLUDED.priority,
       max_retries = EXCLUDED.max_retries, timeout = EXCLUDED.timeout,
       enabled = EXCLUDED.enabled,
       next_run_at = coalesce(EXCLUDED.next_run_at, schedules.next_run_at),
       last_run_at = coalesce(EXCLUDED.last_run_at, schedules.last_run_at),
       updated_at = now()
RETURNING {{schedule_columns}}

-- name: insert_schedule
-- Create only: a taken name inserts nothing and returns no row (the caller says so).
INSERT INTO schedules ({{schedule_columns}})
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, now(), now())
ON CONFLICT (name) DO NOTHING
RETURNING {{schedule_columns}}

-- name: get_schedule
SELECT {{schedule_columns}} FROM schedules WHERE name = $1

-- name: list_schedules
SELECT {{schedule_columns}} FROM schedules ORDER BY name

-- name: delete_schedule
DELETE FROM schedules WHERE name = $1

-- name: due_schedules
SELECT {{schedule_columns}} FROM schedules
 WHERE enabled AND next_run_at <= $1
 ORDER BY next_run_at, name

-- name: fire_schedule
-- The compare-and-set: updates nothing when another scheduler already moved next_run_at on.
UPDATE schedules SET next_run_at = $3, last_run_at = $2, updated_at = now()
 WHERE name = $1 AND next_run_at = $2
