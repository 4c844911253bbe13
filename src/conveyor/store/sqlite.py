"""The SQLite store: the embedded default (`conveyor dev` runs on one file).

Design choices, and why:

* WAL mode, so readers never block the writer and several processes can share the file.
* Every write transaction starts with `BEGIN IMMEDIATE`: the write lock is taken up front, so
  two writers never deadlock trying to upgrade a read lock, and SQLite's busy handler (the
  busy_timeout) queues them. SQLITE_BUSY beyond that timeout retries the whole transaction.
* One writer connection and one reader connection per store, each serialised by an
  asyncio.Lock: aiosqlite connections are not safe for interleaved transactions, and a
  dashboard read must not wait behind (or slip into) a worker's write transaction.
* Times are INTEGER microseconds since the epoch: exact round-trips of datetimes, and plain
  integer comparisons in SQL.
* Batches travel as one JSON parameter read with json_each(), so a batch of any size is one
  statement with one cached plan, instead of a statement per job or an IN list per size.
* "now" is the process clock; with several processes on one host that is the same clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import orjson

from conveyor.domain.errors import (
    AlreadyExists,
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
from conveyor.domain.job import JSON, Job, JobStatus, NewJob, ensure_transition
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

__all__ = ["SQLiteStore"]

T = TypeVar("T")
Row = tuple[Any, ...]

MIGRATIONS_DIR = Path(__file__).parent / "migrations" / "sqlite"
BUSY_TIMEOUT_MS = 15_000
BUSY_RETRIES = 5

# --------------------------------------------------------------------------------------
# SQL
# --------------------------------------------------------------------------------------

PRAGMAS = (
    f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
    "PRAGMA foreign_keys = ON",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA temp_store = MEMORY",
    "PRAGMA cache_size = -32000",
)
PRAGMA_WAL = "PRAGMA journal_mode = WAL"

BEGIN_IMMEDIATE = "BEGIN IMMEDIATE"
BEGIN_DEFERRED = "BEGIN"
COMMIT = "COMMIT"
ROLLBACK = "ROLLBACK"
PING = "SELECT 1"

CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name       TEXT    PRIMARY KEY NOT NULL,
    applied_at INTEGER NOT NULL
)
"""
SELECT_MIGRATIONS = "SELECT name FROM schema_migrations"
INSERT_MIGRATION = "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)"

JOB_COLUMNS = (
    "id, queue, type, payload, priority, status, run_at, attempt, max_retries, timeout, "
    "unique_key, tags, tenant, result, last_error, worker_id, lease_expires_at, lease_token, "
    "created_at, started_at, finished_at, updated_at"
)

INSERT_JOB = f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES ({', '.join('?' * 22)})"

INSERT_EVENT = """
INSERT INTO job_events (job_id, at, from_status, to_status, attempt, worker_id, message)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""

SELECT_LIVE_BY_UNIQUE_KEYS = f"""
SELECT {JOB_COLUMNS} FROM jobs
WHERE unique_key IN (SELECT value FROM json_each(?))
  AND status NOT IN ('completed', 'dead', 'cancelled')
"""

# Queues of the batch that have a depth limit, with their current depth.
SELECT_DEPTH_LIMITS = """
SELECT q.name, q.max_depth,
       (SELECT count(*) FROM jobs
        WHERE jobs.queue = q.name AND jobs.status IN ('queued', 'scheduled', 'retrying'))
FROM queues AS q
WHERE q.max_depth IS NOT NULL AND q.name IN (SELECT value FROM json_each(?))
"""

SELECT_JOB = f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"
SELECT_JOBS = f"SELECT {JOB_COLUMNS} FROM jobs WHERE id IN (SELECT value FROM json_each(?))"
SELECT_JOB_STATE = "SELECT status, attempt, worker_id, queue FROM jobs WHERE id = ?"
JOB_EXISTS = "SELECT 1 FROM jobs WHERE id = ?"

LIST_JOBS = f"SELECT {JOB_COLUMNS} FROM jobs WHERE {{where}} ORDER BY id DESC LIMIT ?"
LIST_FILTER_QUEUE = "queue = ?"
LIST_FILTER_STATUS = "status = ?"
LIST_FILTER_TYPE = "type = ?"
LIST_FILTER_TAG = "EXISTS (SELECT 1 FROM json_each(jobs.tags) AS t WHERE t.value = ?)"
LIST_FILTER_TENANT = "tenant = ?"
LIST_FILTER_CREATED_AFTER = "created_at >= ?"
LIST_FILTER_CREATED_BEFORE = "created_at < ?"
LIST_FILTER_CURSOR = "id < ?"
LIST_FILTER_ALL = "1"

SELECT_EVENTS = """
SELECT id, job_id, at, from_status, to_status, attempt, worker_id, message
FROM job_events WHERE job_id = ? ORDER BY id
"""

COUNT_BY_QUEUE_STATUS = "SELECT queue, status, count(*) FROM jobs GROUP BY queue, status"

# -- claim --------------------------------------------------------------------------------

# A cheap look on the reader before taking the write lock: idle pollers (possibly many
# processes) then never queue up on the write lock just to find nothing.
ANY_QUEUED = """
SELECT 1 FROM jobs
WHERE status = 'queued' AND queue IN (SELECT value FROM json_each(?)) LIMIT 1
"""

# Paused flag and, for queues with a concurrency limit, how many of their jobs run now.
SELECT_CLAIM_SETTINGS = """
SELECT name, paused, concurrency,
       CASE WHEN concurrency IS NULL THEN 0 ELSE
           (SELECT count(*) FROM jobs WHERE jobs.queue = queues.name AND jobs.status = 'running')
       END
FROM queues WHERE name IN (SELECT value FROM json_each(?))
"""

# One arm per queue: each walks the partial claim index in claim order and stops after its
# own limit, so no claim ever sorts the whole backlog (an IN list over queues would).
CLAIM_ARM = """
SELECT * FROM (
    SELECT id, priority, run_at FROM jobs
    WHERE queue = ? AND status = 'queued'
    ORDER BY priority DESC, run_at, id LIMIT ?
)"""
CLAIM_ARM_JOIN = " UNION ALL "

CLAIM = f"""
UPDATE jobs
SET status = 'running', attempt = attempt + 1, lease_token = lease_token + 1,
    worker_id = ?, lease_expires_at = ?, started_at = ?, updated_at = ?
