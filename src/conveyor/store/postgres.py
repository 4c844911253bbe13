"""PostgreSQL store: asyncpg pool, one statement (one round trip) per batch on the hot path.

Everything lives in one schema chosen by the URL (`?schema=NAME`, default `public`): tables via
the connections' search_path, and the NOTIFY channel and advisory-lock keys derived from the
schema name, so several Conveyors (or tests) can share one database without seeing each other.

Hot-path statements are written as data-modifying CTEs so that the status change, its
job_events rows and the NOTIFY all happen in a single implicit transaction: no BEGIN/COMMIT
round trips, nothing half-written, and asyncpg's per-connection statement cache keeps each one
prepared.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import orjson

from conveyor.domain.errors import (
    AlreadyExists,
    ConveyorError,
    IllegalTransition,
    InvalidInput,
    JobNotFound,
    QueueFull,
    ScheduleNotFound,
    StoreUnavailable,
    TokenNotFound,
    UserNotFound,
)
from conveyor.domain.ids import new_job_id
from conveyor.domain.job import JSON, TERMINAL, Job, JobStatus, NewJob, ensure_transition
from conveyor.domain.records import (
    ApiToken,
    Completion,
    Enqueued,
    Failure,
    JobEvent,
    JobFilter,
    JobPage,
    Lease,
    QueueSettings,
    ReapedJob,
    Release,
    Role,
    Schedule,
    User,
    WorkerInfo,
)

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations" / "postgres"

# ---------------------------------------------------------------------------------------------
# SQL. Unqualified names resolve through the connection's search_path (the store's schema).
# ---------------------------------------------------------------------------------------------

JOB_COLUMNS = (
    "id, queue, type, payload, priority, status, run_at, attempt, max_retries, timeout, "
    "unique_key, tags, tenant, result, last_error, worker_id, lease_expires_at, lease_token, "
    "created_at, started_at, finished_at, updated_at"
)

# Migrations ----------------------------------------------------------------------------------

MIGRATE_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtext($1))"
# DDL takes no parameters: {schema} is filled with a quoted identifier (quote_ident).
MIGRATE_CREATE_SCHEMA_SQL = "CREATE SCHEMA IF NOT EXISTS {schema}"
MIGRATE_SEARCH_PATH_SQL = "SET LOCAL search_path TO {schema}"
MIGRATE_TABLE_SQL = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name       text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
MIGRATE_APPLIED_SQL = "SELECT name FROM schema_migrations"
MIGRATE_RECORD_SQL = "INSERT INTO schema_migrations (name) VALUES ($1)"

PING_SQL = "SELECT 1"

# After a failed LISTEN connect, wait_for_jobs polls (sleeps its timeout) for this long before
# trying again, so a database outage costs one connect attempt per interval, not one per wait.
LISTEN_RETRY_SECONDS = 2.0

# Enqueue ------------------------------------------------------------------------------------
# One statement over the batch (one JSON array of job objects): depth check, insert
# (unique_key conflicts skipped) and creation events; the NOTIFY follows the commit (see
# NotifyCoalescer). The final SELECT always yields at least one row (from `one`), so
# `full_queues` reaches the caller even when nothing was inserted. Depth is checked against the
# statement's snapshot: concurrent enqueues into a full queue can overshoot max_depth by a
# batch, which is fine for backpressure.
ENQUEUE_SQL = """
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
     WHERE q.max_depth IS NOT NULL
       AND q.name IN (SELECT queue FROM input)
       AND (SELECT count(*) FROM jobs j
             WHERE j.queue = q.name AND j.status IN ('queued', 'scheduled', 'retrying'))
         + (SELECT count(*) FROM input i
             WHERE i.queue = q.name
               AND (i.unique_key IS NULL OR NOT EXISTS (
                    SELECT 1 FROM jobs u
                     WHERE u.unique_key = i.unique_key
                       AND u.status NOT IN ('completed', 'dead', 'cancelled'))))
         > q.max_depth
), ins AS (
    INSERT INTO jobs (id, queue, type, payload, priority, status, run_at, max_retries, timeout,
                      unique_key, tags, tenant, created_at, updated_at)
    SELECT id, queue, type, coalesce(payload, '{}'::jsonb), priority,
           CASE WHEN run_at IS NULL OR run_at <= now() THEN 'queued' ELSE 'scheduled' END,
           CASE WHEN run_at IS NULL OR run_at <= now() THEN now() ELSE run_at END,
           max_retries, timeout, unique_key, coalesce(tags, '{}'), tenant, now(), now()
      FROM input
     WHERE NOT EXISTS (SELECT 1 FROM full_queues)
     ORDER BY ord
        ON CONFLICT (unique_key)
           WHERE unique_key IS NOT NULL AND status NOT IN ('completed', 'dead', 'cancelled')
        DO NOTHING
    RETURNING id, status, run_at, created_at
), ev AS (
    INSERT INTO job_events (job_id, at, from_status, to_status, attempt)
    SELECT id, created_at, NULL, status, 0 FROM ins
), one AS (
    SELECT 1  -- a row even when nothing was inserted, to carry full_queues
)
SELECT ins.*, (SELECT array_agg(name) FROM full_queues) AS full_queues
  FROM one LEFT JOIN ins ON true
"""

# Sent by the NotifyCoalescer after the enqueue committed (see there for why not inside it).
NOTIFY_QUEUES_SQL = "SELECT count(pg_notify($1, q)) FROM unnest($2::text[]) AS q"

LIVE_BY_UNIQUE_KEY_SQL = f"""
SELECT {JOB_COLUMNS} FROM jobs
 WHERE unique_key = ANY($1::text[]) AND status NOT IN ('completed', 'dead', 'cancelled')
"""

# Reading ------------------------------------------------------------------------------------

GET_JOB_SQL = f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"
GET_JOBS_SQL = f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ANY($1::uuid[])"
JOB_EXISTS_SQL = "SELECT EXISTS (SELECT 1 FROM jobs WHERE id = $1)"
JOB_EVENTS_SQL = """
SELECT id, job_id, at, from_status, to_status, attempt, worker_id, message
  FROM job_events WHERE job_id = $1 ORDER BY id
