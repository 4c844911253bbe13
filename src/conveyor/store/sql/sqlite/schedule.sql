-- Cron schedules.

-- name: upsert_schedule
-- next_run_at and last_run_at given as NULL keep the stored values.
INSERT INTO schedules ({{schedule_columns}})
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET
    cron = excluded.cron, timezone = excluded.timezone, type = excluded.type,
    payload = excluded.payload, queue = excluded.queue, priority = excluded.priority,
    max_retries = excluded.max_retries, timeout = excluded.timeout,
    enabled = excluded.enabled,
    next_run_at = coalesce(excluded.next_run_at, schedules.next_run_at),
    last_run_at = coalesce(excluded.last_run_at, schedules.last_run_at),
    updated_at = excluded.updated_at
RETURNING {{schedule_columns}}

-- name: insert_schedule
-- Create only: a taken name inserts nothing and returns no row (the caller says so).
INSERT INTO schedules ({{schedule_columns}})
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (name) DO NOTHING
RETURNING {{schedule_columns}}

-- name: select_schedule
SELECT {{schedule_columns}} FROM schedules WHERE name = ?

-- name: list_schedules
SELECT {{schedule_columns}} FROM schedules ORDER BY name

-- name: delete_schedule
DELETE FROM schedules WHERE name = ? RETURNING name

-- name: due_schedules
SELECT {{schedule_columns}} FROM schedules
WHERE enabled = 1 AND next_run_at IS NOT NULL AND next_run_at <= ?
ORDER BY next_run_at, name

-- name: fire_schedule
-- Compare-and-set on next_run_at: of several schedulers firing the same occurrence, one wins
-- (gets the row back) and enqueues the job in the same transaction.
UPDATE schedules SET next_run_at = ?, last_run_at = ?, updated_at = ?
WHERE name = ? AND next_run_at = ?
RETURNING name