WHERE id IN (
    SELECT id FROM ({{arms}}) ORDER BY priority DESC, run_at, id LIMIT ?
) AND status = 'queued'
RETURNING {JOB_COLUMNS}
"""

# -- guarded batch updates ----------------------------------------------------------------
# Events are written first from the same guarded join the UPDATE then applies: inside one
# BEGIN IMMEDIATE transaction both statements see the same rows, and the event still sees
# the worker_id that the UPDATE clears.

COMPLETE_EVENTS = """
INSERT INTO job_events (job_id, at, from_status, to_status, attempt, worker_id, message)
SELECT jobs.id, ?, 'running', 'completed', jobs.attempt, jobs.worker_id, NULL
FROM json_each(?) AS c CROSS JOIN jobs ON jobs.id = c.value ->> 0
WHERE jobs.lease_token = c.value ->> 1 AND +jobs.status = 'running'
"""
COMPLETE = """
UPDATE jobs
SET status = 'completed', result = c.value ->> 2, finished_at = ?, updated_at = ?,
    worker_id = NULL, lease_expires_at = NULL
FROM json_each(?) AS c
WHERE jobs.id = c.value ->> 0 AND jobs.lease_token = c.value ->> 1 AND +jobs.status = 'running'
RETURNING id
"""

FAIL_EVENTS = """
INSERT INTO job_events (job_id, at, from_status, to_status, attempt, worker_id, message)
SELECT jobs.id, ?, 'running',
       CASE WHEN f.value ->> 3 IS NULL THEN 'dead' ELSE 'retrying' END,
       jobs.attempt, jobs.worker_id, f.value ->> 2
FROM json_each(?) AS f CROSS JOIN jobs ON jobs.id = f.value ->> 0
WHERE jobs.lease_token = f.value ->> 1 AND +jobs.status = 'running'
"""
FAIL = """
UPDATE jobs
SET status = CASE WHEN f.value ->> 3 IS NULL THEN 'dead' ELSE 'retrying' END,
    run_at = coalesce(f.value ->> 3, jobs.run_at),
    finished_at = CASE WHEN f.value ->> 3 IS NULL THEN ? ELSE NULL END,
    last_error = f.value ->> 2, updated_at = ?, worker_id = NULL, lease_expires_at = NULL
FROM json_each(?) AS f
WHERE jobs.id = f.value ->> 0 AND jobs.lease_token = f.value ->> 1 AND +jobs.status = 'running'
RETURNING id
"""

RELEASE_EVENTS = """
INSERT INTO job_events (job_id, at, from_status, to_status, attempt, worker_id, message)
SELECT jobs.id, ?, 'running',
       CASE WHEN r.value ->> 2 IS NULL THEN 'queued' ELSE 'scheduled' END,
       max(jobs.attempt - 1, 0), jobs.worker_id, r.value ->> 3
FROM json_each(?) AS r CROSS JOIN jobs ON jobs.id = r.value ->> 0
WHERE jobs.lease_token = r.value ->> 1 AND +jobs.status = 'running'
"""
RELEASE = """
UPDATE jobs
SET status = CASE WHEN r.value ->> 2 IS NULL THEN 'queued' ELSE 'scheduled' END,
    run_at = coalesce(r.value ->> 2, ?),
    attempt = max(jobs.attempt - 1, 0), updated_at = ?, worker_id = NULL,
    lease_expires_at = NULL
FROM json_each(?) AS r
WHERE jobs.id = r.value ->> 0 AND jobs.lease_token = r.value ->> 1 AND +jobs.status = 'running'
RETURNING id, queue, status
"""

HEARTBEAT = """
UPDATE jobs SET lease_expires_at = ?, updated_at = ?
FROM json_each(?) AS l
WHERE jobs.id = l.value ->> 0 AND jobs.lease_token = l.value ->> 1 AND +jobs.status = 'running'
RETURNING id
"""
TOUCH_WORKER_SEEN = "UPDATE workers SET last_seen_at = ? WHERE id = ?"

# -- housekeeping -------------------------------------------------------------------------

ANY_EXPIRED = """
SELECT 1 FROM jobs INDEXED BY jobs_lease_idx
WHERE status = 'running' AND lease_expires_at <= ? LIMIT 1
"""
SELECT_EXPIRED = """
SELECT id, worker_id, attempt, max_retries, lease_token, queue FROM jobs INDEXED BY jobs_lease_idx
WHERE status = 'running' AND lease_expires_at <= ?
ORDER BY lease_expires_at LIMIT ?
"""
REAP = """
UPDATE jobs
SET status = ?, last_error = ?, finished_at = ?, updated_at = ?,
    worker_id = NULL, lease_expires_at = NULL
WHERE id = ? AND lease_token = ? AND status = 'running'
"""

ANY_DUE = """
SELECT 1 FROM jobs INDEXED BY jobs_due_idx
WHERE status IN ('scheduled', 'retrying') AND run_at <= ? LIMIT 1
"""
SELECT_DUE = """
SELECT id, status, attempt, queue FROM jobs INDEXED BY jobs_due_idx
WHERE status IN ('scheduled', 'retrying') AND run_at <= ?
ORDER BY run_at LIMIT ?
"""
PROMOTE = """
UPDATE jobs SET status = 'queued', updated_at = ?
WHERE id IN (SELECT value FROM json_each(?)) AND status IN ('scheduled', 'retrying')
"""

CANCEL = f"""
UPDATE jobs
SET status = 'cancelled', finished_at = ?, updated_at = ?, worker_id = NULL,
    lease_expires_at = NULL
WHERE id = ?
RETURNING {JOB_COLUMNS}
"""

REQUEUE_DEAD = f"""
UPDATE jobs
SET status = 'queued', attempt = 0, run_at = ?, payload = coalesce(?, payload),
    finished_at = NULL, result = NULL, updated_at = ?
