"""PostgreSQL store: asyncpg pool, one statement (one round trip) per batch on the hot path.

Everything lives in one schema chosen by the URL (`?schema=NAME`, default `public`): tables via
the connections' search_path, and the NOTIFY channel and advisory-lock keys derived from the
schema name, so several Conveyors (or tests) can share one database without seeing each other.

This module is the dialect only: pool and connection handling, LISTEN/NOTIFY, parameters and
row mapping. The statements are in store/sql/postgres/*.sql (hot-path ones are data-modifying
CTEs: the status change, its job_events row and any NOTIFY in a single implicit transaction,
one round trip, prepared once per connection by asyncpg's statement cache); what both drivers
decide alike (batch ids and duplicate keys, the queue-full refusal, what a lost lease becomes)
is in store/common.py; migrations run through store/migrate.py.
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
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, ParamSpec, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import orjson

from conveyor.domain.errors import (
    AlreadyExists,
    ConveyorError,
    IllegalTransition,
    InvalidInput,
    JobNotFound,
    ScheduleNotFound,
    StoreUnavailable,
    TokenNotFound,
    UserNotFound,
)
from conveyor.domain.events import OutboxRow
from conveyor.domain.ids import new_job_id
from conveyor.domain.job import (
    ALL_QUEUES,
    JSON,
    Job,
    JobStatus,
    NewJob,
    Payload,
    ensure_transition,
)
from conveyor.domain.records import (
    ApiToken,
    Completion,
    Enqueued,
    Failure,
    FinishedCount,
    JobEvent,
    JobFilter,
    JobPage,
    Lease,
    QueueSettings,
    ReadyJob,
    ReapedJob,
    Release,
    Role,
    Schedule,
    User,
    WorkerInfo,
)
from conveyor.store import common, sql
from conveyor.store.migrate import pending_names, run_migrations

log = logging.getLogger(__name__)

# Every statement, by name: store/sql/postgres/<noun>.sql. Unqualified names resolve through the
# connection's search_path (the store's schema).
Q = sql.load("postgres")
# The same statements with their outbox writes switched on (`{{publish}}`, see job.sql): a store
# opened with publish_events=True runs these, one without pays nothing for the outbox.
Q_PUBLISHING = sql.load("postgres", {**sql.TOKENS, "publish": "true"})

# list_jobs: the condition of each filter in use, in parameter order (see job.sql).
_LIST_JOBS_WHERE: dict[str, str] = {
    key: Q[f"list_jobs_by_{key}"]
    for key in (
        "queue", "status", "parked_status", "type", "tag", "tenant", "created_after",
        "created_before", "cursor",
    )
}  # fmt: skip

# After a failed LISTEN connect, wait_for_jobs polls (sleeps its timeout) for this long before
# trying again, so a database outage costs one connect attempt per interval, not one per wait.
LISTEN_RETRY_SECONDS = 2.0

# prune_finished deletes in batches of this many jobs.
PRUNE_BATCH = 5000

# vacuum() vacuums a table once it holds this many dead rows (a VACUUM of 100k took 0.35-0.55 s
# here and kept a 1M-job drain flat; see benchmarks/RESULTS.md), looking at most this often.
VACUUM_DEAD_ROWS = 100_000
VACUUM_LOOK_EVERY = 5.0


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


def _encode_jsonb(value: Any) -> bytes:
    """Binary jsonb (version byte + JSON text). Naive datetimes are taken as UTC (validated
    submissions are always aware). JSON encoded earlier travels as an orjson.Fragment, which
    orjson writes out as is (a copy, not a second encoding), alone or inside a document."""
    return b"\x01" + orjson.dumps(value, option=orjson.OPT_NAIVE_UTC)


class _ForJob(Protocol):
    @property
    def job_id(self) -> uuid.UUID: ...


_Outcome = TypeVar("_Outcome", bound=_ForJob)


def _in_lock_order(items: Sequence[_Outcome]) -> list[_Outcome]:
    """Outcomes and heartbeats of one worker run at once on different connections, each
    locking its rows one by one in the order given: in two orders, two batches sharing jobs
    can each hold what the other waits for (a deadlock PostgreSQL breaks by failing one). In
    id order they never can. (Python orders UUIDs as PostgreSQL does, byte by byte.)"""
    return sorted(items, key=lambda item: item.job_id)


def _outbox_row(r: asyncpg.Record) -> OutboxRow:
    status = r["from_status"]
    return OutboxRow(r["seq"], None if status is None else _STATUS[status], _job(r))


def _json_param(value: Any, encoded: bytes | None) -> orjson.Fragment | None:
    """A JSON value as a jsonb (or jsonb[] element) parameter: its bytes when the caller
    already encoded it, else encoded here. Always a Fragment, never a list or dict: asyncpg
    would read a list inside a jsonb[] argument as another array dimension. None stays SQL
    NULL."""
    if value is None:
        return None
    return orjson.Fragment(encoded if encoded is not None else orjson.dumps(value))


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
_JOB_FIELDS = [f.name for f in dataclasses.fields(Job)]
_N_JOB = len(_JOB_FIELDS)
if sql.TOKENS["job_columns"].split(", ") != _JOB_FIELDS:  # pragma: no cover
    raise RuntimeError("{{job_columns}} must list Job's fields in declaration order")


def _job(r: asyncpg.Record) -> Job:
    """Rows put the job's columns first, in Job's field order, so decoding is positional: this
    runs for every claimed job, and name lookups plus keyword passing were a visible cost."""
    job = Job(*r[:_N_JOB])
    job.status = _STATUS[job.status]
    return job


def _lease_span(seconds: float) -> timedelta:
    """The lease as the claim statement adds it (`$4::float8 * interval '1 second'`): the
    product in microseconds, rounded half to even, as PostgreSQL rounds it. timedelta(seconds=)
    rounds only the fraction and could give a lease_expires_at 1 us off the stored one."""
    return timedelta(microseconds=round(seconds * 1_000_000))


def _claimed_job(r: asyncpg.Record, worker_id: str, lease: timedelta) -> Job:
    """A job from a claim's row ({{claimed_columns}}, started_at), with what the claim set
    itself: the Job the whole row would give (tests/store/test_claim.py compares the two)."""
    started_at = r[17]
    return Job(
        r[0], r[1], r[2], r[3], r[4], JobStatus.RUNNING, r[5], r[6], r[7], r[8], r[9], r[10],
        r[11], r[12], r[13], worker_id, started_at + lease, r[14], r[15], started_at, r[16],
        started_at,
    )  # fmt: skip


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
    submit coalescer's inserts; the NOTIFYs after pooled inserts; a worker's claims).

    asyncpg's acquire + release cost ~70 us of CPU per use here (release creates a task), as
    much as the query itself; holding the connection skips both. A caller that finds it busy
    (concurrent batch submits, a second worker on the same store) uses the pool as before
    (`holds` tells which it got). A connection that saw anything but a domain error (a
    dropped socket, a cancellation mid-query) goes back to the pool, which knows how to clean
    or discard it, and the next call takes a fresh one.
    """

    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._conn: asyncpg.Connection | None = None
        self._busy = False
        self._closed = False

    def acquire(self) -> _StickyUse:
        """`async with sticky.acquire() as conn:` the held connection, or a pooled one when
        the held one is busy (or released)."""
        return _StickyUse(self)

    def holds(self, conn: asyncpg.Connection) -> bool:
        """Is `conn` (from `acquire`) the held connection, rather than one from the pool?"""
        return conn is self._conn

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