"""
COUNT_BY_QUEUE_STATUS_SQL = "SELECT queue, status, count(*) AS n FROM jobs GROUP BY queue, status"

# list_jobs is assembled from these fragments (only the filters in use, so each combination
# gets a plan that can use the matching index instead of one generic "$1 IS NULL OR" plan).
LIST_JOBS_SELECT = f"SELECT {JOB_COLUMNS} FROM jobs"
LIST_JOBS_FILTERS: dict[str, str] = {
    "queue": "queue = ${}",
    "status": "status = ${}",
    "type": "type = ${}",
    "tag": "${} = ANY(tags)",
    "tenant": "tenant = ${}",
    "created_after": "created_at >= ${}",
    "created_before": "created_at < ${}",
    "cursor": "id < ${}",
}
LIST_JOBS_TAIL = " ORDER BY id DESC LIMIT ${}"

# Claim ---------------------------------------------------------------------------------------
# Single queue: `queue = $1` walks jobs_claim_idx in claim order, so LIMIT stops early and there
# is no sort. The NOT EXISTS is uncorrelated (one-time filter): paused queues and queues with a
# concurrency limit (claimed through CLAIM_MANY_SQL under the queue row lock) yield nothing.
CLAIM_ONE_SQL = f"""
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
    RETURNING {JOB_COLUMNS}
), ev AS (
    INSERT INTO job_events (job_id, at, from_status, to_status, attempt, worker_id)
    SELECT id, now(), 'queued', 'running', attempt, worker_id FROM claimed
)
SELECT * FROM claimed ORDER BY priority DESC, run_at, id
"""

# Several queues: the active queue list (and each limited queue's room) is computed once, then
# a LATERAL index walk per queue takes at most `room` rows each; only those few candidates are
# sorted. Queues with a concurrency limit take part only when named in $5, which the caller
# passes after locking their rows, so the running counts here are current and cannot race.
CLAIM_MANY_SQL = f"""
WITH active AS (
    SELECT q.name,
           CASE WHEN s.concurrency IS NULL THEN $2::int
                ELSE LEAST($2::int, s.concurrency - (
                         SELECT count(*) FROM jobs r
                          WHERE r.status = 'running' AND r.queue = q.name)::int)
           END AS room
      FROM unnest($1::text[]) AS q(name)
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
    RETURNING {JOB_COLUMNS}
), ev AS (
    INSERT INTO job_events (job_id, at, from_status, to_status, attempt, worker_id)
    SELECT id, now(), 'queued', 'running', attempt, worker_id FROM claimed
)
SELECT * FROM claimed ORDER BY priority DESC, run_at, id
"""

# Serialises claimers of concurrency-limited queues (ordered to avoid deadlocks).
LOCK_LIMITED_QUEUES_SQL = """
SELECT name FROM queues
 WHERE name = ANY($1::text[]) AND concurrency IS NOT NULL
 ORDER BY name
   FOR UPDATE