WHERE id = ? AND status = 'dead'
RETURNING {JOB_COLUMNS}
"""

DISCARD_DEAD = "DELETE FROM jobs WHERE id IN (SELECT value FROM json_each(?)) AND status = 'dead'"

# In slices, each its own transaction: one huge DELETE would hold the write lock (and stall
# every worker) for as long as it takes.
PRUNE_FINISHED = """
DELETE FROM jobs WHERE id IN (
    SELECT id FROM jobs
    WHERE status = ? AND finished_at < ? AND status IN ('completed', 'dead', 'cancelled')
    LIMIT ?
)
"""
PRUNE_BATCH = 5000

# -- queues -------------------------------------------------------------------------------

QUEUE_COLUMNS = "name, paused, max_depth, concurrency"
SELECT_QUEUE = f"SELECT {QUEUE_COLUMNS} FROM queues WHERE name = ?"
LIST_QUEUES = f"SELECT {QUEUE_COLUMNS} FROM queues ORDER BY name"
UPSERT_QUEUE = f"""
INSERT INTO queues ({QUEUE_COLUMNS}) VALUES (?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET
    paused = excluded.paused, max_depth = excluded.max_depth,
    concurrency = excluded.concurrency
RETURNING {QUEUE_COLUMNS}
"""

# -- workers ------------------------------------------------------------------------------

WORKER_COLUMNS = "id, hostname, pid, queues, concurrency, started_at, last_seen_at, running, meta"
REGISTER_WORKER = f"INSERT OR REPLACE INTO workers ({WORKER_COLUMNS}) VALUES ({', '.join('?' * 9)})"
TOUCH_WORKER = "UPDATE workers SET last_seen_at = ?, running = ? WHERE id = ?"
TOUCH_WORKER_META = "UPDATE workers SET last_seen_at = ?, running = ?, meta = ? WHERE id = ?"
DEREGISTER_WORKER = "DELETE FROM workers WHERE id = ?"
LIST_WORKERS = f"SELECT {WORKER_COLUMNS} FROM workers ORDER BY id"
PRUNE_WORKERS = "DELETE FROM workers WHERE last_seen_at < ?"

# -- schedules ----------------------------------------------------------------------------

SCHEDULE_COLUMNS = (
    "name, cron, timezone, type, payload, queue, priority, max_retries, timeout, enabled, "
    "next_run_at, last_run_at, created_at, updated_at"
)
UPSERT_SCHEDULE = f"""
INSERT INTO schedules ({SCHEDULE_COLUMNS}) VALUES ({", ".join("?" * 14)})
ON CONFLICT (name) DO UPDATE SET
    cron = excluded.cron, timezone = excluded.timezone, type = excluded.type,
    payload = excluded.payload, queue = excluded.queue, priority = excluded.priority,
    max_retries = excluded.max_retries, timeout = excluded.timeout,
    enabled = excluded.enabled,
    next_run_at = coalesce(excluded.next_run_at, schedules.next_run_at),
    last_run_at = coalesce(excluded.last_run_at, schedules.last_run_at),
    updated_at = excluded.updated_at
RETURNING {SCHEDULE_COLUMNS}
"""
SELECT_SCHEDULE = f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE name = ?"
LIST_SCHEDULES = f"SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY name"
DELETE_SCHEDULE = "DELETE FROM schedules WHERE name = ? RETURNING name"
DUE_SCHEDULES = f"""
SELECT {SCHEDULE_COLUMNS} FROM schedules
WHERE enabled = 1 AND next_run_at IS NOT NULL AND next_run_at <= ?
ORDER BY next_run_at, name
"""
FIRE_SCHEDULE = """
UPDATE schedules SET next_run_at = ?, last_run_at = ?, updated_at = ?
WHERE name = ? AND next_run_at = ?
RETURNING name
"""

# -- users and API tokens -----------------------------------------------------------------

USER_COLUMNS = "username, role, tenant, password_hash, disabled, created_at, updated_at"
INSERT_USER = f"""
INSERT INTO users ({USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (username) DO NOTHING
RETURNING {USER_COLUMNS}
"""
SELECT_USER = f"SELECT {USER_COLUMNS} FROM users WHERE username = ?"
LIST_USERS = f"SELECT {USER_COLUMNS} FROM users ORDER BY username"
UPDATE_USER = f"""
UPDATE users SET role = ?, tenant = ?, password_hash = ?, disabled = ?, updated_at = ?
WHERE username = ?
RETURNING {USER_COLUMNS}
"""

TOKEN_COLUMNS = "jti, name, role, tenant, created_by, created_at, expires_at, revoked_at"
INSERT_TOKEN = f"""
INSERT INTO api_tokens ({TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)
ON CONFLICT (jti) DO NOTHING
RETURNING {TOKEN_COLUMNS}
"""
SELECT_TOKEN = f"SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE jti = ?"
LIST_TOKENS = f"SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at, jti"
REVOKE_TOKEN = f"""
UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE jti = ?
RETURNING {TOKEN_COLUMNS}
"""

# -- leadership ---------------------------------------------------------------------------

TRY_LEAD = """
INSERT INTO leaders (name, holder, expires_at) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE leaders.holder = excluded.holder OR leaders.expires_at <= ?
RETURNING holder
"""
RESIGN = "DELETE FROM leaders WHERE name = ? AND holder = ?"

# --------------------------------------------------------------------------------------
# conversions
# --------------------------------------------------------------------------------------

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def _now_us() -> int:
    # Same clock as datetime.now(UTC), without building a datetime on the hot path.
    return time.time_ns() // 1000


def _to_us(dt: datetime) -> int:
    if dt.tzinfo is None:  # naive means UTC: never let the local zone leak in
        dt = dt.replace(tzinfo=UTC)
    return (dt - EPOCH) // _MICRO


def _opt_to_us(dt: datetime | None) -> int | None:
    return None if dt is None else _to_us(dt)


@functools.lru_cache(maxsize=4096)
def _from_us(us: int) -> datetime:
    # timedelta arithmetic is exact; fromtimestamp(us / 1e6) can be off by a microsecond.
    # Cached because a batch shares its timestamps (one "now" per transaction), and
    # datetimes are immutable.
    return EPOCH + timedelta(microseconds=us)


def _opt_from_us(us: int | None) -> datetime | None:
    return None if us is None else _from_us(us)


_STATUS = {s.value: s for s in JobStatus}
_new_object = object.__new__
_set_attr = object.__setattr__


def _uuid(text: str) -> uuid.UUID:
    """uuid.UUID(text) without its validation: ids read back from our own rows are canonical,
    and parsing them is a visible share of a claim's CPU time."""
    u: uuid.UUID = _new_object(uuid.UUID)
    _set_attr(u, "int", int(text.replace("-", ""), 16))
    _set_attr(u, "is_safe", uuid.SafeUUID.unknown)
    return u


def _seconds_us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _dumps_result(value: Any) -> str | None:
    # A handler may return anything; a result that is not JSON is kept as its str() rather
    # than failing the completion of a job that actually succeeded.
    if value is None:
        return None
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def _row_to_job(r: Row) -> Job:
    return Job(
        id=_uuid(r[0]),
        queue=r[1],
        type=r[2],
        payload=orjson.loads(r[3]),
        priority=r[4],
        status=_STATUS[r[5]],
        run_at=_from_us(r[6]),
        attempt=r[7],
        max_retries=r[8],
        timeout=r[9],
        unique_key=r[10],
        tags=orjson.loads(r[11]),
        tenant=r[12],
        result=None if r[13] is None else orjson.loads(r[13]),
        last_error=r[14],
        worker_id=r[15],
        lease_expires_at=_opt_from_us(r[16]),
        lease_token=r[17],
        created_at=_from_us(r[18]),
        started_at=_opt_from_us(r[19]),
        finished_at=_opt_from_us(r[20]),
        updated_at=_from_us(r[21]),
    )


def _job_params(j: Job) -> Row:
    return (
        str(j.id),
        j.queue,
        j.type,
        _dumps(j.payload),
        j.priority,
        j.status.value,
        _to_us(j.run_at),
        j.attempt,
        j.max_retries,
        j.timeout,
        j.unique_key,
        _dumps(j.tags),
        j.tenant,
        _dumps_result(j.result),
        j.last_error,
        j.worker_id,
        _opt_to_us(j.lease_expires_at),
        j.lease_token,
        _to_us(j.created_at),
        _opt_to_us(j.started_at),
        _opt_to_us(j.finished_at),
        _to_us(j.updated_at),
    )


def _row_to_queue(r: Row) -> QueueSettings:
    return QueueSettings(name=r[0], paused=bool(r[1]), max_depth=r[2], concurrency=r[3])


def _row_to_worker(r: Row) -> WorkerInfo:
    return WorkerInfo(
        id=r[0],
        hostname=r[1],
        pid=r[2],
        queues=orjson.loads(r[3]),
        concurrency=r[4],
        started_at=_from_us(r[5]),
        last_seen_at=_from_us(r[6]),
        running=r[7],
        meta=orjson.loads(r[8]),
    )


def _row_to_schedule(r: Row) -> Schedule:
    return Schedule(
        name=r[0],
        cron=r[1],
        timezone=r[2],
        type=r[3],
        payload=orjson.loads(r[4]),
        queue=r[5],
        priority=r[6],
        max_retries=r[7],
        timeout=r[8],
        enabled=bool(r[9]),
        next_run_at=_opt_from_us(r[10]),
        last_run_at=_opt_from_us(r[11]),
        created_at=_opt_from_us(r[12]),
        updated_at=_opt_from_us(r[13]),
    )


def _row_to_user(r: Row) -> User:
    return User(
        username=r[0],
        role=Role(r[1]),
        tenant=r[2],
        password_hash=r[3],
        disabled=bool(r[4]),
        created_at=_from_us(r[5]),
        updated_at=_from_us(r[6]),
    )


def _row_to_token(r: Row) -> ApiToken:
    return ApiToken(
        jti=r[0],
        name=r[1],
        role=Role(r[2]),
        tenant=r[3],
        created_by=r[4],
        created_at=_from_us(r[5]),
        expires_at=_from_us(r[6]),
        revoked_at=_opt_from_us(r[7]),
    )


def _claim_order(j: Job) -> tuple[int, datetime, str]:
    return (-j.priority, j.run_at, str(j.id))


def _path_from_url(url: str) -> Path:
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise InvalidInput(f"SQLite URLs look like sqlite:///path.db, got {url!r}")
    raw = url[len(prefix) :].split("?", 1)[0]
    if not raw or raw == ":memory:":
        raise InvalidInput("the SQLite store needs a file path (several connections share it)")
    return Path(raw)


def _is_busy(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return True
    msg = str(exc)
    return "database is locked" in msg or "database is busy" in msg


def _split_statements(script: str) -> list[str]:
    """Split a migration into statements without executescript(), which would COMMIT the
    migration transaction behind our back. complete_statement() understands trigger bodies."""
    statements: list[str] = []
    buf: list[str] = []
    for line in script.splitlines(keepends=True):
        buf.append(line)
        text = "".join(buf)
        if sqlite3.complete_statement(text):
            stmt = text.strip()
            if _has_sql(stmt):
                statements.append(stmt)
            buf = []
    rest = "".join(buf).strip()
    if _has_sql(rest):
        statements.append(rest)
    return statements


def _has_sql(text: str) -> bool:
    code = [ln for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("--")]
    return bool(code) and "".join(code).strip() != ";"


# --------------------------------------------------------------------------------------
# in-process wake-ups
# --------------------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _Waiter:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]
    queues: frozenset[str]


# Keyed by database file, not by store object: in `conveyor dev` the API and the worker may
# hold different SQLiteStore objects on the same file, and an enqueue through either should
# wake the worker. Futures (not one asyncio.Event) because waiters can live on other loops.
_WAITERS: dict[str, set[_Waiter]] = {}


def _wake(key: str, queues: Iterable[str]) -> None:
    waiters = _WAITERS.get(key)
    if not waiters:
        return
    ready = set(queues)
    for w in list(waiters):
        if w.queues & ready:
            _notify(w)


def _notify(w: _Waiter) -> None:
    # A waiter may belong to another thread's loop, or to one that has just closed.
    with contextlib.suppress(RuntimeError):
        w.loop.call_soon_threadsafe(_resolve, w.future)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


# --------------------------------------------------------------------------------------
# the store
# --------------------------------------------------------------------------------------


class SQLiteStore:
    """Store backed by one SQLite file in WAL mode; safe to share between processes."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = _path_from_url(url)
        self._key = str(self.path.expanduser().resolve())
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._wlock = asyncio.Lock()
        self._rlock = asyncio.Lock()
        self._connect_lock = asyncio.Lock()

    # -- lifecycle -------------------------------------------------------------------

    async def connect(self) -> None:
        async with self._connect_lock:
            if self._writer is not None:
                return
            try:
                self.path.expanduser().parent.mkdir(parents=True, exist_ok=True)
                writer = await self._open()
                reader = await self._open()
            except (sqlite3.Error, OSError) as exc:
                raise StoreUnavailable(f"cannot open SQLite database {self.path}: {exc}") from exc
            self._writer, self._reader = writer, reader

    async def _open(self) -> aiosqlite.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves; the sqlite3 module's implicit
        # transactions would otherwise start DEFERRED ones and defeat BEGIN IMMEDIATE.
        conn = await aiosqlite.connect(
            str(self.path.expanduser()), isolation_level=None, cached_statements=256
        )
        try:
            for pragma in PRAGMAS:
                await conn.execute_fetchall(pragma)
            # Switching to WAL needs a moment of exclusive access; another process opening the
            # file at the same time can make it busy.
            for attempt in range(BUSY_RETRIES):
                try:
                    await conn.execute_fetchall(PRAGMA_WAL)
                    break
                except sqlite3.OperationalError as exc:
                    if not _is_busy(exc) or attempt == BUSY_RETRIES - 1:
                        raise
                    await asyncio.sleep(0.05 * (attempt + 1))
        except BaseException:
            await conn.close()
            raise
        return conn

    async def close(self) -> None:
        async with self._connect_lock:
            writer, reader = self._writer, self._reader
            self._writer = self._reader = None
            for conn in (writer, reader):
                if conn is not None:
                    await conn.close()

    async def _ensure(self) -> tuple[aiosqlite.Connection, aiosqlite.Connection]:
        if self._writer is None or self._reader is None:
            await self.connect()
        assert self._writer is not None and self._reader is not None
        return self._writer, self._reader

    async def migrate(self) -> list[str]:
        files = sorted(MIGRATIONS_DIR.glob("*.sql"))
        scripts = [(f.stem, f.read_text(encoding="utf-8")) for f in files]

        async def tx(conn: aiosqlite.Connection) -> list[str]:
            await conn.execute_fetchall(CREATE_MIGRATIONS_TABLE)
            done = {r[0] for r in await _fetch(conn, SELECT_MIGRATIONS)}
            applied: list[str] = []
            for name, script in scripts:
                if name in done:
                    continue
                for stmt in _split_statements(script):
                    await conn.execute_fetchall(stmt)
                await conn.execute_fetchall(INSERT_MIGRATION, (name, _now_us()))
                applied.append(name)
            return applied

        return await self._write(tx)

    async def ping(self) -> None:
        try:
            _, reader = await self._ensure()
            async with self._rlock:
                await reader.execute_fetchall(PING)
        except StoreUnavailable:
            raise
        except (sqlite3.Error, ValueError, OSError) as exc:
            raise StoreUnavailable(f"SQLite store unavailable: {exc}") from exc

    # -- transaction plumbing ----------------------------------------------------------

    async def _write(self, fn: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run `fn` in a BEGIN IMMEDIATE transaction, retrying the whole of it when another
        process kept the database locked past busy_timeout."""
        conn, _ = await self._ensure()
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._wlock:
                    try:
                        # Inside the try: if we are cancelled while BEGIN runs, it still runs
                        # on aiosqlite's thread, and the ROLLBACK queued behind it must undo it
                        # or the connection would hold the write lock for good.
                        await conn.execute_fetchall(BEGIN_IMMEDIATE)
                        result = await fn(conn)
                        await conn.execute_fetchall(COMMIT)
                    except BaseException:
                        await _rollback(conn)
                        raise
                    return result
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or attempt >= BUSY_RETRIES:
                    raise StoreUnavailable(f"SQLite write failed: {exc}") from exc
            await asyncio.sleep(random.uniform(0.01, 0.05) * attempt)

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        _, reader = await self._ensure()
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._rlock:
                    return await _fetch(reader, sql, params)
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or attempt >= BUSY_RETRIES:
                    raise StoreUnavailable(f"SQLite read failed: {exc}") from exc
            await asyncio.sleep(random.uniform(0.01, 0.05) * attempt)

    # -- submitting ------------------------------------------------------------------

    async def enqueue_many(self, jobs: Sequence[NewJob]) -> list[Enqueued]:
        if not jobs:
            return []
        now = _now_us()

        async def tx(conn: aiosqlite.Connection) -> tuple[list[Enqueued], set[str]]:
            return await _enqueue_in_tx(conn, jobs, now)

        results, ready = await self._write(tx)
        if ready:
            _wake(self._key, ready)
        return results

    # -- reading ---------------------------------------------------------------------

    async def get_job(self, job_id: uuid.UUID) -> Job:
        rows = await self._read(SELECT_JOB, (str(job_id),))
        if not rows:
            raise JobNotFound(f"job {job_id} not found")
        return _row_to_job(rows[0])

    async def get_jobs(self, job_ids: Sequence[uuid.UUID]) -> list[Job]:
        if not job_ids:
            return []
        rows = await self._read(SELECT_JOBS, (_dumps([str(i) for i in job_ids]),))
        return [_row_to_job(r) for r in rows]

    async def list_jobs(
        self, flt: JobFilter, *, limit: int = 50, cursor: uuid.UUID | None = None
    ) -> JobPage:
        conds: list[str] = []
        params: list[Any] = []
        for cond, value in (
            (LIST_FILTER_QUEUE, flt.queue),
            (LIST_FILTER_STATUS, None if flt.status is None else JobStatus(flt.status).value),
            (LIST_FILTER_TYPE, flt.type),
            (LIST_FILTER_TAG, flt.tag),
            (LIST_FILTER_TENANT, flt.tenant),
            (LIST_FILTER_CREATED_AFTER, _opt_to_us(flt.created_after)),
            (LIST_FILTER_CREATED_BEFORE, _opt_to_us(flt.created_before)),
            (LIST_FILTER_CURSOR, None if cursor is None else str(cursor)),
        ):
            if value is not None:
                conds.append(cond)
                params.append(value)
        limit = max(0, limit)
        sql = LIST_JOBS.format(where=" AND ".join(conds) or LIST_FILTER_ALL)
        rows = await self._read(sql, (*params, limit + 1))
        page = [_row_to_job(r) for r in rows[:limit]]
        more = len(rows) > limit and bool(page)
        return JobPage(jobs=page, next_cursor=page[-1].id if more else None)

    async def job_events(self, job_id: uuid.UUID) -> list[JobEvent]:
        rows = await self._read(SELECT_EVENTS, (str(job_id),))
        if not rows and not await self._read(JOB_EXISTS, (str(job_id),)):
            raise JobNotFound(f"job {job_id} not found")
        return [
            JobEvent(
                id=r[0],
                job_id=uuid.UUID(r[1]),
                at=_from_us(r[2]),
                from_status=None if r[3] is None else JobStatus(r[3]),
                to_status=JobStatus(r[4]),
                attempt=r[5],
                worker_id=r[6],
                message=r[7],
            )
            for r in rows
        ]

    async def count_by_queue_status(self) -> dict[str, dict[JobStatus, int]]:
        out: dict[str, dict[JobStatus, int]] = {}
        for queue, status, n in await self._read(COUNT_BY_QUEUE_STATUS):
            out.setdefault(queue, {})[JobStatus(status)] = n
        return out

    # -- the worker protocol -----------------------------------------------------------

    async def claim(
        self, worker_id: str, queues: Sequence[str], limit: int, lease_seconds: float
    ) -> list[Job]:
        wanted = list(dict.fromkeys(queues))
        if limit <= 0 or not wanted:
            return []
        wanted_json = _dumps(wanted)
        if not await self._read(ANY_QUEUED, (wanted_json,)):
            return []

        async def tx(conn: aiosqlite.Connection) -> list[Job]:
            now = _now_us()
            paused: set[str] = set()
            room: dict[str, int] = {}
            for name, is_paused, concurrency, running in await _fetch(
                conn, SELECT_CLAIM_SETTINGS, (wanted_json,)
            ):
                if is_paused:
                    paused.add(name)
                elif concurrency is not None:
                    room[name] = concurrency - running
            arms: list[str] = []
            params: list[Any] = [worker_id, now + _seconds_us(lease_seconds), now, now]
            for q in wanted:
                n = min(limit, room.get(q, limit))
                if q in paused or n <= 0:
                    continue
                arms.append(CLAIM_ARM)
                params += [q, n]
            if not arms:
                return []
            params.append(limit)
            rows = await _fetch(conn, CLAIM.format(arms=CLAIM_ARM_JOIN.join(arms)), params)
            claimed = sorted((_row_to_job(r) for r in rows), key=_claim_order)
            if claimed:
                await conn.executemany(
                    INSERT_EVENT,
                    [
                        (str(j.id), now, "queued", "running", j.attempt, worker_id, None)
                        for j in claimed
                    ],
                )
            return claimed

        return await self._write(tx)

    async def complete_many(self, completions: Sequence[Completion]) -> list[uuid.UUID]:
        batch = _dumps(
            [
                [str(c.job_id), c.lease_token, _dumps_result(c.result)]
                for c in _unique_by_job(completions)
            ]
        )
        if batch == "[]":
            return []

        async def tx(conn: aiosqlite.Connection) -> list[uuid.UUID]:
            now = _now_us()
            await conn.execute_fetchall(COMPLETE_EVENTS, (now, batch))
            rows = await _fetch(conn, COMPLETE, (now, now, batch))
            return [_uuid(r[0]) for r in rows]

        return _in_input_order(await self._write(tx), completions)

    async def fail_many(self, failures: Sequence[Failure]) -> list[uuid.UUID]:
        batch = _dumps(
            [
                [str(f.job_id), f.lease_token, f.error, _opt_to_us(f.retry_at)]
                for f in _unique_by_job(failures)
            ]
        )
        if batch == "[]":
            return []

        async def tx(conn: aiosqlite.Connection) -> list[uuid.UUID]:
            now = _now_us()
            await conn.execute_fetchall(FAIL_EVENTS, (now, batch))
            rows = await _fetch(conn, FAIL, (now, now, batch))
            return [_uuid(r[0]) for r in rows]

        return _in_input_order(await self._write(tx), failures)

    async def release_many(self, releases: Sequence[Release]) -> list[uuid.UUID]:
        batch = _dumps(
            [
                [str(r.job_id), r.lease_token, _opt_to_us(r.run_at), r.reason]
                for r in _unique_by_job(releases)
            ]
        )
        if batch == "[]":
            return []

        async def tx(conn: aiosqlite.Connection) -> list[Row]:
            now = _now_us()
            await conn.execute_fetchall(RELEASE_EVENTS, (now, batch))
            return await _fetch(conn, RELEASE, (now, now, batch))

        rows = await self._write(tx)
        ready = {r[1] for r in rows if r[2] == JobStatus.QUEUED.value}
        if ready:
            _wake(self._key, ready)
        return _in_input_order([_uuid(r[0]) for r in rows], releases)

    async def heartbeat(
        self, worker_id: str, leases: Sequence[Lease], lease_seconds: float
    ) -> list[uuid.UUID]:
        batch = _dumps([[str(le.job_id), le.lease_token] for le in _unique_by_job(leases)])

        async def tx(conn: aiosqlite.Connection) -> list[uuid.UUID]:
            now = _now_us()
            await conn.execute_fetchall(TOUCH_WORKER_SEEN, (now, worker_id))
            if batch == "[]":
                return []
            rows = await _fetch(conn, HEARTBEAT, (now + _seconds_us(lease_seconds), now, batch))
            return [_uuid(r[0]) for r in rows]

        return _in_input_order(await self._write(tx), leases)

    async def reap_expired(self, limit: int = 1000) -> list[ReapedJob]:
        if limit <= 0 or not await self._read(ANY_EXPIRED, (_now_us(),)):
            return []

        async def tx(conn: aiosqlite.Connection) -> tuple[list[ReapedJob], set[str]]:
            now = _now_us()
            reaped: list[ReapedJob] = []
            requeued: set[str] = set()
            updates: list[Row] = []
            events: list[Row] = []
            for job_id, worker_id, attempt, max_retries, token, queue in await _fetch(
                conn, SELECT_EXPIRED, (now, limit)
            ):
                dead = attempt > max_retries
                status = JobStatus.DEAD if dead else JobStatus.QUEUED
                message = f"lease expired (worker {worker_id or 'unknown'})"
                updates.append((status.value, message, now if dead else None, now, job_id, token))
                events.append((job_id, now, "running", status.value, attempt, worker_id, message))
                reaped.append(ReapedJob(uuid.UUID(job_id), worker_id, attempt, status))
                if not dead:
                    requeued.add(queue)
            if reaped:
                await conn.executemany(REAP, updates)
                await conn.executemany(INSERT_EVENT, events)
            return reaped, requeued

        reaped, requeued = await self._write(tx)
        if requeued:
            _wake(self._key, requeued)
        return reaped

    async def promote_due(self, limit: int = 1000) -> int:
        if limit <= 0 or not await self._read(ANY_DUE, (_now_us(),)):
            return 0

        async def tx(conn: aiosqlite.Connection) -> tuple[int, set[str]]:
            now = _now_us()
            rows = await _fetch(conn, SELECT_DUE, (now, limit))
            if not rows:
                return 0, set()
            await conn.execute_fetchall(PROMOTE, (now, _dumps([r[0] for r in rows])))
            await conn.executemany(
                INSERT_EVENT, [(r[0], now, r[1], "queued", r[2], None, None) for r in rows]
            )
            return len(rows), {r[3] for r in rows}

        moved, queues = await self._write(tx)
        if queues:
            _wake(self._key, queues)
        return moved

    async def wait_for_jobs(self, queues: Sequence[str], timeout: float) -> None:
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop, loop.create_future(), frozenset(queues))
        waiters = _WAITERS.setdefault(self._key, set())
        waiters.add(waiter)
        try:
            await asyncio.wait((waiter.future,), timeout=max(0.0, timeout))
        finally:
            waiters.discard(waiter)
            if not waiter.future.done():
                waiter.future.cancel()

    # -- operator actions --------------------------------------------------------------

    async def cancel(self, job_id: uuid.UUID, reason: str = "cancelled") -> Job:
        key = str(job_id)

        async def tx(conn: aiosqlite.Connection) -> Job:
            now = _now_us()
            state = await _fetch(conn, SELECT_JOB_STATE, (key,))
            if not state:
                raise JobNotFound(f"job {job_id} not found")
            status, attempt, worker_id, _ = state[0]
            ensure_transition(JobStatus(status), JobStatus.CANCELLED)
            rows = await _fetch(conn, CANCEL, (now, now, key))
            await conn.execute_fetchall(
                INSERT_EVENT, (key, now, status, "cancelled", attempt, worker_id, reason)
            )
            return _row_to_job(rows[0])

        return await self._write(tx)

    async def requeue_dead(self, job_id: uuid.UUID, payload: JSON | None = None) -> Job:
        key = str(job_id)
        new_payload = None if payload is None else _dumps(payload)

        async def tx(conn: aiosqlite.Connection) -> Job:
            now = _now_us()
            state = await _fetch(conn, SELECT_JOB_STATE, (key,))
            if not state:
                raise JobNotFound(f"job {job_id} not found")
            status, _, _, _ = state[0]
            if status != JobStatus.DEAD.value:
                raise IllegalTransition(f"only dead jobs can be requeued; this one is {status}")
            try:
                rows = await _fetch(conn, REQUEUE_DEAD, (now, new_payload, now, key))
            except sqlite3.IntegrityError as exc:
                raise IllegalTransition(
                    "a live job with the same unique_key exists; cannot requeue this one"
                ) from exc
            await conn.execute_fetchall(
                INSERT_EVENT, (key, now, "dead", "queued", 0, None, "requeued from the DLQ")
            )
            return _row_to_job(rows[0])

        job = await self._write(tx)
        _wake(self._key, (job.queue,))
        return job

    async def discard_dead(self, job_ids: Sequence[uuid.UUID]) -> int:
        if not job_ids:
            return 0
        ids = _dumps([str(i) for i in job_ids])

        async def tx(conn: aiosqlite.Connection) -> int:
            cur = await conn.execute(DISCARD_DEAD, (ids,))
            n = cur.rowcount
            await cur.close()
            return n

        return await self._write(tx)

    # -- queues ----------------------------------------------------------------------

    async def get_queue_settings(self, name: str) -> QueueSettings:
        rows = await self._read(SELECT_QUEUE, (name,))
        return _row_to_queue(rows[0]) if rows else QueueSettings(name=name)

    async def set_queue_settings(self, settings: QueueSettings) -> QueueSettings:
        params = (
            settings.name,
            int(settings.paused),
            settings.max_depth,
            settings.concurrency,
        )

        async def tx(conn: aiosqlite.Connection) -> QueueSettings:
            return _row_to_queue((await _fetch(conn, UPSERT_QUEUE, params))[0])

        saved = await self._write(tx)
        if not saved.paused:
            # Resuming (or raising a concurrency limit) can make jobs claimable again.
            _wake(self._key, (saved.name,))
        return saved

    async def list_queue_settings(self) -> list[QueueSettings]:
        return [_row_to_queue(r) for r in await self._read(LIST_QUEUES)]

    # -- workers ---------------------------------------------------------------------

    async def register_worker(self, info: WorkerInfo) -> None:
        params = (
            info.id,
            info.hostname,
            info.pid,
            _dumps(list(info.queues)),
            info.concurrency,
            _to_us(info.started_at),
            _to_us(info.last_seen_at),
            info.running,
            _dumps(info.meta),
        )
        await self._write(_exec(REGISTER_WORKER, params))

    async def touch_worker(self, worker_id: str, running: int, meta: JSON | None = None) -> None:
        if meta is None:
            await self._write(_exec(TOUCH_WORKER, (_now_us(), running, worker_id)))
        else:
            params = (_now_us(), running, _dumps(meta), worker_id)
            await self._write(_exec(TOUCH_WORKER_META, params))

    async def deregister_worker(self, worker_id: str) -> None:
        await self._write(_exec(DEREGISTER_WORKER, (worker_id,)))

    async def list_workers(self) -> list[WorkerInfo]:
        return [_row_to_worker(r) for r in await self._read(LIST_WORKERS)]

    async def prune_workers(self, seen_before: datetime) -> int:
        return await self._write(_exec_count(PRUNE_WORKERS, (_to_us(seen_before),)))

    # -- schedules -------------------------------------------------------------------

    async def upsert_schedule(self, schedule: Schedule) -> Schedule:
        now = _now_us()
        params = (
            schedule.name,
            schedule.cron,
            schedule.timezone,
            schedule.type,
            _dumps(schedule.payload),
            schedule.queue,
            schedule.priority,
            schedule.max_retries,
            schedule.timeout,
            int(schedule.enabled),
            _opt_to_us(schedule.next_run_at),
            _opt_to_us(schedule.last_run_at),
            now,
            now,
        )

        async def tx(conn: aiosqlite.Connection) -> Schedule:
            return _row_to_schedule((await _fetch(conn, UPSERT_SCHEDULE, params))[0])

        return await self._write(tx)

    async def get_schedule(self, name: str) -> Schedule:
        rows = await self._read(SELECT_SCHEDULE, (name,))
        if not rows:
            raise ScheduleNotFound(f"schedule {name!r} not found")
        return _row_to_schedule(rows[0])

    async def list_schedules(self) -> list[Schedule]:
        return [_row_to_schedule(r) for r in await self._read(LIST_SCHEDULES)]

    async def delete_schedule(self, name: str) -> None:
        async def tx(conn: aiosqlite.Connection) -> bool:
            return bool(await _fetch(conn, DELETE_SCHEDULE, (name,)))

        if not await self._write(tx):
            raise ScheduleNotFound(f"schedule {name!r} not found")

    async def due_schedules(self, now: datetime) -> list[Schedule]:
        return [_row_to_schedule(r) for r in await self._read(DUE_SCHEDULES, (_to_us(now),))]

    async def fire_schedule(
        self, name: str, fire_at: datetime, next_run_at: datetime, job: NewJob
    ) -> Job | None:
        fire_us, next_us = _to_us(fire_at), _to_us(next_run_at)

        async def tx(conn: aiosqlite.Connection) -> tuple[Job | None, set[str]]:
            now = _now_us()
            won = await _fetch(conn, FIRE_SCHEDULE, (next_us, fire_us, now, name, fire_us))
            if not won:
                return None, set()
            results, ready = await _enqueue_in_tx(conn, [job], now)
            return results[0].job, ready

        fired, ready = await self._write(tx)
        if ready:
            _wake(self._key, ready)
        return fired

    # -- users and API tokens ------------------------------------------------------------

    async def create_user(self, user: User) -> User:
        now = _now_us()
        params = (
            user.username,
            Role(user.role).value,
            user.tenant,
            user.password_hash,
            int(user.disabled),
            now,
            now,
        )

        async def tx(conn: aiosqlite.Connection) -> list[Row]:
            return await _fetch(conn, INSERT_USER, params)

        rows = await self._write(tx)
        if not rows:
            raise AlreadyExists(f"user {user.username!r} already exists", field="username")
        return _row_to_user(rows[0])

    async def get_user(self, username: str) -> User | None:
        rows = await self._read(SELECT_USER, (username,))
        return _row_to_user(rows[0]) if rows else None

    async def list_users(self) -> list[User]:
        return [_row_to_user(r) for r in await self._read(LIST_USERS)]

    async def set_user(self, user: User) -> User:
        params = (
            Role(user.role).value,
            user.tenant,
            user.password_hash,
            int(user.disabled),
            _now_us(),
            user.username,
        )

        async def tx(conn: aiosqlite.Connection) -> list[Row]:
            return await _fetch(conn, UPDATE_USER, params)

        rows = await self._write(tx)
        if not rows:
            raise UserNotFound(f"user {user.username!r} not found", field="username")
        return _row_to_user(rows[0])

    async def create_api_token(self, token: ApiToken) -> ApiToken:
        params = (
            token.jti,
            token.name,
            Role(token.role).value,
            token.tenant,
            token.created_by,
            _now_us(),
            _to_us(token.expires_at),
        )

        async def tx(conn: aiosqlite.Connection) -> list[Row]:
            return await _fetch(conn, INSERT_TOKEN, params)

        rows = await self._write(tx)
        if not rows:
            raise AlreadyExists(f"API token {token.jti!r} already exists", field="jti")
        return _row_to_token(rows[0])

    async def get_api_token(self, jti: str) -> ApiToken | None:
        rows = await self._read(SELECT_TOKEN, (jti,))
        return _row_to_token(rows[0]) if rows else None

    async def list_api_tokens(self) -> list[ApiToken]:
        return [_row_to_token(r) for r in await self._read(LIST_TOKENS)]

    async def revoke_api_token(self, jti: str) -> ApiToken:
        async def tx(conn: aiosqlite.Connection) -> list[Row]:
            return await _fetch(conn, REVOKE_TOKEN, (_now_us(), jti))

        rows = await self._write(tx)
        if not rows:
            raise TokenNotFound(f"API token {jti!r} not found", field="jti")
        return _row_to_token(rows[0])

    # -- coordination and housekeeping ---------------------------------------------------

    async def try_lead(self, name: str, holder: str, ttl: float) -> bool:
        async def tx(conn: aiosqlite.Connection) -> bool:
            now = _now_us()
            rows = await _fetch(conn, TRY_LEAD, (name, holder, now + _seconds_us(ttl), now))
            return bool(rows)

        return await self._write(tx)

    async def resign(self, name: str, holder: str) -> None:
        await self._write(_exec(RESIGN, (name, holder)))

    async def prune_finished(self, status: JobStatus, finished_before: datetime) -> int:
        status = JobStatus(status)
        if not status.terminal:
            return 0
        params = (status.value, _to_us(finished_before), PRUNE_BATCH)
        total = 0
        while True:
            n = await self._write(_exec_count(PRUNE_FINISHED, params))
            total += n
            if n < PRUNE_BATCH:
                return total


# --------------------------------------------------------------------------------------
# helpers that run inside a transaction
# --------------------------------------------------------------------------------------


async def _fetch(conn: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> list[Row]:
    # Rows are plain tuples (no row_factory); aiosqlite types them as sqlite3.Row.
    rows: Any = await conn.execute_fetchall(sql, params)
    return list(rows)


async def _rollback(conn: aiosqlite.Connection) -> None:
    # Always sent, never decided from in_transaction: an operation still queued on aiosqlite's
    # thread (after a cancellation) may open or keep a transaction that the flag does not show
    # yet. "No transaction is active" is then harmless.
    with contextlib.suppress(sqlite3.Error, ValueError):
        await conn.execute_fetchall(ROLLBACK)


def _exec(sql: str, params: Sequence[Any]) -> Callable[[aiosqlite.Connection], Awaitable[None]]:
    async def run(conn: aiosqlite.Connection) -> None:
        await conn.execute_fetchall(sql, params)

    return run


def _exec_count(
    sql: str, params: Sequence[Any]
) -> Callable[[aiosqlite.Connection], Awaitable[int]]:
    async def run(conn: aiosqlite.Connection) -> int:
        cur = await conn.execute(sql, params)
        n = cur.rowcount
        await cur.close()
        return n

    return run


_Item = TypeVar("_Item", Completion, Failure, Release, Lease)


def _unique_by_job(items: Sequence[_Item]) -> list[_Item]:
    """First entry per job: a job can change state once per batch, and a duplicate in the
    JSON join would write a second event for the one update."""
    seen: set[uuid.UUID] = set()
    out: list[_Item] = []
    for item in items:
        if item.job_id not in seen:
            seen.add(item.job_id)
            out.append(item)
    return out


def _in_input_order(applied: list[uuid.UUID], items: Sequence[_Item]) -> list[uuid.UUID]:
    hit = set(applied)
    out: list[uuid.UUID] = []
    for item in items:
        if item.job_id in hit:
            hit.discard(item.job_id)
            out.append(item.job_id)
    return out


async def _enqueue_in_tx(
    conn: aiosqlite.Connection, jobs: Sequence[NewJob], now: int
) -> tuple[list[Enqueued], set[str]]:
    """The body of enqueue_many, shared with fire_schedule so a cron fire and its job commit
    together. Returns the results and the queues that received ready jobs."""
    keys = sorted({j.unique_key for j in jobs if j.unique_key is not None})
    live: dict[str, Job] = {}
    if keys:
        for r in await _fetch(conn, SELECT_LIVE_BY_UNIQUE_KEYS, (_dumps(keys),)):
            existing = _row_to_job(r)
            assert existing.unique_key is not None
            live[existing.unique_key] = existing

    now_dt = _from_us(now)
    results: list[Enqueued] = []
    job_rows: list[Row] = []
    event_rows: list[Row] = []
    added: dict[str, int] = {}
    ready: set[str] = set()
    for nj in jobs:
        if nj.unique_key is not None and nj.unique_key in live:
            results.append(Enqueued(job=live[nj.unique_key], created=False))
            continue
        run_us = now if nj.run_at is None else _to_us(nj.run_at)
        if run_us <= now:
            status, run_us = JobStatus.QUEUED, now
            ready.add(nj.queue)
        else:
            status = JobStatus.SCHEDULED
        job = Job(
            id=nj.id if nj.id is not None else new_job_id(),
            queue=nj.queue,
            type=nj.type,
            payload=nj.payload,
            priority=nj.priority,
            status=status,
            run_at=_from_us(run_us),
            attempt=0,
            max_retries=nj.max_retries,
            timeout=float(nj.timeout),
            unique_key=nj.unique_key,
            tags=list(nj.tags),
            tenant=nj.tenant,
            result=None,
            last_error=None,
            worker_id=None,
            lease_expires_at=None,
            lease_token=0,
            created_at=now_dt,
            started_at=None,
            finished_at=None,
            updated_at=now_dt,
        )
        if nj.unique_key is not None:
            live[nj.unique_key] = job
        job_rows.append(_job_params(job))
        event_rows.append((str(job.id), now, None, status.value, 0, None, None))
        added[nj.queue] = added.get(nj.queue, 0) + 1
        results.append(Enqueued(job=job, created=True))

    if added:
        for name, max_depth, depth in await _fetch(
            conn, SELECT_DEPTH_LIMITS, (_dumps(list(added)),)
        ):
            if depth + added[name] > max_depth:
                raise QueueFull(
                    f"queue {name!r} is full ({depth} waiting, limit {max_depth}, "
                    f"{added[name]} more submitted)"
                )
        try:
            await conn.executemany(INSERT_JOB, job_rows)
        except sqlite3.IntegrityError as exc:
            raise InvalidInput(f"cannot insert jobs: {exc} (duplicate job id?)") from exc
        await conn.executemany(INSERT_EVENT, event_rows)
    return results, ready