class _StickyUse:
    """One use of a StickyConnection. A plain async context manager rather than an
    @asynccontextmanager generator: it runs on every submit and claim, and the generator's
    frames and extra awaits were a measurable share of a lone submit's client CPU."""

    __slots__ = ("_pooled", "_sticky")

    def __init__(self, sticky: StickyConnection) -> None:
        self._sticky = sticky
        self._pooled: Any = None  # the pool's acquire context, when the held one was busy

    async def __aenter__(self) -> asyncpg.Connection:
        sticky = self._sticky
        pool = sticky._store.pool
        if sticky._busy or sticky._closed:
            self._pooled = pool.acquire()
            return await self._pooled.__aenter__()
        sticky._busy = True
        try:
            if sticky._conn is not None and not _usable(sticky._conn):
                await sticky._drop()
            if sticky._conn is None:
                sticky._conn = await pool.acquire()
        except BaseException:
            await self._done()
            raise
        return sticky._conn

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._pooled is not None:
            await self._pooled.__aexit__(et, exc, tb)
            return
        try:
            # A domain error leaves the connection as it was; anything else (a dropped socket,
            # a cancellation mid-query) hands it back to the pool, which cleans or discards it.
            if et is not None and not issubclass(et, ConveyorError):
                await self._sticky._drop()
        finally:
            await self._done()

    async def _done(self) -> None:
        sticky = self._sticky
        sticky._busy = False
        if sticky._closed:  # release() came while this call was in flight
            await sticky._drop()