"""
LIMITED_QUEUES_SQL = "SELECT name FROM queues WHERE concurrency IS NOT NULL"

# Outcomes ------------------------------------------------------------------------------------
# Guarded by (id, lease_token, status='running'). The status is compared with a column of the
# materialized input (`i.running`) rather than a literal on purpose: a literal makes
# `status = 'running'` a restriction the planner may answer with a scan of every running job
# (jobs_reap_idx / jobs_status_id_idx) whenever stale statistics say few jobs run, which turns
# a 100-job batch into an O(running jobs) statement; as a join clause it can only be checked
# per id looked up through the primary key. The self-join `o` supplies the pre-update
# worker_id for the event row (RETURNING only sees the new, cleared value).
COMPLETE_SQL = """
WITH input AS MATERIALIZED (
    SELECT t.*, 'running'::text AS running
      FROM unnest($1::uuid[], $2::int8[], $3::text[]) AS t(id, lease_token, result)
), done AS (
    UPDATE jobs j
       SET status = 'completed', result = i.result::jsonb, finished_at = now(), updated_at = now(),
           worker_id = NULL, lease_expires_at = NULL
      FROM input i JOIN jobs o ON o.id = i.id
     WHERE j.id = i.id AND j.lease_token = i.lease_token AND j.status = i.running
    RETURNING j.id, j.attempt, o.worker_id
), ev AS (
    INSERT INTO job_events (job_id, at, from_status, to_status, attempt, worker_id)
    SELECT id, now(), 'running', 'completed', attempt, worker_id FROM done
)
SELECT id FROM done
"""

FAIL_SQL = """
WITH input AS MATERIALIZED (
    SELECT t.*, 'running'::text AS running
      FROM unnest($1::uuid[], $2::int8[], $3::text[], $4::timestamptz[])
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
    RETURNING j.id, j.status, j.attempt, o.worker_id, i.error
), ev AS (
    INSERT INTO job_events (job_id, at, from_status, to_status, attempt, worker_id, message)
    SELECT id, now(), 'running', status, attempt, worker_id, error FROM failed
)
SELECT id FROM failed
"""

RELEASE_SQL = """
WITH input AS MATERIALIZED (
    SELECT t.*, 'running'::text AS running
      FROM unnest($1::uuid[], $2::int8[], $3::timestamptz[], $4::text[])
           AS t(id, lease_token, run_at, reason)
), released AS (
    UPDATE jobs j
       SET status = CASE WHEN i.run_at IS NULL THEN 'queued' ELSE 'scheduled' END,
           run_at = coalesce(i.run_at, now()),
           attempt = greatest(j.attempt - 1, 0), updated_at = now(),
           worker_id = NULL, lease_expires_at = NULL
      FROM input i JOIN jobs o ON o.id = i.id
     WHERE j.id = i.id AND j.lease_token = i.lease_token AND j.status = i.running
    RETURNING j.id, j.queue, j.status, j.attempt, o.worker_id, i.reason
), ev AS (
    INSERT INTO job_events (job_id, at, from_status, to_status, attempt, worker_id, message)
    SELECT id, now(), 'running', status, attempt, worker_id, reason FROM released
), notified AS (
    SELECT count(pg_notify($5, d.queue)) AS n
      FROM (SELECT DISTINCT queue FROM released WHERE status = 'queued') d
)
SELECT released.id FROM notified LEFT JOIN released ON true
"""

HEARTBEAT_SQL = """
WITH input AS MATERIALIZED (
    SELECT t.*, 'running'::text AS running FROM unnest($2::uuid[], $3::int8[]) AS t(id, lease_token)
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
"""

# Housekeeping --------------------------------------------------------------------------------

REAP_SQL = """
WITH expired AS (
    SELECT id, worker_id FROM jobs
     WHERE status = 'running' AND lease_expires_at < now()
     ORDER BY lease_expires_at
     LIMIT $1
       FOR UPDATE SKIP LOCKED
), reaped AS (
    UPDATE jobs j
       SET status = CASE WHEN j.attempt > j.max_retries THEN 'dead' ELSE 'queued' END,
           finished_at = CASE WHEN j.attempt > j.max_retries THEN now() END,
           last_error = 'lease expired (worker ' || coalesce(e.worker_id, 'unknown') || ')',
           worker_id = NULL, lease_expires_at = NULL, updated_at = now()
      FROM expired e
     WHERE j.id = e.id
    RETURNING j.id, j.queue, j.status, j.attempt, e.worker_id, j.last_error
), ev AS (
    INSERT INTO job_events (job_id, at, from_status, to_status, attempt, worker_id, message)
    SELECT id, now(), 'running', status, attempt, worker_id, last_error FROM reaped
), notified AS (
    SELECT count(pg_notify($2, d.queue)) AS n
      FROM (SELECT DISTINCT queue FROM reaped WHERE status = 'queued') d
)
SELECT reaped.id, reaped.status, reaped.attempt, reaped.worker_id
  FROM notified LEFT JOIN reaped ON true
"""

PROMOTE_SQL = """
WITH due AS (
    SELECT id, status FROM jobs
     WHERE status IN ('scheduled', 'retrying') AND run_at <= now()
     ORDER BY run_at
     LIMIT $1
       FOR UPDATE SKIP LOCKED
), moved AS (
    UPDATE jobs j SET status = 'queued', updated_at = now()
      FROM due d
     WHERE j.id = d.id
    RETURNING j.id, j.queue, j.attempt, d.status AS from_status
), ev AS (
    INSERT INTO job_events (job_id, at, from_status, to_status, attempt)
    SELECT id, now(), from_status, 'queued', attempt FROM moved
), notified AS (
    SELECT count(pg_notify($2, d.queue)) AS n FROM (SELECT DISTINCT queue FROM moved) d
)
SELECT (SELECT count(*) FROM moved) AS moved FROM notified
"""

# job_events has no foreign key to jobs (migration 0003: its per-row check cost a quarter of a
# batched insert), so every statement that deletes jobs deletes their events with them.
PRUNE_SQL = """
WITH gone AS (
    DELETE FROM jobs WHERE id = ANY(ARRAY(
        SELECT id FROM jobs
         WHERE status = $1 AND status IN ('completed', 'dead', 'cancelled') AND finished_at < $2
         LIMIT $3))
    RETURNING id
), ev AS (
    DELETE FROM job_events WHERE job_id IN (SELECT id FROM gone)
)
SELECT count(*) FROM gone
"""
PRUNE_BATCH = 5000

# Operator actions ------------------------------------------------------------------------------
# The row is locked first (`cur`), so the reported previous status is the one the update saw.

CANCEL_SQL = f"""
WITH cur AS (
    SELECT id, status, worker_id FROM jobs WHERE id = $1 FOR UPDATE
), upd AS (
    UPDATE jobs j
       SET status = 'cancelled', finished_at = now(), updated_at = now(),
           worker_id = NULL, lease_expires_at = NULL
      FROM cur
     WHERE j.id = cur.id AND cur.status NOT IN ('completed', 'dead', 'cancelled')
    RETURNING {", ".join("j." + c for c in JOB_COLUMNS.split(", "))},
              cur.status AS prev_status, cur.worker_id AS prev_worker_id
), ev AS (
    INSERT INTO job_events (job_id, at, from_status, to_status, attempt, worker_id, message)
    SELECT id, now(), prev_status, 'cancelled', attempt, prev_worker_id, $2 FROM upd
)
SELECT upd.*, cur.status AS cur_status FROM cur LEFT JOIN upd ON true
"""

REQUEUE_DEAD_SQL = f"""
WITH cur AS (
    SELECT id, status FROM jobs WHERE id = $1 FOR UPDATE
), upd AS (
    UPDATE jobs j
       SET status = 'queued', attempt = 0, payload = coalesce($2::jsonb, j.payload),
           run_at = now(), finished_at = NULL, result = NULL, updated_at = now(),
           worker_id = NULL, lease_expires_at = NULL
      FROM cur
     WHERE j.id = cur.id AND cur.status = 'dead'
    RETURNING {", ".join("j." + c for c in JOB_COLUMNS.split(", "))}
), ev AS (
    INSERT INTO job_events (job_id, at, from_status, to_status, attempt, message)
    SELECT id, now(), 'dead', 'queued', 0, $3 FROM upd
), notified AS (
    SELECT count(pg_notify($4, queue)) AS n FROM upd
)
SELECT upd.*, cur.status AS cur_status FROM cur LEFT JOIN upd ON true CROSS JOIN notified
"""

DISCARD_DEAD_SQL = """
WITH gone AS (
    DELETE FROM jobs WHERE id = ANY($1::uuid[]) AND status = 'dead' RETURNING id
), ev AS (
    DELETE FROM job_events WHERE job_id IN (SELECT id FROM gone)
)
SELECT count(*) FROM gone
"""

# Queues ---------------------------------------------------------------------------------------

GET_QUEUE_SQL = "SELECT name, paused, max_depth, concurrency FROM queues WHERE name = $1"
LIST_QUEUES_SQL = "SELECT name, paused, max_depth, concurrency FROM queues ORDER BY name"
UPSERT_QUEUE_SQL = """
INSERT INTO queues (name, paused, max_depth, concurrency) VALUES ($1, $2, $3, $4)
ON CONFLICT (name) DO UPDATE
   SET paused = EXCLUDED.paused, max_depth = EXCLUDED.max_depth,
       concurrency = EXCLUDED.concurrency
RETURNING name, paused, max_depth, concurrency
"""

# Workers --------------------------------------------------------------------------------------

WORKER_COLUMNS = "id, hostname, pid, queues, concurrency, started_at, last_seen_at, running, meta"
REGISTER_WORKER_SQL = """
INSERT INTO workers (id, hostname, pid, queues, concurrency, started_at, last_seen_at, running,
                     meta)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (id) DO UPDATE
   SET hostname = EXCLUDED.hostname, pid = EXCLUDED.pid, queues = EXCLUDED.queues,
       concurrency = EXCLUDED.concurrency, started_at = EXCLUDED.started_at,
       last_seen_at = EXCLUDED.last_seen_at, running = EXCLUDED.running, meta = EXCLUDED.meta
"""
TOUCH_WORKER_SQL = "UPDATE workers SET last_seen_at = now(), running = $2 WHERE id = $1"
TOUCH_WORKER_META_SQL = (
    "UPDATE workers SET last_seen_at = now(), running = $2, meta = $3 WHERE id = $1"
)
DEREGISTER_WORKER_SQL = "DELETE FROM workers WHERE id = $1"
LIST_WORKERS_SQL = f"SELECT {WORKER_COLUMNS} FROM workers ORDER BY id"
PRUNE_WORKERS_SQL = "DELETE FROM workers WHERE last_seen_at < $1"

# Schedules ------------------------------------------------------------------------------------

SCHEDULE_COLUMNS = (
    "name, cron, timezone, type, payload, queue, priority, max_retries, timeout, enabled, "
    "next_run_at, last_run_at, created_at, updated_at"
)
UPSERT_SCHEDULE_SQL = f"""
INSERT INTO schedules (name, cron, timezone, type, payload, queue, priority, max_retries,
                       timeout, enabled, next_run_at, last_run_at, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, now(), now())
ON CONFLICT (name) DO UPDATE
   SET cron = EXCLUDED.cron, timezone = EXCLUDED.timezone, type = EXCLUDED.type,
       payload = EXCLUDED.payload, queue = EXCLUDED.queue, priority = EXCLUDED.priority,
       max_retries = EXCLUDED.max_retries, timeout = EXCLUDED.timeout,
       enabled = EXCLUDED.enabled,
       next_run_at = coalesce(EXCLUDED.next_run_at, schedules.next_run_at),
       last_run_at = coalesce(EXCLUDED.last_run_at, schedules.last_run_at),
       updated_at = now()
RETURNING {SCHEDULE_COLUMNS}
"""
GET_SCHEDULE_SQL = f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE name = $1"
LIST_SCHEDULES_SQL = f"SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY name"
DELETE_SCHEDULE_SQL = "DELETE FROM schedules WHERE name = $1"
DUE_SCHEDULES_SQL = f"""
SELECT {SCHEDULE_COLUMNS} FROM schedules
 WHERE enabled AND next_run_at <= $1
 ORDER BY next_run_at, name
"""
FIRE_SCHEDULE_SQL = """
UPDATE schedules SET next_run_at = $3, last_run_at = $2, updated_at = now()
 WHERE name = $1 AND next_run_at = $2
"""

# Users and API tokens -------------------------------------------------------------------------

USER_COLUMNS = "username, role, tenant, password_hash, disabled, created_at, updated_at"
INSERT_USER_SQL = f"""
INSERT INTO users (username, role, tenant, password_hash, disabled)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (username) DO NOTHING
RETURNING {USER_COLUMNS}
"""
GET_USER_SQL = f"SELECT {USER_COLUMNS} FROM users WHERE username = $1"
LIST_USERS_SQL = f"SELECT {USER_COLUMNS} FROM users ORDER BY username"
UPDATE_USER_SQL = f"""
UPDATE users SET role = $2, tenant = $3, password_hash = $4, disabled = $5, updated_at = now()
 WHERE username = $1
RETURNING {USER_COLUMNS}
"""

TOKEN_COLUMNS = "jti, name, role, tenant, created_by, created_at, expires_at, revoked_at"
INSERT_TOKEN_SQL = f"""
INSERT INTO api_tokens (jti, name, role, tenant, created_by, expires_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (jti) DO NOTHING
RETURNING {TOKEN_COLUMNS}
"""
GET_TOKEN_SQL = f"SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE jti = $1"
LIST_TOKENS_SQL = f"SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at, jti"
REVOKE_TOKEN_SQL = f"""
UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE jti = $1
RETURNING {TOKEN_COLUMNS}
"""

# Leadership ------------------------------------------------------------------------------------

TRY_LOCK_SQL = "SELECT pg_try_advisory_lock(hashtext($1))"
UNLOCK_SQL = "SELECT pg_advisory_unlock(hashtext($1))"

# ---------------------------------------------------------------------------------------------

_TERMINAL_VALUES = frozenset(s.value for s in TERMINAL)

# Errors meaning "the database is not reachable", as opposed to a bug or a constraint.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    # A connection the server killed while it sat idle (restart, pg_terminate_backend) can
    # report its broken state this way on its next query.
    asyncpg.exceptions.InternalClientError,
)

P = ParamSpec("P")
R = TypeVar("R")


def _unavailable_as_store_error(
    fn: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Callers handle one error type for "database down" whatever the driver raised."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"PostgreSQL unavailable: {type(exc).__name__}: {exc}") from exc

    return wrapper


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def parse_url(url: str) -> tuple[str, str]:
    """Split a store URL into the DSN asyncpg understands and the schema name."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = "public"
    kept: list[tuple[str, str]] = []
    for key, value in query:
        if key == "schema":
            schema = value or "public"
        else:
            kept.append((key, value))
    scheme = "postgresql" if parts.scheme == "postgres" else parts.scheme
    dsn = urlunsplit(parts._replace(scheme=scheme, query=urlencode(kept)))
    return dsn, schema


def channel_for(schema: str) -> str:
    """NOTIFY channel of a schema; identifiers are capped at 63 bytes, so long names are hashed."""
    name = f"conveyor_{schema}"
    if len(name.encode()) > 63:
        name = "conveyor_" + hashlib.sha1(schema.encode()).hexdigest()
    return name


def _dumps(value: Any) -> str:
    """JSON text for array parameters: asyncpg would read a list inside a jsonb[] argument as
    another array dimension, so JSON values in arrays travel as text and are cast in SQL."""
    return orjson.dumps(value).decode()


def _encode_jsonb(value: Any) -> bytes:
    # Naive datetimes are taken as UTC (validated submissions are always aware).
    return b"\x01" + orjson.dumps(value, option=orjson.OPT_NAIVE_UTC)


def _decode_jsonb(data: bytes) -> Any:
    return orjson.loads(data[1:])


async def _init_connection(conn: asyncpg.Connection) -> None:
    """Binary jsonb via orjson: no text round trip through the stdlib json module."""
    await conn.set_type_codec(
        "jsonb",
        encoder=_encode_jsonb,
        decoder=_decode_jsonb,
        schema="pg_catalog",
        format="binary",
    )
    await conn.set_type_codec(
        "json", encoder=orjson.dumps, decoder=orjson.loads, schema="pg_catalog", format="binary"
    )


_STATUS: dict[str, JobStatus] = {s.value: s for s in JobStatus}
_JOB_FIELDS = JOB_COLUMNS.split(", ")
_N_JOB = len(_JOB_FIELDS)
if [f.name for f in dataclasses.fields(Job)] != _JOB_FIELDS:  # pragma: no cover
    raise RuntimeError("JOB_COLUMNS must list models.Job's fields in declaration order")


def _job(r: asyncpg.Record) -> Job:
    """Rows put the job's columns first, in Job's field order, so decoding is positional: this
    runs for every claimed job, and name lookups plus keyword passing were a visible cost."""
    job = Job(*r[:_N_JOB])
    job.status = _STATUS[job.status]
    return job


def _new_job(job_id: uuid.UUID, new: NewJob, r: asyncpg.Record) -> Job:
    """The job just inserted from `new`: `r` is (id, status, run_at, created_at)."""
    created_at = r[3]
    return Job(
        job_id, new.queue, new.type, new.payload, new.priority, _STATUS[r[1]], r[2], 0,
        new.max_retries, float(new.timeout), new.unique_key, new.tags, new.tenant, None, None,
        None, None, 0, created_at, None, None, created_at,
    )  # fmt: skip


def _schedule(r: asyncpg.Record) -> Schedule:
    return Schedule(
        name=r["name"],
        cron=r["cron"],
        timezone=r["timezone"],
        type=r["type"],
        payload=r["payload"],
        queue=r["queue"],
        priority=r["priority"],
        max_retries=r["max_retries"],
        timeout=r["timeout"],
        enabled=r["enabled"],
        next_run_at=r["next_run_at"],
        last_run_at=r["last_run_at"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
    )


def _user(r: asyncpg.Record) -> User:
    return User(
        username=r["username"],
        role=Role(r["role"]),
        tenant=r["tenant"],
        password_hash=r["password_hash"],
        disabled=r["disabled"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
    )


def _token(r: asyncpg.Record) -> ApiToken:
    return ApiToken(
        jti=r["jti"],
        name=r["name"],
        role=Role(r["role"]),
        tenant=r["tenant"],
        created_by=r["created_by"],
        created_at=r["created_at"],
        expires_at=r["expires_at"],
        revoked_at=r["revoked_at"],
    )


def _queue_settings(r: asyncpg.Record) -> QueueSettings:
    return QueueSettings(
        name=r["name"], paused=r["paused"], max_depth=r["max_depth"], concurrency=r["concurrency"]
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release a pooled connection without asyncpg's reset query (RESET ALL, UNLISTEN *,
    advisory unlock, CLOSE ALL): a round trip on every release of every hot-path call, for
    state Conveyor never leaves on a pooled connection (session advisory locks and LISTEN live
    on dedicated connections; settings are fixed at connect). The pool still rolls back an
    open transaction and drops listeners before this runs."""


def _usable(conn: asyncpg.Connection) -> bool:
    """False once the connection died: closed, or taken back by the pool when it was lost."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        return False


class StickyConnection:
    """One pooled connection held for a hot path that mostly runs one call at a time (the
    submit coalescer's inserts; the NOTIFYs after them).

    asyncpg's acquire + release cost ~70 us of CPU per use here (release creates a task), as
    much as the query itself; holding the connection skips both. A caller that finds it busy
    (concurrent batch submits) uses the pool as before. A connection that saw anything but a
    domain error (a dropped socket, a cancellation mid-query) goes back to the pool, which
    knows how to clean or discard it, and the next call takes a fresh one.
    """

    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._conn: asyncpg.Connection | None = None
        self._busy = False
        self._closed = False

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        pool = self._store.pool
        if self._busy or self._closed:
            async with pool.acquire() as conn:
                yield conn
            return
        self._busy = True
        try:
            if self._conn is not None and not _usable(self._conn):
                await self._drop()
            if self._conn is None:
                self._conn = await pool.acquire()
            try:
                yield self._conn
            except ConveyorError:
                raise
            except BaseException:
                await self._drop()
                raise
        finally:
            self._busy = False
            if self.closed:  # release() came while this call was in flight
                await self._drop()

    @property
    def closed(self) -> bool:
        return self._closed

    async def release(self) -> None:
        """At shutdown: later calls use the pool; a call in flight hands the connection back
        when it ends, rather than have it reset from under its query."""
        self._closed = True
        if not self._busy:
            await self._drop()

    async def _drop(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                await self._store.pool.release(conn)


class NotifyCoalescer:
    """Sends the enqueue NOTIFY after commit, at most one statement in flight.

    A NOTIFY inside the enqueue transaction takes PostgreSQL's global notify lock at commit
    and holds it across the WAL flush, so concurrent submits stop sharing group commits:
    measured here, single-job submits fell from ~4,000/s to ~1,700/s (pgbench) and far lower
    through the pool. Sending it afterwards keeps the guarantee workers rely on: every commit
    of ready jobs is followed by a NOTIFY that starts after that commit. Commits that land
    while one NOTIFY is in flight are folded into the next, so the rate of NOTIFYs is bounded
    by one round trip, not by the submit rate.
    """

    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._pending: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def notify(self, queues: set[str]) -> None:
        if not queues:
            return
        self._pending |= queues
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._send())

    async def _send(self) -> None:
        while self._pending:
            queues, self._pending = sorted(self._pending), set()
            try:
                async with self._store.notify_conn.acquire() as conn:
                    await conn.execute(NOTIFY_QUEUES_SQL, self._store.channel, queues)
            except Exception:
                # Workers fall back to polling; a lost wake-up costs latency, never a job.
                log.warning("NOTIFY failed; workers will find the jobs by polling", exc_info=True)
                return

    async def drain(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task


class PostgresStore:
    """The production store. Safe to share between tasks of one event loop."""

    #: How long the list of concurrency-limited queues is trusted when choosing a claim path.
    #: Staleness is harmless: the SQL itself never claims from a limited queue without its lock.
    LIMITED_QUEUES_TTL = 1.0

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        command_timeout: float | None = 60.0,
        connect_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.dsn, self.schema = parse_url(url)
        self.channel = channel_for(self.schema)
        self._min_size = min_size
        self._max_size = max_size
        self._command_timeout = command_timeout
        self._connect_timeout = connect_timeout
        self._server_settings = {
            "search_path": quote_ident(self.schema),
            "application_name": "conveyor",
            # Our statements are short OLTP ones; JIT compilation only adds latency to them.
            "jit": "off",
        }
        self._pool: asyncpg.Pool | None = None
        self._notifier = NotifyCoalescer(self)
        self.enqueue_conn = StickyConnection(self)
        self.notify_conn = StickyConnection(self)
        # LISTEN side
        self._listener: asyncpg.Connection | None = None
        self._listener_lock = asyncio.Lock()
        self._listener_retry_at = 0.0
        self._waiters: dict[int, tuple[frozenset[str], asyncio.Future[None]]] = {}
        self._next_waiter = 0
        self._missed: set[str] = set()
        # leadership: name -> dedicated connection, and the holder that owns the lock (if any)
        self._lead_conns: dict[str, asyncpg.Connection] = {}
        self._lead_holders: dict[str, str] = {}
        self._lead_lock = asyncio.Lock()
        # claim path choice
        self._limited: frozenset[str] = frozenset()
        self._limited_at = float("-inf")

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreUnavailable("PostgresStore is not connected (call connect() first)")
        return self._pool

    async def connect(self) -> None:
        if self._pool is not None:
            return
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                init=_init_connection,
                reset=_keep_session,
                server_settings=self._server_settings,
                command_timeout=self._command_timeout,
                timeout=self._connect_timeout,
            )
        except (*_UNAVAILABLE, asyncpg.InvalidCatalogNameError) as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc

    async def close(self) -> None:
        await self._notifier.drain()
        if self._pool is not None:
            for sticky in (self.enqueue_conn, self.notify_conn):
                await sticky.release()
        for fut in [f for _, f in self._waiters.values()]:
            if not fut.done():
                fut.set_result(None)
        if self._listener is not None:
            listener, self._listener = self._listener, None
            with contextlib.suppress(Exception):
                await listener.close(timeout=2)
        for name, conn in list(self._lead_conns.items()):
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)
            self._lead_conns.pop(name, None)
        self._lead_holders.clear()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), 5)
            except Exception:
                pool.terminate()

    @_unavailable_as_store_error
    async def migrate(self) -> list[str]:
        files = sorted(MIGRATIONS_DIR.glob("*.sql"))
        applied_now: list[str] = []
        async with self.pool.acquire() as conn, conn.transaction():
            # The lock comes first so that concurrent CREATE SCHEMA calls do not collide.
            await conn.execute(MIGRATE_LOCK_SQL, f"{self.schema}:migrate")
            ident = quote_ident(self.schema)
            await conn.execute(MIGRATE_CREATE_SCHEMA_SQL.format(schema=ident))
            await conn.execute(MIGRATE_SEARCH_PATH_SQL.format(schema=ident))
            await conn.execute(MIGRATE_TABLE_SQL)
            done = {r["name"] for r in await conn.fetch(MIGRATE_APPLIED_SQL)}
            for path in files:
                name = path.stem
                if name in done:
                    continue
                await conn.execute(path.read_text(encoding="utf-8"))
                await conn.execute(MIGRATE_RECORD_SQL, name)
                applied_now.append(name)
        if applied_now:
            # Statements prepared against the previous schema version must not be reused.
            await self.pool.expire_connections()
        return applied_now

    async def ping(self) -> None:
        try:
            await self.pool.fetchval(PING_SQL, timeout=5)
        except StoreUnavailable:
            raise
        except (*_UNAVAILABLE, asyncpg.InterfaceError) as exc:
            raise StoreUnavailable(f"PostgreSQL unavailable: {exc}") from exc

    # -- submitting ------------------------------------------------------------------------

    @_unavailable_as_store_error
    async def enqueue_many(self, jobs: Sequence[NewJob]) -> list[Enqueued]:
        if not jobs:
            return []
        # Within-batch duplicates of a unique_key never reach SQL: they resolve to the first.
        first_by_key: dict[str, int] = {}
        dup_of: dict[int, int] = {}
        to_insert: list[int] = []
        for i, job in enumerate(jobs):
            if job.unique_key is not None:
                first = first_by_key.get(job.unique_key)
                if first is not None:
                    dup_of[i] = first
                    continue
                first_by_key[job.unique_key] = i
            to_insert.append(i)
        batch = [jobs[i] for i in to_insert]
        async with self.enqueue_conn.acquire() as conn:
            if first_by_key:
                # Conflicts need a follow-up read; keep the whole batch all-or-nothing.
                async with conn.transaction():
                    inserted = await self._enqueue(conn, batch)
            else:
                inserted = await self._enqueue(conn, batch)
        # Committed: now wake the workers of queues that received ready jobs.
        self._notifier.notify(
            {e.job.queue for e in inserted if e.created and e.job.status is JobStatus.QUEUED}
        )
        results: list[Enqueued | None] = [None] * len(jobs)
        for i, res in zip(to_insert, inserted, strict=True):
            results[i] = res
        for i, first in dup_of.items():
            original = results[first]
            assert original is not None
            results[i] = Enqueued(original.job, created=False)
        return [r for r in results if r is not None]

    async def _enqueue(self, conn: asyncpg.Connection, jobs: Sequence[NewJob]) -> list[Enqueued]:
        """Insert jobs with distinct unique_keys; results in input order."""
        ids = [j.id if j.id is not None else new_job_id() for j in jobs]
        try:
            # The batch travels as one JSON document (encoded by orjson in one C call), not as
            # eleven arrays, whose element-by-element encoding cost more than the insert.
            rows = await conn.fetch(
                ENQUEUE_SQL,
                [
                    {
                        "id": job_id,
                        "queue": j.queue,
                        "type": j.type,
                        "payload": j.payload,
                        "priority": j.priority,
                        "run_at": j.run_at,
                        "max_retries": j.max_retries,
                        "timeout": j.timeout,
                        "unique_key": j.unique_key,
                        "tags": j.tags,
                        "tenant": j.tenant,
                    }
                    for job_id, j in zip(ids, jobs, strict=True)
                ],
            )
        except asyncpg.UniqueViolationError as exc:
            raise InvalidInput(f"a job with this id already exists: {exc.detail}") from exc
        full = rows[0]["full_queues"]
        if full:
            names = ", ".join(sorted(full))
            raise QueueFull(f"queue depth limit reached: {names}")
        # Only what the database decided comes back; the rest is the input (a batch's payloads
        # need not travel back and be decoded again).
        created = {r[0]: r for r in rows if r[0] is not None}
        results: list[Enqueued | None] = []
        missing: dict[str, int] = {}
        for i, (job_id, new) in enumerate(zip(ids, jobs, strict=True)):
            got = created.get(job_id)
            if got is not None:
                results.append(Enqueued(_new_job(job_id, new, got), created=True))
            else:
                assert new.unique_key is not None  # only a unique_key conflict skips a row
                missing[new.unique_key] = i
                results.append(None)
        if missing:
            live = {
                r["unique_key"]: _job(r)
                for r in await conn.fetch(LIVE_BY_UNIQUE_KEY_SQL, list(missing))
            }
            retry: list[int] = []
            for key, i in missing.items():
                existing = live.get(key)
                if existing is not None:
                    results[i] = Enqueued(existing, created=False)
                else:  # the conflicting job finished meanwhile: the key is free again
                    retry.append(i)
            if retry:
                again = await self._enqueue(conn, [jobs[i] for i in retry])
                for i, res in zip(retry, again, strict=True):
                    results[i] = res
        return [r for r in results if r is not None]

    # -- reading -------------------------------------------------------------------------------

    @_unavailable_as_store_error
    async def get_job(self, job_id: uuid.UUID) -> Job:
        row = await self.pool.fetchrow(GET_JOB_SQL, job_id)
        if row is None:
            raise JobNotFound(f"job {job_id} not found")
        return _job(row)

    @_unavailable_as_store_error
    async def get_jobs(self, job_ids: Sequence[uuid.UUID]) -> list[Job]:
        if not job_ids:
            return []
        return [_job(r) for r in await self.pool.fetch(GET_JOBS_SQL, list(job_ids))]

    @_unavailable_as_store_error
    async def list_jobs(
        self, flt: JobFilter, *, limit: int = 50, cursor: uuid.UUID | None = None
    ) -> JobPage:
        limit = max(1, limit)
        clauses: list[str] = []
        args: list[Any] = []
        values: dict[str, Any] = {
            "queue": flt.queue,
            "status": flt.status.value if flt.status is not None else None,
            "type": flt.type,
            "tag": flt.tag,
            "tenant": flt.tenant,
            "created_after": flt.created_after,
            "created_before": flt.created_before,
            "cursor": cursor,
        }
        for key, value in values.items():
            if value is not None:
                args.append(value)
                clauses.append(LIST_JOBS_FILTERS[key].format(len(args)))
        sql = LIST_JOBS_SELECT
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        args.append(limit + 1)
        sql += LIST_JOBS_TAIL.format(len(args))
        rows = await self.pool.fetch(sql, *args)
        jobs = [_job(r) for r in rows[:limit]]
        next_cursor = jobs[-1].id if len(rows) > limit else None
        return JobPage(jobs=jobs, next_cursor=next_cursor)

    @_unavailable_as_store_error
    async def job_events(self, job_id: uuid.UUID) -> list[JobEvent]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(JOB_EVENTS_SQL, job_id)
            if not rows and not await conn.fetchval(JOB_EXISTS_SQL, job_id):
                raise JobNotFound(f"job {job_id} not found")
        return [
            JobEvent(
                id=r["id"],
                job_id=r["job_id"],
                at=r["at"],
                from_status=JobStatus(r["from_status"]) if r["from_status"] else None,
                to_status=JobStatus(r["to_status"]),
                attempt=r["attempt"],
                worker_id=r["worker_id"],
                message=r["message"],
            )
            for r in rows
        ]

    @_unavailable_as_store_error
    async def count_by_queue_status(self) -> dict[str, dict[JobStatus, int]]:
        out: dict[str, dict[JobStatus, int]] = {}
        for r in await self.pool.fetch(COUNT_BY_QUEUE_STATUS_SQL):
            out.setdefault(r["queue"], {})[JobStatus(r["status"])] = r["n"]
        return out

    # -- the worker protocol ------------------------------------------------------------------

    async def _limited_queues(self, conn: asyncpg.Connection) -> frozenset[str]:
        now = time.monotonic()
        if now - self._limited_at > self.LIMITED_QUEUES_TTL:
            rows = await conn.fetch(LIMITED_QUEUES_SQL)
            self._limited = frozenset(r["name"] for r in rows)
            self._limited_at = now
        return self._limited

    @_unavailable_as_store_error
    async def claim(
        self, worker_id: str, queues: Sequence[str], limit: int, lease_seconds: float
    ) -> list[Job]:
        if limit <= 0 or not queues:
            return []
        names = list(dict.fromkeys(queues))
        lease = float(lease_seconds)
        async with self.pool.acquire() as conn:
            limited = [q for q in names if q in await self._limited_queues(conn)]
            if limited:
                # Slow path, only for concurrency-limited queues: lock their rows first, so the
                # claim statement (a fresh snapshot) counts every running job of those queues.
                async with conn.transaction():
                    locked = [r["name"] for r in await conn.fetch(LOCK_LIMITED_QUEUES_SQL, limited)]
                    rows = await conn.fetch(CLAIM_MANY_SQL, names, limit, worker_id, lease, locked)
            elif len(names) == 1:
                rows = await conn.fetch(CLAIM_ONE_SQL, names[0], limit, worker_id, lease)
            else:
                rows = await conn.fetch(CLAIM_MANY_SQL, names, limit, worker_id, lease, [])
        return [_job(r) for r in rows]

    @_unavailable_as_store_error
    async def complete_many(self, completions: Sequence[Completion]) -> list[uuid.UUID]:
        if not completions:
            return []
        rows = await self.pool.fetch(
            COMPLETE_SQL,
            [c.job_id for c in completions],
            [c.lease_token for c in completions],
            [None if c.result is None else _dumps(c.result) for c in completions],
        )
        return [r["id"] for r in rows]

    @_unavailable_as_store_error
    async def fail_many(self, failures: Sequence[Failure]) -> list[uuid.UUID]:
        if not failures:
            return []
        rows = await self.pool.fetch(
            FAIL_SQL,
            [f.job_id for f in failures],
            [f.lease_token for f in failures],
            [f.error for f in failures],
            [f.retry_at for f in failures],
        )
        return [r["id"] for r in rows]

    @_unavailable_as_store_error
    async def release_many(self, releases: Sequence[Release]) -> list[uuid.UUID]:
        if not releases:
            return []
        rows = await self.pool.fetch(
            RELEASE_SQL,
            [r.job_id for r in releases],
            [r.lease_token for r in releases],
            [r.run_at for r in releases],
            [r.reason for r in releases],
            self.channel,
        )
        return [r["id"] for r in rows if r["id"] is not None]

    @_unavailable_as_store_error
    async def heartbeat(
        self, worker_id: str, leases: Sequence[Lease], lease_seconds: float
    ) -> list[uuid.UUID]:
        rows = await self.pool.fetch(
            HEARTBEAT_SQL,
            worker_id,
            [le.job_id for le in leases],
            [le.lease_token for le in leases],
            float(lease_seconds),
        )
        return [r["id"] for r in rows]

    @_unavailable_as_store_error
    async def reap_expired(self, limit: int = 1000) -> list[ReapedJob]:
        rows = await self.pool.fetch(REAP_SQL, limit, self.channel)
        return [
            ReapedJob(
                job_id=r["id"],
                worker_id=r["worker_id"],
                attempt=r["attempt"],
                new_status=JobStatus(r["status"]),
            )
            for r in rows
            if r["id"] is not None
        ]

    @_unavailable_as_store_error
    async def promote_due(self, limit: int = 1000) -> int:
        moved: int = await self.pool.fetchval(PROMOTE_SQL, limit, self.channel)
        return moved

    async def wait_for_jobs(self, queues: Sequence[str], timeout: float) -> None:
        """Never raises: a missing listener degrades to polling at `timeout`."""
        if timeout <= 0:
            return
        deadline = time.monotonic() + timeout
        await self._ensure_listener(timeout)
        remaining = deadline - time.monotonic()
        wanted = frozenset(queues)
        missed = self._missed & wanted if wanted else self._missed
        if remaining <= 0 or missed:
            self._missed -= missed
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        key = self._next_waiter
        self._next_waiter += 1
        self._waiters[key] = (wanted, fut)
        try:
            await asyncio.wait((fut,), timeout=remaining)
        finally:
            self._waiters.pop(key, None)
            if not fut.done():
                fut.cancel()

    async def _ensure_listener(self, budget: float) -> None:
        if self._listener is not None and not self._listener.is_closed():
            return
        if time.monotonic() < self._listener_retry_at or self._pool is None:
            return
        async with self._listener_lock:
            if self._listener is not None and not self._listener.is_closed():
                return
            try:
                conn = await asyncpg.connect(
                    self.dsn,
                    server_settings=self._server_settings,
                    timeout=max(0.1, min(budget, self._connect_timeout)),
                )
            except Exception as exc:  # any failure: poll for now, retry the LISTEN later
                self._listener_retry_at = time.monotonic() + LISTEN_RETRY_SECONDS
                log.warning("LISTEN connection failed, polling instead: %s", exc)
                return
            try:
                await conn.add_listener(self.channel, self._on_notify)
            except Exception as exc:
                self._listener_retry_at = time.monotonic() + LISTEN_RETRY_SECONDS
                log.warning("LISTEN failed, polling instead: %s", exc)
                with contextlib.suppress(Exception):
                    await conn.close(timeout=1)
                return
            conn.add_termination_listener(self._on_listener_lost)
            self._listener = conn

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: object) -> None:
        queue = str(payload)
        woken = False
        for queues, fut in self._waiters.values():
            if not fut.done() and (not queues or queue in queues):
                fut.set_result(None)
                woken = True
        if not woken:
            # Nobody was waiting (the worker was mid-claim): remember it, or the next wait
            # would sleep through jobs that are already there until the polling fallback.
            self._missed.add(queue)

    def _on_listener_lost(self, conn: Any) -> None:
        """Notifications may have been missed: wake everyone to poll once, reconnect lazily."""
        if self._listener is conn:
            self._listener = None
        for _, fut in self._waiters.values():
            if not fut.done():
                fut.set_result(None)

    # -- operator actions --------------------------------------------------------------------

    @_unavailable_as_store_error
    async def cancel(self, job_id: uuid.UUID, reason: str = "cancelled") -> Job:
        row = await self.pool.fetchrow(CANCEL_SQL, job_id, reason)
        if row is None:
            raise JobNotFound(f"job {job_id} not found")
        if row["id"] is None:
            ensure_transition(JobStatus(row["cur_status"]), JobStatus.CANCELLED)
            raise IllegalTransition(f"job {job_id} cannot be cancelled")  # pragma: no cover
        return _job(row)

    @_unavailable_as_store_error
    async def requeue_dead(self, job_id: uuid.UUID, payload: JSON | None = None) -> Job:
        message = "requeued with a new payload" if payload is not None else "requeued"
        try:
            row = await self.pool.fetchrow(REQUEUE_DEAD_SQL, job_id, payload, message, self.channel)
        except asyncpg.UniqueViolationError as exc:
            raise IllegalTransition(
                f"job {job_id} cannot be requeued: a live job has the same unique_key"
            ) from exc
        if row is None:
            raise JobNotFound(f"job {job_id} not found")
        if row["id"] is None:
            status = JobStatus(row["cur_status"])
            raise IllegalTransition(f"only dead jobs can be requeued; job is {status.value}")
        return _job(row)

    @_unavailable_as_store_error
    async def discard_dead(self, job_ids: Sequence[uuid.UUID]) -> int:
        if not job_ids:
            return 0
        n: int = await self.pool.fetchval(DISCARD_DEAD_SQL, list(job_ids))
        return n

    # -- queues --------------------------------------------------------------------------------

    @_unavailable_as_store_error
    async def get_queue_settings(self, name: str) -> QueueSettings:
        row = await self.pool.fetchrow(GET_QUEUE_SQL, name)
        return QueueSettings(name=name) if row is None else _queue_settings(row)

    @_unavailable_as_store_error
    async def set_queue_settings(self, settings: QueueSettings) -> QueueSettings:
        row = await self.pool.fetchrow(
            UPSERT_QUEUE_SQL,
            settings.name,
            settings.paused,
            settings.max_depth,
            settings.concurrency,
        )
        self._limited_at = float("-inf")  # pick up a new concurrency limit at the next claim
        return _queue_settings(row)

    @_unavailable_as_store_error
    async def list_queue_settings(self) -> list[QueueSettings]:
        return [_queue_settings(r) for r in await self.pool.fetch(LIST_QUEUES_SQL)]

    # -- workers -------------------------------------------------------------------------------

    @_unavailable_as_store_error
    async def register_worker(self, info: WorkerInfo) -> None:
        await self.pool.execute(
            REGISTER_WORKER_SQL,
            info.id,
            info.hostname,
            info.pid,
            list(info.queues),
            info.concurrency,
            info.started_at,
            info.last_seen_at,
            info.running,
            info.meta,
        )

    @_unavailable_as_store_error
    async def touch_worker(self, worker_id: str, running: int, meta: JSON | None = None) -> None:
        if meta is None:
            await self.pool.execute(TOUCH_WORKER_SQL, worker_id, running)
        else:
            await self.pool.execute(TOUCH_WORKER_META_SQL, worker_id, running, meta)

    @_unavailable_as_store_error
    async def deregister_worker(self, worker_id: str) -> None:
        await self.pool.execute(DEREGISTER_WORKER_SQL, worker_id)

    @_unavailable_as_store_error
    async def list_workers(self) -> list[WorkerInfo]:
        return [
            WorkerInfo(
                id=r["id"],
                hostname=r["hostname"],
                pid=r["pid"],
                queues=list(r["queues"]),
                concurrency=r["concurrency"],
                started_at=r["started_at"],
                last_seen_at=r["last_seen_at"],
                running=r["running"],
                meta=r["meta"],
            )
            for r in await self.pool.fetch(LIST_WORKERS_SQL)
        ]

    @_unavailable_as_store_error
    async def prune_workers(self, seen_before: datetime) -> int:
        return _rowcount(await self.pool.execute(PRUNE_WORKERS_SQL, seen_before))

    # -- schedules -----------------------------------------------------------------------------

    @_unavailable_as_store_error
    async def upsert_schedule(self, schedule: Schedule) -> Schedule:
        row = await self.pool.fetchrow(
            UPSERT_SCHEDULE_SQL,
            schedule.name,
            schedule.cron,
            schedule.timezone,
            schedule.type,
            schedule.payload,
            schedule.queue,
            schedule.priority,
            schedule.max_retries,
            float(schedule.timeout),
            schedule.enabled,
            schedule.next_run_at,
            schedule.last_run_at,
        )
        return _schedule(row)

    @_unavailable_as_store_error
    async def get_schedule(self, name: str) -> Schedule:
        row = await self.pool.fetchrow(GET_SCHEDULE_SQL, name)
        if row is None:
            raise ScheduleNotFound(f"schedule {name!r} not found")
        return _schedule(row)

    @_unavailable_as_store_error
    async def list_schedules(self) -> list[Schedule]:
        return [_schedule(r) for r in await self.pool.fetch(LIST_SCHEDULES_SQL)]

    @_unavailable_as_store_error
    async def delete_schedule(self, name: str) -> None:
        if _rowcount(await self.pool.execute(DELETE_SCHEDULE_SQL, name)) == 0:
            raise ScheduleNotFound(f"schedule {name!r} not found")

    @_unavailable_as_store_error
    async def due_schedules(self, now: datetime) -> list[Schedule]:
        return [_schedule(r) for r in await self.pool.fetch(DUE_SCHEDULES_SQL, now)]

    @_unavailable_as_store_error
    async def fire_schedule(
        self, name: str, fire_at: datetime, next_run_at: datetime, job: NewJob
    ) -> Job | None:
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(FIRE_SCHEDULE_SQL, name, fire_at, next_run_at)
            if _rowcount(status) == 0:
                return None
            (res,) = await self._enqueue(conn, [job])
            return res.job

    # -- users and API tokens ------------------------------------------------------------------

    @_unavailable_as_store_error
    async def create_user(self, user: User) -> User:
        row = await self.pool.fetchrow(
            INSERT_USER_SQL,
            user.username,
            Role(user.role).value,
            user.tenant,
            user.password_hash,
            user.disabled,
        )
        if row is None:
            raise AlreadyExists(f"user {user.username!r} already exists", field="username")
        return _user(row)

    @_unavailable_as_store_error
    async def get_user(self, username: str) -> User | None:
        row = await self.pool.fetchrow(GET_USER_SQL, username)
        return None if row is None else _user(row)

    @_unavailable_as_store_error
    async def list_users(self) -> list[User]:
        return [_user(r) for r in await self.pool.fetch(LIST_USERS_SQL)]

    @_unavailable_as_store_error
    async def set_user(self, user: User) -> User:
        row = await self.pool.fetchrow(
            UPDATE_USER_SQL,
            user.username,
            Role(user.role).value,
            user.tenant,
            user.password_hash,
            user.disabled,
        )
        if row is None:
            raise UserNotFound(f"user {user.username!r} not found", field="username")
        return _user(row)

    @_unavailable_as_store_error
    async def create_api_token(self, token: ApiToken) -> ApiToken:
        row = await self.pool.fetchrow(
            INSERT_TOKEN_SQL,
            token.jti,
            token.name,
            Role(token.role).value,
            token.tenant,
            token.created_by,
            token.expires_at,
        )
        if row is None:
            raise AlreadyExists(f"API token {token.jti!r} already exists", field="jti")
        return _token(row)

    @_unavailable_as_store_error
    async def get_api_token(self, jti: str) -> ApiToken | None:
        row = await self.pool.fetchrow(GET_TOKEN_SQL, jti)
        return None if row is None else _token(row)

    @_unavailable_as_store_error
    async def list_api_tokens(self) -> list[ApiToken]:
        return [_token(r) for r in await self.pool.fetch(LIST_TOKENS_SQL)]

    @_unavailable_as_store_error
    async def revoke_api_token(self, jti: str) -> ApiToken:
        row = await self.pool.fetchrow(REVOKE_TOKEN_SQL, jti)
        if row is None:
            raise TokenNotFound(f"API token {jti!r} not found", field="jti")
        return _token(row)

    # -- coordination and housekeeping ----------------------------------------------------------

    async def try_lead(self, name: str, holder: str, ttl: float) -> bool:
        """The lock lives as long as a dedicated connection, so `ttl` is not needed here."""
        async with self._lead_lock:
            current = self._lead_holders.get(name)
            if current is not None and current != holder:
                return False  # another holder in this process leads
            conn = self._lead_conns.get(name)
            if current == holder and (conn is None or conn.is_closed()):
                # The session that held the lock is gone, so the lock went with it and someone
                # else may have led meanwhile: report the loss rather than silently re-acquire.
                await self._drop_lead_conn(name)
                return False
            try:
                if conn is None or conn.is_closed():
                    conn = await asyncpg.connect(
                        self.dsn,
                        server_settings=self._server_settings,
                        timeout=self._connect_timeout,
                    )
                    self._lead_conns[name] = conn
                if current == holder:
                    await conn.fetchval(PING_SQL, timeout=5)  # still alive => still ours
                    return True
                got = bool(await conn.fetchval(TRY_LOCK_SQL, f"{self.schema}:{name}", timeout=5))
            except Exception as exc:
                log.warning("leadership %r lost or unavailable: %s", name, exc)
                await self._drop_lead_conn(name)
                return False
            if got:
                self._lead_holders[name] = holder
            return got

    async def resign(self, name: str, holder: str) -> None:
        async with self._lead_lock:
            if self._lead_holders.get(name) != holder:
                return
            conn = self._lead_conns.get(name)
            if conn is not None and not conn.is_closed():
                with contextlib.suppress(Exception):
                    await conn.fetchval(UNLOCK_SQL, f"{self.schema}:{name}", timeout=5)
            await self._drop_lead_conn(name)

    async def _drop_lead_conn(self, name: str) -> None:
        self._lead_holders.pop(name, None)
        conn = self._lead_conns.pop(name, None)
        if conn is not None:
            try:
                await conn.close(timeout=2)
            except Exception:
                conn.terminate()

    @_unavailable_as_store_error
    async def prune_finished(self, status: JobStatus, finished_before: datetime) -> int:
        """Deletes in batches so no single transaction holds thousands of row locks for long."""
        if status.value not in _TERMINAL_VALUES:
            return 0
        total = 0
        while True:
            n: int = await self.pool.fetchval(PRUNE_SQL, status.value, finished_before, PRUNE_BATCH)
            total += n
            if n < PRUNE_BATCH:
                return total


def _rowcount(status: str) -> int:
    """The row count from a command tag such as 'DELETE 3' or 'UPDATE 0'."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except ValueError:
        return 0


__all__ = ["PostgresStore", "channel_for", "parse_url"]