class NotifyCoalescer:
    """Sends the enqueue NOTIFY after commit, at most one statement in flight, for inserts
    that ran on a pooled connection.

    A NOTIFY inside the enqueue transaction takes PostgreSQL's global notify lock at commit
    and holds it across the WAL flush, so concurrent notifying commits stop sharing group
    commits: measured here, single-job submits fell from ~4,000/s to ~1,700/s (pgbench), and
    eight connections inserting single jobs with the NOTIFY inside topped out near 1,200/s
    against ~2,100/s with it sent afterwards (a NOTIFY-only transaction writes no WAL before
    its commit record, so it does not wait for a flush and holds the lock only briefly).
    But the separate NOTIFY is a second round trip between the commit and the worker's
    wake-up (p50 ~0.4-0.5 ms from commit to delivery at 200 jobs/s here, p99 0.9-3.5 ms) and
    about as much client CPU as the insert. So the enqueue statement carries its own NOTIFY
    when it runs on the store's sticky enqueue connection, which serves one call at a time
    (the submit coalescer's writer; sequential batches): a process then holds the lock for at
    most one enqueue commit at a time, and its concurrent submits are grouped by the
    coalescer. Through the store, four processes submitting single jobs one at a time reached
    1,700-2,500 jobs/s that way against 1,100-1,600/s with the NOTIFY sent afterwards.
    Only inserts running beside it on pooled connections (concurrent batch submits in this
    process) leave the NOTIFY to this class, so they keep committing in parallel.

    Sending it afterwards keeps the guarantee workers rely on: every commit of ready jobs is
    followed by a NOTIFY that starts after that commit. Commits that land while one NOTIFY
    is in flight are folded into the next, so the rate of NOTIFYs is bounded by one round
    trip, not by the submit rate.
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
                    await conn.execute(Q.notify_queues, self._store.channel, queues)
            except Exception:
                # Workers fall back to polling; a lost wake-up costs latency, never a job.
                log.warning("NOTIFY failed; workers will find the jobs by polling", exc_info=True)
                return

    async def drain(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task


class _MigrationTarget:
    """store.migrate's view of the migrating connection: inside PostgresStore.migrate's
    transaction, lock and search_path already set."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def applied_migrations(self) -> set[str]:
        await self._conn.execute(Q.create_migrations_table)
        return {r["name"] for r in await self._conn.fetch(Q.applied_migrations)}

    async def apply_migration(self, name: str, script: str) -> None:
        await self._conn.execute(script)
        await self._conn.execute(Q.record_migration, name)


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
        publish_events: bool = False,
    ) -> None:
        self.url = url
        self.publishes_events = publish_events
        self._q = Q_PUBLISHING if publish_events else Q
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
        self.claim_conn = StickyConnection(self)
        # LISTEN side
        self._listener: asyncpg.Connection | None = None
        self._listener_lock = asyncio.Lock()
        self._listener_retry_at = 0.0
        self._waiters: dict[int, tuple[frozenset[str], asyncio.Future[None]]] = {}
        self._next_waiter = 0
        self._missed: set[str] = set()
        # The outbox relay's wake-ups (wait_for_outbox): its own latch, so it never takes a
        # worker's.
        self._outbox_waiters: set[asyncio.Future[None]] = set()
        self._outbox_missed = False
        # leadership: name -> dedicated connection, and the holder that owns the lock (if any)
        self._lead_conns: dict[str, asyncpg.Connection] = {}
        self._lead_holders: dict[str, str] = {}
        self._lead_lock = asyncio.Lock()
        # claim path choice
        self._limited: frozenset[str] = frozenset()
        self._limited_at = float("-inf")
        # vacuum(): the next look at the dead-row counts, and the vacuum running (if any)
        self.vacuum_dead_rows = VACUUM_DEAD_ROWS
        self._vacuum_look_at = float("-inf")
        self._vacuum: asyncio.Task[None] | None = None

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
        if self._vacuum is not None and not self._vacuum.done():
            self._vacuum.cancel()  # the server stops the VACUUM when its connection closes
            with contextlib.suppress(asyncio.CancelledError):
                await self._vacuum
        if self._pool is not None:
            for sticky in (self.enqueue_conn, self.notify_conn, self.claim_conn):
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
        """One transaction under an advisory lock: concurrent callers apply each migration once,
        and a failing script leaves nothing half-applied."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(Q.migrate_lock, f"{self.schema}:migrate")
            ident = quote_ident(self.schema)
            await conn.execute(Q.create_schema.format(schema=ident))
            await conn.execute(Q.migration_search_path.format(schema=ident))
            applied_now = await run_migrations("postgres", _MigrationTarget(conn))
        if applied_now:
            # Statements prepared against the previous schema version must not be reused.
            await self.pool.expire_connections()
        return applied_now

    @_unavailable_as_store_error
    async def pending_migrations(self) -> list[str]:
        async with self.pool.acquire() as conn:
            if not await conn.fetchval(Q.migrations_table_exists):
                return pending_names("postgres", None)
            return pending_names(
                "postgres", {r["name"] for r in await conn.fetch(Q.applied_migrations)}
            )

    async def ping(self) -> None:
        try:
            await self.pool.fetchval(Q.ping, timeout=5)
        except StoreUnavailable:
            raise
        except (*_UNAVAILABLE, asyncpg.InterfaceError) as exc:
            raise StoreUnavailable(f"PostgreSQL unavailable: {exc}") from exc

    # -- submitting ------------------------------------------------------------------------

    @_unavailable_as_store_error
    async def enqueue_many(self, jobs: Sequence[NewJob]) -> list[Enqueued]:
        if not jobs:
            return []
        if len(jobs) == 1 and jobs[0].unique_key is None:
            return [await self._enqueue_lone(jobs[0])]
        # Ids, and within-batch duplicates of a unique_key (they never reach SQL: they resolve
        # to the first), are decided once for both drivers.
        plan = common.plan_batch(jobs)
        batch = [jobs[i] for i in plan.to_insert]
        ids = [plan.ids[i] for i in plan.to_insert]
        async with self.enqueue_conn.acquire() as conn:
            # On the sticky connection (one call at a time) the statement sends its own NOTIFY;
            # beside it, on a pooled one, the NotifyCoalescer sends it after the commit.
            channel = self.channel if self.enqueue_conn.holds(conn) else None
            if any(j.unique_key is not None for j in batch):
                # Conflicts need a follow-up read; keep the whole batch all-or-nothing.
                async with conn.transaction():
                    inserted = await self._enqueue(conn, batch, ids, channel)
            else:
                inserted = await self._enqueue(conn, batch, ids, channel)
        if channel is None:
            # Committed: now wake the workers of queues that received ready jobs.
            self._notifier.notify(
                {e.job.queue for e in inserted if e.created and e.job.status is JobStatus.QUEUED}
            )
        return plan.results(inserted)

    async def _enqueue_lone(self, job: NewJob) -> Enqueued:
        """The lone submit without a unique_key (the latency-bound path: `App.enqueue`, one
        HTTP submit at a time): the outcome of a batch of one, from a leaner statement
        (enqueue_lone) and without the batch planning and conflict bookkeeping around it."""
        job_id = job.id if job.id is not None else new_job_id()
        async with self.enqueue_conn.acquire() as conn:
            channel = self.channel if self.enqueue_conn.holds(conn) else None
            try:
                row = await conn.fetchrow(
                    self._q.enqueue_lone,
                    job_id,
                    job.queue,
                    job.type,
                    job.payload if job.payload_json is None else orjson.Fragment(job.payload_json),
                    job.priority,
                    job.run_at,
                    job.max_retries,
                    job.timeout,
                    job.tags,
                    job.tenant,
                    channel,
                )
            except asyncpg.UniqueViolationError as exc:
                raise InvalidInput(f"a job with this id already exists: {exc.detail}") from exc
        if row is None:  # the depth check refused it
            raise common.queue_full([job.queue])
        enqueued = Enqueued(_new_job(job_id, job, row), created=True)
        if channel is None and enqueued.job.status is JobStatus.QUEUED:
            self._notifier.notify({job.queue})
        return enqueued

    async def _enqueue(
        self,
        conn: asyncpg.Connection,
        jobs: Sequence[NewJob],
        ids: Sequence[uuid.UUID],
        channel: str | None,
    ) -> list[Enqueued]:
        """Insert jobs with distinct unique_keys under the given ids; results in input order.
        With a `channel`, the statement also NOTIFYs the queues that received ready jobs
        (delivered when the transaction commits)."""
        try:
            if len(jobs) == 1:  # the lone submit: plain parameters (see enqueue_one)
                j = jobs[0]
                rows = await conn.fetch(
                    self._q.enqueue_one,
                    ids[0],
                    j.queue,
                    j.type,
                    j.payload if j.payload_json is None else orjson.Fragment(j.payload_json),
                    j.priority,
                    j.run_at,
                    j.max_retries,
                    j.timeout,
                    j.unique_key,
                    j.tags,
                    j.tenant,
                    channel,
                )
            else:
                # The batch travels as one JSON document (encoded by orjson in one C call), not
                # as eleven arrays, whose element-by-element encoding cost more than the
                # insert. A payload the service already encoded goes in as those bytes (a
                # Fragment).
                rows = await conn.fetch(
                    self._q.enqueue,
                    [
                        {
                            "id": job_id,
                            "queue": j.queue,
                            "type": j.type,
                            "payload": j.payload
                            if j.payload_json is None
                            else orjson.Fragment(j.payload_json),
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
                    channel,
                )
        except asyncpg.UniqueViolationError as exc:
            raise InvalidInput(f"a job with this id already exists: {exc.detail}") from exc
        full = rows[0]["full_queues"]
        if full:
            raise common.queue_full(full)
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
                for r in await conn.fetch(Q.live_by_unique_key, list(missing))
            }
            retry: list[int] = []
            for key, i in missing.items():
                existing = live.get(key)
                if existing is not None:
                    results[i] = Enqueued(existing, created=False)
                else:  # the conflicting job finished meanwhile: the key is free again
                    retry.append(i)
            if retry:
                again = await self._enqueue(
                    conn, [jobs[i] for i in retry], [ids[i] for i in retry], channel
                )
                for i, res in zip(retry, again, strict=True):
                    results[i] = res
        return [r for r in results if r is not None]

    # -- reading -------------------------------------------------------------------------------

    @_unavailable_as_store_error
    async def get_job(self, job_id: uuid.UUID) -> Job:
        row = await self.pool.fetchrow(Q.get_job, job_id)
        if row is None:
            raise JobNotFound(f"job {job_id} not found")
        return _job(row)

    @_unavailable_as_store_error
    async def get_jobs(self, job_ids: Sequence[uuid.UUID]) -> list[Job]:
        if not job_ids:
            return []
        return [_job(r) for r in await self.pool.fetch(Q.get_jobs, list(job_ids))]

    @_unavailable_as_store_error
    async def list_jobs(
        self, flt: JobFilter, *, limit: int = 50, cursor: uuid.UUID | None = None
    ) -> JobPage:
        limit = max(1, limit)
        clauses: list[str] = []
        args: list[Any] = []
        status = flt.status
        values: dict[str, Any] = {
            "queue": flt.queue,
            "status": status.value if status and status not in sql.PARKED else None,
            "parked_status": status.value if status and status in sql.PARKED else None,
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
                clauses.append(_LIST_JOBS_WHERE[key].format(len(args)))
        query = Q.list_jobs
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        args.append(limit + 1)
        query += " " + Q.list_jobs_tail.format(len(args))
        rows = await self.pool.fetch(query, *args)
        jobs = [_job(r) for r in rows[:limit]]
        next_cursor = jobs[-1].id if len(rows) > limit else None
        return JobPage(jobs=jobs, next_cursor=next_cursor)

    @_unavailable_as_store_error
    async def job_events(self, job_id: uuid.UUID) -> list[JobEvent]:
        rows = await self.pool.fetch(Q.job_events, job_id)
        if not rows:
            raise JobNotFound(f"job {job_id} not found")
        return common.audit_trail(
            _job(rows[0]),
            [
                common.StoredEvent(
                    at=r[_N_JOB],
                    from_status=JobStatus(r[_N_JOB + 1]) if r[_N_JOB + 1] else None,
                    to_status=JobStatus(r[_N_JOB + 2]),
                    attempt=r[_N_JOB + 3],
                    worker_id=r[_N_JOB + 4],
                    message=r[_N_JOB + 5],
                    started_at=r[_N_JOB + 6],
                )
                for r in rows
                if r[_N_JOB + 2] is not None
            ],
        )

    @_unavailable_as_store_error
    async def count_by_queue_status(self) -> dict[str, dict[JobStatus, int]]:
        out: dict[str, dict[JobStatus, int]] = {}
        for r in await self.pool.fetch(Q.count_by_queue_status):
            out.setdefault(r["queue"], {})[JobStatus(r["status"])] = r["n"]
        return out

    @_unavailable_as_store_error
    async def count_finished(self, since: datetime, bucket_seconds: int) -> list[FinishedCount]:
        rows = await self.pool.fetch(Q.count_finished, since, bucket_seconds)
        return [
            FinishedCount(
                datetime.fromtimestamp(r["bucket"] * bucket_seconds, UTC),
                JobStatus(r["status"]),
                r["n"],
            )
            for r in rows
        ]

    # -- the worker protocol ------------------------------------------------------------------

    async def _limited_queues(self, conn: asyncpg.Connection) -> frozenset[str]:
        now = time.monotonic()
        if now - self._limited_at > self.LIMITED_QUEUES_TTL:
            rows = await conn.fetch(Q.limited_queues)
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
        # A worker's fetch loop claims one call at a time: a held connection saves the pool's
        # acquire and release on every claim.
        async with self.claim_conn.acquire() as conn:
            if ALL_QUEUES in names:
                # Every queue: those holding ready jobs now (a loose index scan), then as named.
                names = [r["name"] for r in await conn.fetch(Q.queued_queues)]
                if not names:
                    return []
            limited = [q for q in names if q in await self._limited_queues(conn)]
            if limited:
                # Slow path, only for concurrency-limited queues: lock their rows first, so the
                # claim statement (a fresh snapshot) counts every running job of those queues.
                async with conn.transaction():
                    locked = [r["name"] for r in await conn.fetch(Q.lock_limited_queues, limited)]
                    rows = await conn.fetch(
                        self._q.claim_many, names, limit, worker_id, lease, locked
                    )
            elif len(names) == 1:
                rows = await conn.fetch(self._q.claim_one, names[0], limit, worker_id, lease)
            else:
                rows = await conn.fetch(self._q.claim_many, names, limit, worker_id, lease, [])
        span = _lease_span(lease)
        return [_claimed_job(r, worker_id, span) for r in rows]

    @_unavailable_as_store_error
    async def claim_ids(
        self, worker_id: str, job_ids: Sequence[uuid.UUID], lease_seconds: float
    ) -> list[Job]:
        if not job_ids:
            return []
        ids = list(dict.fromkeys(job_ids))
        lease = float(lease_seconds)
        # The same held connection as `claim`: a worker's fetch loop makes one call at a time.
        async with self.claim_conn.acquire() as conn:
            limited = sorted(await self._limited_queues(conn))
            if limited:
                # As in `claim`: lock the limited queues' rows, so their running counts are
                # current. The ids' queues are not known before the statement, so every
                # limited queue is locked; only stores that have such queues pay for it.
                async with conn.transaction():
                    locked = [r["name"] for r in await conn.fetch(Q.lock_limited_queues, limited)]
                    rows = await conn.fetch(
                        self._q.claim_ids_limited, ids, worker_id, lease, locked
                    )
            else:
                rows = await conn.fetch(self._q.claim_ids, ids, worker_id, lease)
        span = _lease_span(lease)
        return [_claimed_job(r, worker_id, span) for r in rows]

    @_unavailable_as_store_error
    async def ready_jobs(self, queue: str, limit: int) -> list[ReadyJob]:
        rows = await self.pool.fetch(Q.ready_jobs, queue, limit)
        return [
            ReadyJob(r["id"], r["queue"], r["priority"], r["run_at"], r["updated_at"]) for r in rows
        ]

    @_unavailable_as_store_error
    async def complete_many(self, completions: Sequence[Completion]) -> list[uuid.UUID]:
        if not completions:
            return []
        completions = _in_lock_order(completions)
        rows = await self.pool.fetch(
            self._q.complete,
            [c.job_id for c in completions],
            [c.lease_token for c in completions],
            # The worker's encoding of the result, when it made one, is what gets stored.
            [_json_param(c.result, c.result_json) for c in completions],
        )
        return [r["id"] for r in rows]

    @_unavailable_as_store_error
    async def fail_many(self, failures: Sequence[Failure]) -> list[uuid.UUID]:
        if not failures:
            return []
        failures = _in_lock_order(failures)
        rows = await self.pool.fetch(
            self._q.fail,
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
        releases = _in_lock_order(releases)
        rows = await self.pool.fetch(
            self._q.release,
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
        leases = _in_lock_order(leases)
        rows = await self.pool.fetch(
            Q.heartbeat,
            worker_id,
            [le.job_id for le in leases],
            [le.lease_token for le in leases],
            float(lease_seconds),
        )
        return [r["id"] for r in rows]

    @_unavailable_as_store_error
    async def reclaim(
        self, worker_id: str, held: Sequence[uuid.UUID], lease_seconds: float
    ) -> list[Job]:
        rows = await self.pool.fetch(Q.reclaim, worker_id, list(held), float(lease_seconds))
        return [_job(r) for r in rows]

    @_unavailable_as_store_error
    async def reap_expired(self, limit: int = 1000) -> list[ReapedJob]:
        """One transaction: lock the expired leases, decide each one's fate (store.common, as
        the SQLite driver does), write them with one guarded statement (events and NOTIFYs
        included). A lease-free tick costs one index probe, as on SQLite."""
        if limit <= 0 or not await self.pool.fetchval(Q.any_expired):
            return []
        async with self.pool.acquire() as conn, conn.transaction():
            expired = await conn.fetch(Q.expired_leases, limit)
            if not expired:
                return []
            reaped = [
                ReapedJob(
                    job_id=r["id"],
                    worker_id=r["worker_id"],
                    attempt=r["attempt"],
                    new_status=common.lost_lease_status(r["attempt"], r["max_retries"]),
                )
                for r in expired
            ]
            rows = await conn.fetch(
                self._q.reap,
                [j.job_id for j in reaped],
                [r["lease_token"] for r in expired],
                [j.new_status.value for j in reaped],
                [common.lost_lease_message(j.worker_id) for j in reaped],
                [j.worker_id for j in reaped],
                self.channel,
            )
        applied = {r["id"] for r in rows}
        return [j for j in reaped if j.job_id in applied]

    @_unavailable_as_store_error
    async def promote_due(self, limit: int = 1000) -> int:
        moved: int = await self.pool.fetchval(self._q.promote, limit, self.channel)
        return moved

    async def wait_for_jobs(self, queues: Sequence[str], timeout: float) -> None:
        """Never raises: a missing listener degrades to polling at `timeout`."""
        if timeout <= 0:
            return
        deadline = time.monotonic() + timeout
        await self._ensure_listener(timeout)
        remaining = deadline - time.monotonic()
        wanted = frozenset() if ALL_QUEUES in queues else frozenset(queues)  # empty: any
        missed = self._missed & wanted if wanted else self._missed
        if remaining <= 0 or missed:
            self._missed -= missed
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        key = self._next_waiter
        self._next_waiter += 1
        self._waiters[key] = (wanted, fut)
        try:
            await _woken_or_timeout(fut, remaining)
        finally:
            self._waiters.pop(key, None)

    async def wait_for_outbox(self, timeout: float) -> None:
        """Never raises: a missing listener degrades to polling at `timeout`."""
        if timeout <= 0:
            return
        deadline = time.monotonic() + timeout
        await self._ensure_listener(timeout)
        remaining = deadline - time.monotonic()
        if remaining <= 0 or self._outbox_missed:
            self._outbox_missed = False
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._outbox_waiters.add(fut)
        try:
            await _woken_or_timeout(fut, remaining)
        finally:
            self._outbox_waiters.discard(fut)

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
        self._wake_outbox()

    def _wake_outbox(self) -> None:
        woken = False
        for fut in self._outbox_waiters:
            if not fut.done():
                fut.set_result(None)
                woken = True
        if not woken:
            self._outbox_missed = True

    def _on_listener_lost(self, conn: Any) -> None:
        """Notifications may have been missed: wake everyone to poll once, reconnect lazily."""
        if self._listener is conn:
            self._listener = None
        for _, fut in self._waiters.values():
            if not fut.done():
                fut.set_result(None)
        self._wake_outbox()

    # -- operator actions --------------------------------------------------------------------

    @_unavailable_as_store_error
    async def cancel(self, job_id: uuid.UUID, reason: str = "cancelled") -> Job:
        row = await self.pool.fetchrow(self._q.cancel, job_id, reason)
        if row is None:
            raise JobNotFound(f"job {job_id} not found")
        if row["id"] is None:
            ensure_transition(JobStatus(row["cur_status"]), JobStatus.CANCELLED)
            raise IllegalTransition(f"job {job_id} cannot be cancelled")  # pragma: no cover
        return _job(row)

    @_unavailable_as_store_error
    async def requeue_dead(self, job_id: uuid.UUID, payload: Payload = None) -> Job:
        message = "requeued with a new payload" if payload is not None else "requeued"
        try:
            row = await self.pool.fetchrow(
                self._q.requeue_dead, job_id, payload, message, self.channel
            )
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

    # -- the outbox (migration 0006) -----------------------------------------------------------

    @_unavailable_as_store_error
    async def outbox_pending(self, limit: int) -> list[OutboxRow]:
        rows = await self.pool.fetch(Q.outbox_pending, limit)
        return [_outbox_row(r) for r in rows]

    @_unavailable_as_store_error
    async def outbox_next(self, done: Sequence[int], limit: int) -> list[OutboxRow]:
        rows = await self.pool.fetch(Q.outbox_next, limit, list(done))
        return [_outbox_row(r) for r in rows]

    @_unavailable_as_store_error
    async def outbox_delete(self, seqs: Sequence[int]) -> None:
        if seqs:
            await self.pool.execute(Q.outbox_delete, list(seqs))

    @_unavailable_as_store_error
    async def discard_dead(self, job_ids: Sequence[uuid.UUID]) -> int:
        if not job_ids:
            return 0
        n: int = await self.pool.fetchval(Q.discard_dead, list(job_ids))
        return n

    # -- queues --------------------------------------------------------------------------------

    @_unavailable_as_store_error
    async def get_queue_settings(self, name: str) -> QueueSettings:
        row = await self.pool.fetchrow(Q.get_queue, name)
        return QueueSettings(name=name) if row is None else _queue_settings(row)

    @_unavailable_as_store_error
    async def set_queue_settings(self, settings: QueueSettings) -> QueueSettings:
        row = await self.pool.fetchrow(
            Q.upsert_queue,
            settings.name,
            settings.paused,
            settings.max_depth,
            settings.concurrency,
        )
        self._limited_at = float("-inf")  # pick up a new concurrency limit at the next claim
        return _queue_settings(row)

    @_unavailable_as_store_error
    async def list_queue_settings(self) -> list[QueueSettings]:
        return [_queue_settings(r) for r in await self.pool.fetch(Q.list_queues)]

    # -- workers -------------------------------------------------------------------------------

    @_unavailable_as_store_error
    async def register_worker(self, info: WorkerInfo) -> None:
        await self.pool.execute(
            Q.register_worker,
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
            await self.pool.execute(Q.touch_worker, worker_id, running)
        else:
            await self.pool.execute(Q.touch_worker_meta, worker_id, running, meta)

    @_unavailable_as_store_error
    async def deregister_worker(self, worker_id: str) -> None:
        await self.pool.execute(Q.deregister_worker, worker_id)

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
            for r in await self.pool.fetch(Q.list_workers)
        ]

    @_unavailable_as_store_error
    async def prune_workers(self, seen_before: datetime) -> int:
        return _rowcount(await self.pool.execute(Q.prune_workers, seen_before))

    # -- schedules -----------------------------------------------------------------------------

    @_unavailable_as_store_error
    async def upsert_schedule(self, schedule: Schedule) -> Schedule:
        return await self._put_schedule(schedule, Q.upsert_schedule)

    @_unavailable_as_store_error
    async def create_schedule(self, schedule: Schedule) -> Schedule:
        return await self._put_schedule(schedule, Q.insert_schedule)

    async def _put_schedule(self, schedule: Schedule, query: str) -> Schedule:
        row = await self.pool.fetchrow(
            query,
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
        if row is None:
            raise AlreadyExists(f"a schedule named {schedule.name!r} exists", field="name")
        return _schedule(row)

    @_unavailable_as_store_error
    async def get_schedule(self, name: str) -> Schedule:
        row = await self.pool.fetchrow(Q.get_schedule, name)
        if row is None:
            raise ScheduleNotFound(f"schedule {name!r} not found")
        return _schedule(row)

    @_unavailable_as_store_error
    async def list_schedules(self) -> list[Schedule]:
        return [_schedule(r) for r in await self.pool.fetch(Q.list_schedules)]

    @_unavailable_as_store_error
    async def delete_schedule(self, name: str) -> None:
        if _rowcount(await self.pool.execute(Q.delete_schedule, name)) == 0:
            raise ScheduleNotFound(f"schedule {name!r} not found")

    @_unavailable_as_store_error
    async def due_schedules(self, now: datetime) -> list[Schedule]:
        return [_schedule(r) for r in await self.pool.fetch(Q.due_schedules, now)]

    @_unavailable_as_store_error
    async def fire_schedule(
        self, name: str, fire_at: datetime, next_run_at: datetime, job: NewJob
    ) -> Job | None:
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(Q.fire_schedule, name, fire_at, next_run_at)
            if _rowcount(status) == 0:
                return None
            # The NOTIFY (if the job is ready) is delivered when this transaction commits.
            (res,) = await self._enqueue(conn, [job], common.plan_batch([job]).ids, self.channel)
            return res.job

    # -- users and API tokens ------------------------------------------------------------------

    @_unavailable_as_store_error
    async def create_user(self, user: User) -> User:
        row = await self.pool.fetchrow(
            Q.insert_user,
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
        row = await self.pool.fetchrow(Q.get_user, username)
        return None if row is None else _user(row)

    @_unavailable_as_store_error
    async def list_users(self) -> list[User]:
        return [_user(r) for r in await self.pool.fetch(Q.list_users)]

    @_unavailable_as_store_error
    async def set_user(self, user: User) -> User:
        row = await self.pool.fetchrow(
            Q.update_user,
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
            Q.insert_token,
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
        row = await self.pool.fetchrow(Q.get_token, jti)
        return None if row is None else _token(row)

    @_unavailable_as_store_error
    async def list_api_tokens(self) -> list[ApiToken]:
        return [_token(r) for r in await self.pool.fetch(Q.list_tokens)]

    @_unavailable_as_store_error
    async def revoke_api_token(self, jti: str) -> ApiToken:
        row = await self.pool.fetchrow(Q.revoke_token, jti)
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
                    await conn.fetchval(Q.ping, timeout=5)  # still alive => still ours
                    return True
                got = bool(await conn.fetchval(Q.try_lead, f"{self.schema}:{name}", timeout=5))
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
                    await conn.fetchval(Q.resign, f"{self.schema}:{name}", timeout=5)
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
    async def vacuum(self) -> None:
        """Start a VACUUM of jobs (and job_events) in the background once a table holds
        `vacuum_dead_rows` dead rows: a queue must stay fast when the server's autovacuum lags
        or is off. Where autovacuum keeps up the counts stay low and this only looks, once per
        VACUUM_LOOK_EVERY seconds. One process per schema vacuums at a time."""
        now = time.monotonic()
        if now < self._vacuum_look_at or (self._vacuum is not None and not self._vacuum.done()):
            return
        self._vacuum_look_at = now + VACUUM_LOOK_EVERY
        dead = {r[0]: r[1] for r in await self.pool.fetch(Q.dead_rows)}
        tables = [t for t in ("jobs", "job_events") if dead.get(t, 0) >= self.vacuum_dead_rows]
        if tables:
            self._vacuum = asyncio.create_task(self._vacuum_tables(tables, dead))

    async def _vacuum_tables(self, tables: list[str], dead: dict[str, int]) -> None:
        try:
            conn = await asyncpg.connect(
                self.dsn, server_settings=self._server_settings, timeout=self._connect_timeout
            )
        except Exception as exc:
            log.warning("vacuum: cannot connect: %s", exc)
            return
        try:
            if not await conn.fetchval(Q.try_vacuum_lock):
                return  # another process is vacuuming this schema
            for table in tables:
                started = time.monotonic()
                await conn.execute(Q[f"vacuum_{table}"], timeout=None)
                log.info(
                    "vacuum: vacuumed %s (%d dead rows) in %.2f s",
                    table,
                    dead[table],
                    time.monotonic() - started,
                )
        except Exception as exc:
            log.warning("vacuum: failed: %s", exc)
        finally:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)

    @_unavailable_as_store_error
    async def prune_finished(self, status: JobStatus, finished_before: datetime) -> int:
        """Deletes in batches so no single transaction holds thousands of row locks for long."""
        if not JobStatus(status).terminal:
            return 0
        total = 0
        while True:
            n: int = await self.pool.fetchval(Q.prune, status.value, finished_before, PRUNE_BATCH)
            total += n
            if n < PRUNE_BATCH:
                return total


async def _woken_or_timeout(fut: asyncio.Future[None], timeout: float) -> None:
    """Until a notification wakes `fut`, or `timeout`. Awaited directly, with a timer: a
    notification resumes the waiter in the next turn of the loop (asyncio.wait would take
    two, and a task of its own)."""
    timer = asyncio.get_running_loop().call_later(timeout, _wake, fut)
    try:
        await fut
    finally:
        timer.cancel()
        if not fut.done():
            fut.cancel()


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _rowcount(status: str) -> int:
    """The row count from a command tag such as 'DELETE 3' or 'UPDATE 0'."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except ValueError:
        return 0


__all__ = ["PostgresStore", "channel_for", "parse_url"]
