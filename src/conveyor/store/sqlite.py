"""The SQLite store: the embedded default (`conveyor dev` runs on one file).

A thin driver: its SQL lives in store/sql/sqlite/<noun>.sql (loaded once, at import, as `Q`),
the decisions it shares with the PostgreSQL store in store/common.py, its migrations in
store/migrations/sqlite/ (applied by store/migrate.py). What is left here is the connection
handling, the parameters and the row mapping.

Design choices, and why:

* WAL mode, so readers never block the writer and several processes can share the file.
* Every write transaction starts with `BEGIN IMMEDIATE`: the write lock is taken up front, so
  two writers never deadlock trying to upgrade a read lock.
* A write transaction is one synchronous function of the connection, run whole on the event
  loop's own thread (BEGIN, statements, COMMIT): a WAL write of a batch takes microseconds to
  a few milliseconds, while a hop to a connection thread and back per statement cost more
  than the statements, and stretched every transaction, write lock held, over several turns
  of a busy event loop. Only transactions of unbounded size (migrations, pruning, batches
  over LONG_BATCH) run on the store's own thread, and WAL checkpoints too (_Checkpointer).
* The write connection's busy_timeout is 0: SQLite's busy handler sleeps 1, 2, 5, 10, 15,
  20... ms between tries, so a writer could sleep 20 ms behind a lock held for 100 us. The
  store retries BEGIN IMMEDIATE itself after short fixed pauses, never blocking the loop on
  a lock. Measured alternative: a FIFO queue on an flock() file beside the database, waited
  on in a thread, gave a worse tail (the thread hops cost more than the pauses).
* One writer connection (the loop's, and the store's thread for long transactions, never
  both at once: _wlock) and one reader connection per store, used on a thread of its own,
  so a dashboard read never waits behind (or slips into) a worker's write transaction. Both
  threads are executor threads, which Python stops at exit: a program that never closes its
  store still exits (aiosqlite's connection thread, used here before, kept it alive).
* Times are INTEGER microseconds since the epoch: exact round-trips of datetimes, and plain
  integer comparisons in SQL.
* Batches travel as one JSON parameter read with json_each(), so a batch of any size is one
  statement with one cached plan, instead of a statement per job or an IN list per size.
* "now" is the process clock; with several processes on one host that is the same clock.
* Wake-ups without polling: a commit that makes jobs ready wakes this process's waiters
  directly, and other processes' through one datagram each to the Unix sockets they bind in
  `<file>-wake/` (see "wake-ups" below). A waiting worker costs no CPU; a wake takes well
  under a millisecond. The poll interval stays as the fallback.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import hashlib
import logging
import os
import random
import secrets
import socket
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import orjson

from conveyor.domain.errors import (
    AlreadyExists,
    IllegalTransition,
    InvalidInput,
    JobNotFound,
    ScheduleNotFound,
    StoreUnavailable,
    TokenNotFound,
    UserNotFound,
)
from conveyor.domain.events import OutboxRow
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
from conveyor.store.location import schema_missing
from conveyor.store.migrate import pending_names, run_migrations

__all__ = ["SQLiteStore"]

T = TypeVar("T")
Row = tuple[Any, ...]

# Every query of this driver, by name (store/sql/sqlite/*.sql).
Q = sql.load("sqlite")
# complete, naming the jobs it completed (only when a batch did not apply whole).
_COMPLETE_RETURNING = Q.complete + "\nRETURNING id"

log = logging.getLogger(__name__)

BUSY_RETRIES = 5
# How long a writer keeps trying for the write lock before StoreUnavailable: the busy_timeout
# of connection_pragmas (the write connection's own is 0, see _write_if).
WRITE_LOCK_TIMEOUT = 15.0
# Seconds between tries for a write lock another connection holds: short and fixed (asyncio
# rounds timers up to the millisecond), with jitter so that processes do not fall into step.
_LOCK_PAUSE = (0.0005, 0.0015)
# Batches bigger than this are written on the store's thread, not the event loop's (a worker
# claims at most 500 jobs at a time, and the submit coalescer writes at most 500).
LONG_BATCH = 500
# While a store commits, it checkpoints on its thread at most this often, in seconds (see
# _Checkpointer and writer_pragmas).
CHECKPOINT_INTERVAL = 0.2
# Jobs deleted per prune_finished transaction (see Q.prune_finished).
PRUNE_BATCH = 5000

# --------------------------------------------------------------------------------------
# conversions
# --------------------------------------------------------------------------------------

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def _outbox_row(seq: int, from_status: str | None, job: str | bytes) -> OutboxRow:
    status = None if from_status is None else _STATUS[from_status]
    return OutboxRow(seq, status, _row_to_job(orjson.loads(job)))


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
_N_JOB = len(sql.TOKENS["job_columns"].split(", "))  # job_events rows follow the job's columns
_new_object = object.__new__
_set_attr = object.__setattr__
_UNKNOWN_SAFETY = uuid.SafeUUID.unknown


def _uuid(text: str) -> uuid.UUID:
    """uuid.UUID(text) without its validation: ids read back from our own rows are canonical,
    and parsing them is a visible share of a claim's CPU time."""
    u: uuid.UUID = _new_object(uuid.UUID)
    _set_attr(u, "int", int(text.replace("-", ""), 16))
    _set_attr(u, "is_safe", _UNKNOWN_SAFETY)
    return u


def _seconds_us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _result_text(c: Completion) -> str | None:
    """The stored text of a completion's result: the worker's own encoding when it sent one
    (encoded once), else the result encoded here. A None result is stored as NULL."""
    if c.result is None:
        return None
    if c.result_json is not None:
        return c.result_json.decode()
    return _dumps_result(c.result)


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


def _claimed_job(r: Row, worker_id: str, lease_expires_at: datetime, now: datetime) -> Job:
    """A job from a claim's row ({{claimed_columns}}), with what the claim set itself: the same
    Job as _row_to_job of the whole row, for fewer columns read per job. Positional, in Job's
    field order (half the cost of keywords; tests/store/test_claim.py compares the two)."""
    tags, result, finished_at = r[10], r[12], r[16]
    return Job(
        _uuid(r[0]),  # id
        r[1],  # queue
        r[2],  # type
        orjson.loads(r[3]),  # payload
        r[4],  # priority
        JobStatus.RUNNING,  # status
        _from_us(r[5]),  # run_at
        r[6],  # attempt
        r[7],  # max_retries
        r[8],  # timeout
        r[9],  # unique_key
        [] if tags == "[]" else orjson.loads(tags),  # tags
        r[11],  # tenant
        None if result is None else orjson.loads(result),  # result
        r[13],  # last_error
        worker_id,  # worker_id
        lease_expires_at,  # lease_expires_at
        r[14],  # lease_token
        _from_us(r[15]),  # created_at
        now,  # started_at
        None if finished_at is None else _from_us(finished_at),  # finished_at
        now,  # updated_at
    )


def _job_params(j: Job, payload: str) -> Row:
    """insert_job's parameters; `payload` is the payload's JSON text."""
    return (
        str(j.id),
        j.queue,
        j.type,
        payload,
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


def _claim_order(r: Row) -> tuple[int, int, str]:
    """A job row's place in claim order (priority first, then run_at, then id)."""
    return (-r[4], r[6], r[0])


def _claimed_order(r: Row) -> tuple[int, int, str]:
    """_claim_order of a claim's row ({{claimed_columns}})."""
    return (-r[4], r[5], r[0])


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


class _MigrationTarget:
    """store/migrate's MigrationTarget on the writer connection, inside migrate()'s write
    transaction: a migration's statements and its schema_migrations row commit together. Its
    methods never suspend (the statements run synchronously), so the runner's coroutine runs to
    its end in one step: see _run_to_end."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def applied_migrations(self) -> set[str]:
        _run(self._conn, Q.create_migrations_table)
        return {r[0] for r in _fetch(self._conn, Q.applied_migrations)}

    async def apply_migration(self, name: str, script: str) -> None:
        for stmt in _split_statements(script):
            _run(self._conn, stmt)
        _run(self._conn, Q.record_migration, (name, _now_us()))


def _run_to_end(coro: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never suspends, run here and now (on any thread, without
    an event loop)."""
    try:
        coro.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coro.close()
    raise RuntimeError("a coroutine run synchronously tried to suspend")


# --------------------------------------------------------------------------------------
# wake-ups: in this process, and from other processes on the same file
# --------------------------------------------------------------------------------------
#
# Every store that claims or waits on a file is a listener of that file's channel (one per
# database file in this process, however many store objects are open on it). A commit that
# made jobs ready (_wake) offers the queues to every listener here, then sends one datagram
# naming them to every other process's wake socket in the file's wake directory. Each process
# that listens binds one socket there, read by a daemon thread that offers what it receives
# to the listeners the same way. A listener with no waiter on a woken queue latches it, so a
# wake that lands while its worker is mid-claim ends the next wait at once; a claim forgets
# what was latched before it looked. Whatever goes wrong (no AF_UNIX, a full socket buffer, a
# directory it may not write), waits still end at their timeout, the poll interval.

# The wake directory beside the database file, as SQLite's own -wal and -shm files are.
WAKE_DIR_SUFFIX = "-wake"
_SOCKET_SUFFIX = ".sock"
# AF_UNIX socket paths: 108 bytes on Linux, 104 on macOS, the terminating NUL included.
_MAX_SOCKET_PATH = 100
_SOCKET_NAME_LEN = 24  # "<pid>-<8 hex>.sock", at most
# A wake naming more queues than this says "any queue" (an empty datagram) instead.
_MAX_WAKE_BYTES = 4096
# After failing to bind a wake socket, poll for this long before trying again.
_RECEIVER_RETRY_SECONDS = 30.0


@dataclass(eq=False, slots=True)
class _Waiter:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]
    queues: frozenset[str]  # empty: any queue


@dataclass(eq=False, slots=True)
class _Listener:
    """One store's wake-ups: its waiters, and the queues woken while none of them waited on
    them. Touched under _LOCK only (the receiver thread delivers too)."""

    waiters: set[_Waiter] = field(default_factory=set)
    missed: set[str] = field(default_factory=set)
    missed_any: bool = False

    def offer(self, ready: frozenset[str] | None) -> None:
        """`ready` None: jobs may be ready in any queue."""
        covered: set[str] = set()
        woke_any = False
        for w in self.waiters:
            if ready is None or not w.queues or w.queues & ready:
                _notify(w)
                if not w.queues:
                    woke_any = True
                covered |= w.queues
        if woke_any:
            return
        if ready is None:
            self.missed_any = True
        else:
            self.missed |= ready - covered

    def take_missed(self, wanted: frozenset[str]) -> bool:
        """Was a wake on `wanted` latched? Forgets it."""
        if self.missed_any:
            self.missed_any = False
            self.missed.clear()
            return True
        hit = self.missed & wanted if wanted else self.missed
        if not hit:
            return False
        self.missed -= hit
        return True


@dataclass(eq=False, slots=True)
class _Channel:
    """This process's end of one database file's wake-ups."""

    listeners: set[_Listener] = field(default_factory=set)
    receiver: _Receiver | None = None
    retry_receiver_at: float = 0.0


# Keyed by database file, not by store object: in `conveyor dev` the API and the worker may
# hold different SQLiteStore objects on the same file, and an enqueue through either should
# wake the worker. Futures (not one asyncio.Event) because waiters can live on other loops.
_CHANNELS: dict[str, _Channel] = {}
_LOCK = threading.Lock()
_SENDER: socket.socket | None = None
_UNHEARD: set[str] = set()  # files we could not bind a wake socket for (warned once)


def _wake(key: str, queues: Iterable[str]) -> None:
    """After a commit that made jobs ready in `queues`: wake this process's waiters at once,
    and every other process listening on the same file."""
    ready = frozenset(queues)
    own = None
    with _LOCK:
        channel = _CHANNELS.get(key)
        if channel is not None:
            for listener in channel.listeners:
                listener.offer(ready)
            if channel.receiver is not None:
                own = channel.receiver.name
    _broadcast(key, ready, own)


def _deliver(key: str, ready: frozenset[str] | None) -> None:
    with _LOCK:
        channel = _CHANNELS.get(key)
        if channel is not None:
            for listener in channel.listeners:
                listener.offer(ready)


def _notify(w: _Waiter) -> None:
    # A waiter may belong to another thread's loop, or to one that has just closed.
    with contextlib.suppress(RuntimeError):
        w.loop.call_soon_threadsafe(_resolve, w.future)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


@functools.lru_cache(maxsize=64)
def _wake_dir(key: str) -> str:
    """Where the wake sockets of database file `key` live: beside it, or, when that path is
    too long for a socket address, in the temporary directory under a name made from it."""
    beside = key + WAKE_DIR_SUFFIX
    if len(os.fsencode(beside)) + 1 + _SOCKET_NAME_LEN <= _MAX_SOCKET_PATH:
        return beside
    digest = hashlib.sha256(os.fsencode(key)).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"conveyor-wake-{digest}")


def _wake_payload(ready: frozenset[str]) -> bytes:
    text = "\n".join(sorted(ready))
    data = text.encode()
    if len(data) > _MAX_WAKE_BYTES or any("\n" in q for q in ready):
        return b""  # any queue
    return data


def _parse_wake(data: bytes) -> frozenset[str] | None:
    """A datagram's queues; None (any queue) when it names none or cannot be read."""
    if len(data) > _MAX_WAKE_BYTES:
        return None  # not one of ours, and perhaps cut short
    try:
        names = frozenset(q for q in data.decode().split("\n") if q)
    except UnicodeDecodeError:
        return None
    return names or None


def _sender() -> socket.socket:
    global _SENDER
    if _SENDER is None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)  # a full receiver never stalls a commit's caller
        _SENDER = sock
    return _SENDER


def _broadcast(key: str, ready: frozenset[str], own: str | None) -> None:
    """One datagram to every other process's wake socket for `key`: a directory read and a
    send per listening process, a few microseconds each."""
    if not hasattr(socket, "AF_UNIX"):
        return
    directory = _wake_dir(key)
    try:
        names = os.listdir(directory)
    except OSError:
        return  # nobody ever listened on this file from another process
    payload = _wake_payload(ready)
    for name in names:
        if name == own or not name.endswith(_SOCKET_SUFFIX):
            continue
        path = os.path.join(directory, name)
        try:
            _sender().sendto(payload, path)
        except ConnectionRefusedError:
            # Nothing is bound there: its process died without closing its store.
            with contextlib.suppress(OSError):
                os.unlink(path)
        except OSError:
            # Its buffer is full (so it has wakes to read already), it just went away, or we
            # may not write to it: its poll is the fallback.
            pass


class _Receiver:
    """This process's wake socket for one database file, read by a daemon thread."""

    def __init__(self, key: str) -> None:
        directory = _wake_dir(key)
        os.makedirs(directory, exist_ok=True)
        self.key = key
        self.name = f"{os.getpid()}-{secrets.token_hex(4)}{_SOCKET_SUFFIX}"
        self.path = os.path.join(directory, self.name)
        self.pid = os.getpid()
        self.closing = False
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(self.path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.thread = threading.Thread(target=self._run, name="conveyor-sqlite-wake", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while True:
                try:
                    data = self.sock.recv(_MAX_WAKE_BYTES + 1)
                except OSError as exc:
                    if not self.closing:
                        log.warning("SQLite wake socket failed, polling instead: %s", exc)
                    return
                if self.closing:
                    return
                _deliver(self.key, _parse_wake(data))
        finally:
            self.sock.close()

    def stop(self) -> None:
        """Unblock the thread (it closes the socket) and remove the socket's file."""
        self.closing = True
        # A full buffer refuses this datagram, but then the thread has one to read anyway.
        with contextlib.suppress(OSError):
            _sender().sendto(b"", self.path)
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def _listen(key: str, listener: _Listener | None, forget: Iterable[str] | None = ()) -> _Listener:
    """`listener` (a new one if None) registered on `key`'s channel, with this process's wake
    socket bound, and the latched wakes of `forget` (None: of every queue) dropped. Cheap when
    both already are: every claim calls it."""
    with _LOCK:
        channel = _CHANNELS.get(key)
        if channel is None:
            channel = _CHANNELS[key] = _Channel()
        if listener is None:
            listener = _Listener()
        channel.listeners.add(listener)
        if forget is None:
            listener.missed.clear()
            listener.missed_any = False
        else:
            listener.missed.difference_update(forget)
        if channel.receiver is None and time.monotonic() >= channel.retry_receiver_at:
            try:
                channel.receiver = _Receiver(key)
            except (OSError, AttributeError) as exc:  # AttributeError: no socket.AF_UNIX
                channel.retry_receiver_at = time.monotonic() + _RECEIVER_RETRY_SECONDS
                if key not in _UNHEARD:
                    _UNHEARD.add(key)
                    log.warning(
                        "no wake socket for SQLite file %s, so jobs from other processes wait "
                        "for the poll interval: %s",
                        key,
                        exc,
                    )
        return listener


async def _wait(listener: _Listener, wanted: frozenset[str], timeout: float) -> None:
    """Until a wake on `wanted` (empty: any queue) reaches `listener`, or `timeout`."""
    loop = asyncio.get_running_loop()
    waiter = _Waiter(loop, loop.create_future(), wanted)
    with _LOCK:
        if listener.take_missed(wanted):
            return
        listener.waiters.add(waiter)
    try:
        await asyncio.wait((waiter.future,), timeout=max(0.0, timeout))
    finally:
        with _LOCK:
            listener.waiters.discard(waiter)
        if not waiter.future.done():
            waiter.future.cancel()


def _unlisten(key: str, listener: _Listener) -> None:
    with _LOCK:
        channel = _CHANNELS.get(key)
        if channel is None:
            return
        channel.listeners.discard(listener)
        for w in listener.waiters:
            _notify(w)
        listener.waiters.clear()
        if not channel.listeners:
            del _CHANNELS[key]
            if channel.receiver is not None:
                channel.receiver.stop()


def _stop_receivers() -> None:
    with _LOCK:
        for channel in _CHANNELS.values():
            if channel.receiver is not None and channel.receiver.pid == os.getpid():
                channel.receiver.stop()
                channel.receiver = None


def _after_fork_in_child() -> None:
    # The child has the parent's sockets but none of its threads: forget them (without
    # removing the parent's socket files); the child's first claim or wait binds its own.
    global _LOCK, _SENDER
    _LOCK = threading.Lock()
    if _SENDER is not None:
        _SENDER.close()
        _SENDER = None
    for channel in _CHANNELS.values():
        if channel.receiver is not None:
            channel.receiver.sock.close()
    _CHANNELS.clear()


atexit.register(_stop_receivers)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# --------------------------------------------------------------------------------------
# the store
# --------------------------------------------------------------------------------------


class _Checkpointer:
    """Copies the WAL into the database on the store's thread, at most every
    CHECKPOINT_INTERVAL while the store commits: the write connection's automatic checkpoint
    (with its fsyncs) would run inside a COMMIT on the event loop's thread. PASSIVE: it waits
    for no lock, blocks no writer, and stops short of frames a reader still needs."""

    def __init__(self, path: str, thread: ThreadPoolExecutor) -> None:
        self._path = path
        self._thread = thread
        self._conn: sqlite3.Connection | None = None  # used on the thread only
        self._running = False
        self._due = 0.0

    def after_commit(self) -> None:
        if self._running or time.monotonic() < self._due:
            return
        self._running = True
        self._due = time.monotonic() + CHECKPOINT_INTERVAL
        try:
            self._thread.submit(self._checkpoint)
        except RuntimeError:  # the thread is shut down: the store is closing
            self._running = False

    async def close(self) -> None:
        """After the checkpoint running now, if any (the thread runs them in order)."""
        await asyncio.wrap_future(self._thread.submit(self._close))

    def _checkpoint(self) -> None:
        try:
            if self._conn is None:
                self._conn = sqlite3.connect(
                    self._path, isolation_level=None, check_same_thread=False
                )
            _run(self._conn, Q.checkpoint)
        except sqlite3.Error as exc:
            log.debug("SQLite checkpoint failed: %s", exc)
        finally:
            self._running = False

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _open_connection(path: str) -> sqlite3.Connection:
    """A connection with the pragmas every connection of the store takes. isolation_level=None:
    we issue BEGIN/COMMIT ourselves; the sqlite3 module's implicit transactions would start
    DEFERRED ones and defeat BEGIN IMMEDIATE. check_same_thread=False: opened on one thread,
    used on another (never two at a time)."""
    conn = sqlite3.connect(
        path, isolation_level=None, cached_statements=256, check_same_thread=False
    )
    try:
        for pragma in _split_statements(Q.connection_pragmas):
            _run(conn, pragma)
    except BaseException:
        conn.close()
        raise
    return conn


class _Reader:
    """The store's read connection, on an executor thread of its own: one read at a time, in
    order, never on the event loop's thread (a dashboard's list or count may take a while)."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="conveyor-sqlite-reader")
        self._conn: sqlite3.Connection | None = None

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def open(self, path: str) -> None:
        self._conn = await self._call(_open_connection, path)

    async def fetch(self, query: str, params: Sequence[Any] = ()) -> list[Row]:
        if self._conn is None:
            raise StoreUnavailable("the SQLite store is closed")
        return await self._call(_fetch, self._conn, query, params)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._call(conn.close)
        self._executor.shutdown(wait=False)


class SQLiteStore:
    """Store backed by one SQLite file in WAL mode; safe to share between processes."""

    def __init__(self, url: str, *, publish_events: bool = False) -> None:
        self.url = url
        # Transitions also write their outbox rows (migration 0006), in their transaction.
        self.publishes_events = publish_events
        self.path = _path_from_url(url)
        self._key = str(self.path.expanduser().resolve())
        # The writer is a plain sqlite3 connection used on the event loop's thread (and, for
        # long transactions, on self._thread); the reader one used on its own thread, which
        # runs one read at a time. See _write and _read.
        self._writer: sqlite3.Connection | None = None
        self._reader: _Reader | None = None
        self._thread: ThreadPoolExecutor | None = None
        # Held around every use of the writer: a transaction on the loop's thread never
        # suspends, but a long one on self._thread, and a migration, must not interleave.
        self._wlock = asyncio.Lock()
        self._connect_lock = asyncio.Lock()
        # Set by the first claim or wait: this store's wake-ups (see _Listener).
        self._listener: _Listener | None = None
        self._outbox_listener: _Listener | None = None  # the relay's (wait_for_outbox)
        self._checkpointer: _Checkpointer | None = None

    # -- lifecycle -------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the database file. A file that does not exist is not created (nor its
        directory): only migrate() makes one, so a mistyped or relative path is reported
        (SchemaMissing, naming the path) instead of leaving an empty database behind."""
        await self._connect(create=False)

    async def _connect(self, *, create: bool) -> None:
        async with self._connect_lock:
            if self._writer is not None:
                return
            if not create and not self.path.expanduser().exists():
                return
            try:
                self.path.expanduser().parent.mkdir(parents=True, exist_ok=True)
                # Opening may wait on a busy file (the switch to WAL): off the loop's thread.
                writer = await asyncio.to_thread(self._open_writer)
                try:
                    reader = await self._open_reader()
                except BaseException:
                    writer.close()
                    raise
            except (sqlite3.Error, OSError) as exc:
                raise StoreUnavailable(f"cannot open SQLite database {self.path}: {exc}") from exc
            self._writer, self._reader = writer, reader
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="conveyor-sqlite-writer")
            self._checkpointer = _Checkpointer(str(self.path.expanduser()), self._thread)

    def _open_writer(self) -> sqlite3.Connection:
        # check_same_thread=False (see _open_connection): used on the loop's thread and
        # self._thread, never two at a time (self._wlock).
        conn = _open_connection(str(self.path.expanduser()))
        try:
            # Switching to WAL needs a moment of exclusive access; another process opening the
            # file at the same time can make it busy.
            for attempt in range(BUSY_RETRIES):
                try:
                    _run(conn, Q.journal_mode_wal)
                    break
                except sqlite3.OperationalError as exc:
                    if not _is_busy(exc) or attempt == BUSY_RETRIES - 1:
                        raise
                    time.sleep(0.05 * (attempt + 1))
            for pragma in _split_statements(Q.writer_pragmas):
                _run(conn, pragma)
        except BaseException:
            conn.close()
            raise
        return conn

    async def _open_reader(self) -> _Reader:
        reader = _Reader()
        try:
            await reader.open(str(self.path.expanduser()))
        except BaseException:
            await reader.close()
            raise
        return reader

    async def close(self) -> None:
        for listener in (self._listener, self._outbox_listener):
            if listener is not None:
                _unlisten(self._key, listener)
        self._listener = self._outbox_listener = None
        async with self._connect_lock:
            writer, reader, thread = self._writer, self._reader, self._thread
            checkpointer = self._checkpointer
            self._writer = self._reader = self._thread = self._checkpointer = None
            if writer is not None:
                async with self._wlock:  # after a long transaction still running on the thread
                    writer.close()
            if checkpointer is not None:
                await checkpointer.close()
            if thread is not None:
                thread.shutdown(wait=False)
            if reader is not None:
                await reader.close()

    async def _ensure(self) -> tuple[sqlite3.Connection, _Reader]:
        if self._writer is None or self._reader is None:
            await self.connect()
        if self._writer is None or self._reader is None:
            raise schema_missing(self.url, len(pending_names("sqlite", None)))
        return self._writer, self._reader

    async def migrate(self) -> list[str]:
        # One write transaction around the whole run: concurrent migrate() calls from several
        # processes queue on the write lock, and the later ones find nothing pending.
        def tx(conn: sqlite3.Connection) -> list[str]:
            return _run_to_end(run_migrations("sqlite", _MigrationTarget(conn)))

        await self._connect(create=True)
        return await self._write(tx, long=True)

    async def pending_migrations(self) -> list[str]:
        if not self.path.expanduser().exists():
            return pending_names("sqlite", None)
        if not await self._read(Q.migrations_table_exists):
            return pending_names("sqlite", None)
        return pending_names("sqlite", {r[0] for r in await self._read(Q.applied_migrations)})

    async def ping(self) -> None:
        try:
            _, reader = await self._ensure()
            await reader.fetch(Q.ping)
        except StoreUnavailable:
            raise
        except (sqlite3.Error, ValueError, OSError) as exc:
            raise StoreUnavailable(f"SQLite store unavailable: {exc}") from exc

    # -- transaction plumbing ----------------------------------------------------------
    #
    # A write transaction is one synchronous function of the connection, run whole between
    # BEGIN IMMEDIATE and COMMIT or ROLLBACK by _attempt: on the event loop's thread, or for
    # `long` ones on the store's thread (see the module docstring). The write connection's
    # busy_timeout is 0, so BEGIN IMMEDIATE fails at once while another connection writes, and
    # _write_if retries the whole transaction after a short pause (_LOCK_PAUSE, with jitter so
    # that processes do not fall into step) until WRITE_LOCK_TIMEOUT, when StoreUnavailable
    # says the file stayed locked.
    #
    # Cancellation: on the loop's thread a transaction runs between two awaits, so a cancelled
    # caller never leaves one open. On the store's thread it rolls back unless it has already
    # reached its COMMIT, and the connection stays taken (_wlock) until it has ended.

    async def _write(self, fn: Callable[[sqlite3.Connection], T], *, long: bool = False) -> T:
        """Run `fn` in a BEGIN IMMEDIATE transaction, retrying the whole of it while another
        connection holds the write lock. `long`: on the store's thread."""
        outcome = await self._write_if(None, fn, long=long)
        assert not isinstance(outcome, _Skipped)
        return outcome

    async def _write_if(
        self,
        look: tuple[str, Sequence[Any]] | None,
        fn: Callable[[sqlite3.Connection], T],
        *,
        long: bool = False,
    ) -> T | _Skipped:
        """_write, but only while the query `look` finds a row: it looks before every try, so
        a claimer that lost the lock to another one, which took the jobs it was after, does
        not take the lock in turn just to find nothing (one enqueue wakes every worker)."""
        deadline = 0.0
        while True:
            conn, _ = await self._ensure()
            if look is not None and not await self._peek(*look):
                return _SKIPPED
            async with self._wlock:
                if conn is not self._writer:
                    continue  # closed (and perhaps opened again) meanwhile
                if long:
                    outcome = await self._in_thread(conn, fn)
                else:
                    outcome = _attempt(conn, fn)
            if not isinstance(outcome, _Busy):
                if self._checkpointer is not None:
                    self._checkpointer.after_commit()
                return outcome
            now = time.monotonic()
            if not deadline:
                deadline = now + WRITE_LOCK_TIMEOUT
            elif now >= deadline:
                raise StoreUnavailable(
                    f"SQLite write failed: the database stayed locked for "
                    f"{WRITE_LOCK_TIMEOUT:g} s ({outcome.error})"
                )
            await asyncio.sleep(random.uniform(*_LOCK_PAUSE))

    async def _in_thread(
        self, conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]
    ) -> T | _Busy:
        assert self._thread is not None
        abandoned = threading.Event()
        done = asyncio.get_running_loop().run_in_executor(
            self._thread, _attempt, conn, fn, abandoned
        )
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            # The transaction rolls back unless it has reached its COMMIT; the connection is
            # not free (the caller holds _wlock) until it has ended.
            abandoned.set()
            while not done.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait((done,))
            if not done.cancelled():
                done.exception()  # retrieved: it was ours to see, and nobody will
            raise

    async def _peek(self, query: str, params: Sequence[Any]) -> bool:
        """Does `query` find a row? A cheap look on the writer connection, on the loop's thread,
        before taking the write lock: idle pollers (possibly many processes) then never queue
        up on it just to find nothing. True when the look itself was refused (busy)."""
        conn, _ = await self._ensure()
        async with self._wlock:
            if conn is not self._writer:
                return True  # closed meanwhile: the write will tell
            try:
                return bool(_fetch(conn, query, params))
            except sqlite3.OperationalError as exc:
                if _is_busy(exc):
                    return True
                raise StoreUnavailable(f"SQLite read failed: {exc}") from exc

    async def _read(self, query: str, params: Sequence[Any] = ()) -> list[Row]:
        _, reader = await self._ensure()
        attempt = 0
        while True:
            attempt += 1
            try:
                return await reader.fetch(query, params)
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or attempt >= BUSY_RETRIES:
                    raise StoreUnavailable(f"SQLite read failed: {exc}") from exc
            await asyncio.sleep(random.uniform(0.01, 0.05) * attempt)

    # -- submitting ------------------------------------------------------------------

    async def enqueue_many(self, jobs: Sequence[NewJob]) -> list[Enqueued]:
        if not jobs:
            return []
        now = _now_us()

        def tx(conn: sqlite3.Connection) -> tuple[list[Enqueued], set[str]]:
            return _enqueue_in_tx(conn, jobs, now, self.publishes_events)

        results, ready = await self._write(tx, long=len(jobs) > LONG_BATCH)
        if ready:
            _wake(self._key, ready)
        return results

    # -- reading ---------------------------------------------------------------------

    async def get_job(self, job_id: uuid.UUID) -> Job:
        rows = await self._read(Q.select_job, (str(job_id),))
        if not rows:
            raise JobNotFound(f"job {job_id} not found")
        return _row_to_job(rows[0])

    async def get_jobs(self, job_ids: Sequence[uuid.UUID]) -> list[Job]:
        if not job_ids:
            return []
        rows = await self._read(Q.select_jobs, (_dumps([str(i) for i in job_ids]),))
        return [_row_to_job(r) for r in rows]

    async def list_jobs(
        self, flt: JobFilter, *, limit: int = 50, cursor: uuid.UUID | None = None
    ) -> JobPage:
        conds: list[str] = []
        params: list[Any] = []
        for cond, value in (
            (Q.list_filter_queue, flt.queue),
            (
                Q.list_filter_parked_status if flt.status in sql.PARKED else Q.list_filter_status,
                None if flt.status is None else JobStatus(flt.status).value,
            ),
            (Q.list_filter_type, flt.type),
            (Q.list_filter_tag, flt.tag),
            (Q.list_filter_tenant, flt.tenant),
            (Q.list_filter_created_after, _opt_to_us(flt.created_after)),
            (Q.list_filter_created_before, _opt_to_us(flt.created_before)),
            (Q.list_filter_cursor, None if cursor is None else str(cursor)),
        ):
            if value is not None:
                conds.append(cond)
                params.append(value)
        limit = max(0, limit)
        query = Q.list_jobs.format(where=f" {Q.list_filter_and} ".join(conds) or Q.list_filter_all)
        rows = await self._read(query, (*params, limit + 1))
        page = [_row_to_job(r) for r in rows[:limit]]
        more = len(rows) > limit and bool(page)
        return JobPage(jobs=page, next_cursor=page[-1].id if more else None)

    async def job_events(self, job_id: uuid.UUID) -> list[JobEvent]:
        rows = await self._read(Q.select_events, (str(job_id),))
        if not rows:
            raise JobNotFound(f"job {job_id} not found")
        n = _N_JOB
        return common.audit_trail(
            _row_to_job(rows[0]),
            [
                common.StoredEvent(
                    at=_from_us(r[n]),
                    from_status=None if r[n + 1] is None else JobStatus(r[n + 1]),
                    to_status=JobStatus(r[n + 2]),
                    attempt=r[n + 3],
                    worker_id=r[n + 4],
                    message=r[n + 5],
                    started_at=_opt_from_us(r[n + 6]),
                )
                for r in rows
                if r[n + 2] is not None
            ],
        )

    async def count_by_queue_status(self) -> dict[str, dict[JobStatus, int]]:
        out: dict[str, dict[JobStatus, int]] = {}
        for queue, status, n in await self._read(Q.count_by_queue_status):
            out.setdefault(queue, {})[JobStatus(status)] = n
        return out

    async def count_finished(self, since: datetime, bucket_seconds: int) -> list[FinishedCount]:
        width = bucket_seconds * 1_000_000
        rows = await self._read(Q.count_finished, (_to_us(since), width))
        return [FinishedCount(_from_us(b * width), JobStatus(s), n) for s, b, n in rows]

    # -- the worker protocol -----------------------------------------------------------

    async def claim(
        self, worker_id: str, queues: Sequence[str], limit: int, lease_seconds: float
    ) -> list[Job]:
        everywhere = ALL_QUEUES in queues
        wanted = [] if everywhere else list(dict.fromkeys(queues))
        if limit <= 0 or not (wanted or everywhere):
            return []
        # Before looking: wakes latched until now are answered by this claim, and from now on
        # this process hears other processes' commits (the first claim binds its socket).
        self._listener = _listen(self._key, self._listener, forget=None if everywhere else wanted)
        wanted_json = _dumps(wanted)
        peek = (Q.any_queued_anywhere, ()) if everywhere else (Q.any_queued, (wanted_json,))

        def tx(conn: sqlite3.Connection) -> tuple[list[Row], int, int]:
            nonlocal wanted, wanted_json
            now = _now_us()
            lease = now + _seconds_us(lease_seconds)
            if everywhere:
                wanted = [r[0] for r in _fetch(conn, Q.queued_queues)]
                wanted_json = _dumps(wanted)
            paused: set[str] = set()
            room: dict[str, int] = {}
            for name, is_paused, concurrency, running in _fetch(
                conn, Q.select_claim_settings, (wanted_json,)
            ):
                if is_paused:
                    paused.add(name)
                elif concurrency is not None:
                    room[name] = concurrency - running
            arms: list[str] = []
            params: list[Any] = [worker_id, lease, now, now]
            for q in wanted:
                n = min(limit, room.get(q, limit))
                if q in paused or n <= 0:
                    continue
                arms.append(Q.claim_arm)
                params += [q, n]
            if not arms:
                return [], now, lease
            params.append(limit)
            rows = _fetch(conn, Q.claim.format(arms=f" {Q.claim_arm_union} ".join(arms)), params)
            rows.sort(key=_claimed_order)
            if rows and self.publishes_events:
                _outbox(conn, JobStatus.QUEUED, [r[0] for r in rows])
            return rows, now, lease

        claimed = await self._write_if(peek, tx, long=limit > LONG_BATCH)
        if isinstance(claimed, _Skipped):
            return []
        # The rows become jobs after the commit: the write lock is held for the SQL alone.
        rows, now, lease = claimed
        now_dt, lease_dt = _from_us(now), _from_us(lease)
        return [_claimed_job(r, worker_id, lease_dt, now_dt) for r in rows]

    async def claim_ids(
        self, worker_id: str, job_ids: Sequence[uuid.UUID], lease_seconds: float
    ) -> list[Job]:
        if not job_ids:
            return []
        wanted_json = _dumps(list(dict.fromkeys(str(i) for i in job_ids)))

        def tx(conn: sqlite3.Connection) -> tuple[list[Row], int, int]:
            now = _now_us()
            lease = now + _seconds_us(lease_seconds)
            candidates = _fetch(conn, Q.select_claimable_ids, (wanted_json, now))
            if not candidates:
                return [], now, lease
            queues = _dumps(sorted({q for _, q in candidates}))
            room: dict[str, int] = {}
            for name, is_paused, concurrency, running in _fetch(
                conn, Q.select_claim_settings, (queues,)
            ):
                if is_paused:
                    room[name] = 0
                elif concurrency is not None:
                    room[name] = concurrency - running
            picked = []
            for job_id, queue in candidates:  # in claim order: each queue's room goes first
                left = room.get(queue)
                if left is None:
                    picked.append(job_id)
                elif left > 0:
                    room[queue] = left - 1
                    picked.append(job_id)
            if not picked:
                return [], now, lease
            params = (worker_id, lease, now, now, _dumps(picked))
            rows = _fetch(conn, Q.claim_ids, params)
            rows.sort(key=_claimed_order)
            if rows and self.publishes_events:
                _outbox(conn, JobStatus.QUEUED, [r[0] for r in rows])
            return rows, now, lease

        rows, now, lease = await self._write(tx)
        now_dt, lease_dt = _from_us(now), _from_us(lease)
        return [_claimed_job(r, worker_id, lease_dt, now_dt) for r in rows]

    async def ready_jobs(self, queue: str, limit: int) -> list[ReadyJob]:
        rows = await self._read(Q.ready_jobs, (queue, _now_us(), limit))
        return [ReadyJob(_uuid(r[0]), r[1], r[2], _from_us(r[3]), _from_us(r[4])) for r in rows]

    async def complete_many(self, completions: Sequence[Completion]) -> list[uuid.UUID]:
        items, keys = _unique_by_job(completions)
        if not items:
            return []
        batch = _dumps(
            [[k, c.lease_token, _result_text(c)] for k, c in zip(keys, items, strict=True)]
        )

        def tx(conn: sqlite3.Connection) -> None:
            # Every item applies (the usual case) when as many rows changed as there are items:
            # they are distinct jobs, and each matches at most one row. Otherwise the whole
            # transaction rolls back and the statement runs again, naming the ones that apply.
            now = _now_us()
            cur = conn.execute(Q.complete, (now, now, batch))
            if cur.rowcount != len(keys):
                raise _NotAll
            if self.publishes_events:
                _outbox(conn, JobStatus.RUNNING, keys)

        def tx_returning(conn: sqlite3.Connection) -> list[Row]:
            now = _now_us()
            rows = _fetch(conn, _COMPLETE_RETURNING, (now, now, batch))
            if self.publishes_events:
                _outbox(conn, JobStatus.RUNNING, [r[0] for r in rows])
            return rows

        long = len(items) > LONG_BATCH
        try:
            await self._write(tx, long=long)
        except _NotAll:
            return _applied(items, keys, await self._write(tx_returning, long=long))
        return [item.job_id for item in items]

    async def fail_many(self, failures: Sequence[Failure]) -> list[uuid.UUID]:
        items, keys = _unique_by_job(failures)
        if not items:
            return []
        batch = _dumps(
            [
                [k, f.lease_token, f.error, _opt_to_us(f.retry_at)]
                for k, f in zip(keys, items, strict=True)
            ]
        )

        def tx(conn: sqlite3.Connection) -> list[Row]:
            now = _now_us()
            _run(conn, Q.fail_events, (now, batch))
            rows = _fetch(conn, Q.fail, (now, now, batch))
            if self.publishes_events:
                _outbox(conn, JobStatus.RUNNING, [r[0] for r in rows])
            return rows

        rows = await self._write(tx, long=len(items) > LONG_BATCH)
        return _applied(items, keys, rows)

    async def release_many(self, releases: Sequence[Release]) -> list[uuid.UUID]:
        items, keys = _unique_by_job(releases)
        if not items:
            return []
        batch = _dumps(
            [
                [k, r.lease_token, _opt_to_us(r.run_at), r.reason]
                for k, r in zip(keys, items, strict=True)
            ]
        )

        def tx(conn: sqlite3.Connection) -> list[Row]:
            now = _now_us()
            _run(conn, Q.release_events, (now, batch))
            rows = _fetch(conn, Q.release, (now, now, batch))
            if self.publishes_events:
                _outbox(conn, JobStatus.RUNNING, [r[0] for r in rows])
            return rows

        rows = await self._write(tx, long=len(items) > LONG_BATCH)
        ready = {r[1] for r in rows if r[2] == JobStatus.QUEUED.value}
        if ready:
            _wake(self._key, ready)
        return _applied(items, keys, rows)

    async def heartbeat(
        self, worker_id: str, leases: Sequence[Lease], lease_seconds: float
    ) -> list[uuid.UUID]:
        items, keys = _unique_by_job(leases)
        batch = _dumps([[k, le.lease_token] for k, le in zip(keys, items, strict=True)])

        def tx(conn: sqlite3.Connection) -> list[Row]:
            now = _now_us()
            _run(conn, Q.touch_worker_seen, (now, worker_id))
            if not items:
                return []
            return _fetch(conn, Q.heartbeat, (now + _seconds_us(lease_seconds), now, batch))

        rows = await self._write(tx, long=len(items) > LONG_BATCH)
        return _applied(items, keys, rows)

    async def reclaim(
        self, worker_id: str, held: Sequence[uuid.UUID], lease_seconds: float
    ) -> list[Job]:
        held_json = _dumps([str(i) for i in held])

        def tx(conn: sqlite3.Connection) -> list[Row]:
            now = _now_us()
            params = (now + _seconds_us(lease_seconds), now, worker_id, held_json)
            return sorted(_fetch(conn, Q.reclaim, params), key=_claim_order)

        return [_row_to_job(r) for r in await self._write(tx)]

    async def reap_expired(self, limit: int = 1000) -> list[ReapedJob]:
        if limit <= 0 or not await self._peek(Q.any_expired, (_now_us(),)):
            return []

        def tx(conn: sqlite3.Connection) -> tuple[list[ReapedJob], set[str]]:
            now = _now_us()
            reaped: list[ReapedJob] = []
            requeued: set[str] = set()
            updates: list[Row] = []
            events: list[Row] = []
            for job_id, worker_id, attempt, max_retries, token, queue, started_at in _fetch(
                conn, Q.select_expired, (now, limit)
            ):
                status = common.lost_lease_status(attempt, max_retries)
                dead = status is JobStatus.DEAD
                message = common.lost_lease_message(worker_id)
                updates.append((status.value, message, now if dead else None, now, job_id, token))
                events.append(
                    (job_id, now, "running", status.value, attempt, worker_id, message, started_at)
                )
                reaped.append(ReapedJob(uuid.UUID(job_id), worker_id, attempt, status))
                if not dead:
                    requeued.add(queue)
            if reaped:
                conn.executemany(Q.reap, updates)
                conn.executemany(Q.insert_event, events)
                if self.publishes_events:
                    _outbox(conn, JobStatus.RUNNING, [str(j.job_id) for j in reaped])
            return reaped, requeued

        reaped, requeued = await self._write(tx, long=True)
        if requeued:
            _wake(self._key, requeued)
        return reaped

    async def promote_due(self, limit: int = 1000) -> int:
        if limit <= 0 or not await self._peek(Q.any_due, (_now_us(),)):
            return 0

        def tx(conn: sqlite3.Connection) -> tuple[int, set[str]]:
            now = _now_us()
            rows = _fetch(conn, Q.select_due, (now, limit))
            if not rows:
                return 0, set()
            _run(conn, Q.promote, (now, _dumps([r[0] for r in rows])))
            conn.executemany(
                Q.insert_event, [(r[0], now, r[1], "queued", r[2], None, None, None) for r in rows]
            )
            if self.publishes_events:  # for the Kafka transport's dispatch, not an event
                for status in sorted({r[1] for r in rows}):
                    _outbox(conn, JobStatus(status), [r[0] for r in rows if r[1] == status])
            return len(rows), {r[3] for r in rows}

        moved, queues = await self._write(tx, long=True)
        if queues:
            _wake(self._key, queues)
        return moved

    async def wait_for_jobs(self, queues: Sequence[str], timeout: float) -> None:
        """Woken by commits that made jobs ready in `queues`, from this process (at once) or
        another one (by its datagram); returns at once if such a wake came since the last claim
        or wait. Else after `timeout`, the polling fallback."""
        wanted = frozenset() if ALL_QUEUES in queues else frozenset(queues)  # empty: any
        listener = self._listener = _listen(self._key, self._listener)
        await _wait(listener, wanted, timeout)

    async def wait_for_outbox(self, timeout: float) -> None:
        """The wake-ups of any queue, on a listener of the relay's own."""
        listener = self._outbox_listener = _listen(self._key, self._outbox_listener)
        await _wait(listener, frozenset(), timeout)

    # -- operator actions --------------------------------------------------------------

    async def cancel(self, job_id: uuid.UUID, reason: str = "cancelled") -> Job:
        key = str(job_id)

        def tx(conn: sqlite3.Connection) -> Job:
            now = _now_us()
            state = _fetch(conn, Q.select_job_state, (key,))
            if not state:
                raise JobNotFound(f"job {job_id} not found")
            status, attempt, worker_id, started_at = state[0]
            ensure_transition(JobStatus(status), JobStatus.CANCELLED)
            rows = _fetch(conn, Q.cancel, (now, now, key))
            started_at = started_at if status == JobStatus.RUNNING.value else None
            _run(
                conn,
                Q.insert_event,
                (key, now, status, "cancelled", attempt, worker_id, reason, started_at),
            )
            if self.publishes_events:
                _outbox(conn, JobStatus(status), [key])
            return _row_to_job(rows[0])

        return await self._write(tx)

    async def requeue_dead(self, job_id: uuid.UUID, payload: Payload = None) -> Job:
        key = str(job_id)
        new_payload = None if payload is None else _dumps(payload)

        def tx(conn: sqlite3.Connection) -> Job:
            now = _now_us()
            state = _fetch(conn, Q.select_job_state, (key,))
            if not state:
                raise JobNotFound(f"job {job_id} not found")
            status, _, _, _ = state[0]
            if status != JobStatus.DEAD.value:
                raise IllegalTransition(f"only dead jobs can be requeued; this one is {status}")
            try:
                rows = _fetch(conn, Q.requeue_dead, (now, new_payload, now, key))
            except sqlite3.IntegrityError as exc:
                raise IllegalTransition(
                    "a live job with the same unique_key exists; cannot requeue this one"
                ) from exc
            _run(
                conn,
                Q.insert_event,
                (key, now, "dead", "queued", 0, None, "requeued from the DLQ", None),
            )
            if self.publishes_events:
                _outbox(conn, JobStatus.DEAD, [key])
            return _row_to_job(rows[0])

        job = await self._write(tx)
        _wake(self._key, (job.queue,))
        return job

    # -- the outbox (migration 0006) ---------------------------------------------------

    async def outbox_pending(self, limit: int) -> list[OutboxRow]:
        rows = await self._read(Q.outbox_pending, (limit,))
        return [_outbox_row(*r) for r in rows]

    async def outbox_next(self, done: Sequence[int], limit: int) -> list[OutboxRow]:
        if not done:  # nothing to delete: the reader's, without the write lock
            return await self.outbox_pending(limit)
        done_json = _dumps(list(done))

        def tx(conn: sqlite3.Connection) -> list[Any]:
            _run(conn, Q.outbox_delete, (done_json,))
            return _fetch(conn, Q.outbox_pending, (limit,))

        rows = await self._write(tx, long=True)  # up to `limit` rows read: on the store's thread
        return [_outbox_row(*r) for r in rows]

    async def outbox_delete(self, seqs: Sequence[int]) -> None:
        if seqs:
            await self._write(_exec(Q.outbox_delete, (_dumps(list(seqs)),)))

    async def discard_dead(self, job_ids: Sequence[uuid.UUID]) -> int:
        if not job_ids:
            return 0
        ids = _dumps([str(i) for i in job_ids])

        return await self._write(
            _delete_jobs(Q.discard_dead, (ids,)), long=len(job_ids) > LONG_BATCH
        )

    # -- queues ----------------------------------------------------------------------

    async def get_queue_settings(self, name: str) -> QueueSettings:
        rows = await self._read(Q.select_queue, (name,))
        return _row_to_queue(rows[0]) if rows else QueueSettings(name=name)

    async def set_queue_settings(self, settings: QueueSettings) -> QueueSettings:
        params = (
            settings.name,
            int(settings.paused),
            settings.max_depth,
            settings.concurrency,
        )

        def tx(conn: sqlite3.Connection) -> QueueSettings:
            return _row_to_queue((_fetch(conn, Q.upsert_queue, params))[0])

        saved = await self._write(tx)
        if not saved.paused:
            # Resuming (or raising a concurrency limit) can make jobs claimable again.
            _wake(self._key, (saved.name,))
        return saved

    async def list_queue_settings(self) -> list[QueueSettings]:
        return [_row_to_queue(r) for r in await self._read(Q.list_queues)]

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
        await self._write(_exec(Q.register_worker, params))

    async def touch_worker(self, worker_id: str, running: int, meta: JSON | None = None) -> None:
        if meta is None:
            await self._write(_exec(Q.touch_worker, (_now_us(), running, worker_id)))
        else:
            params = (_now_us(), running, _dumps(meta), worker_id)
            await self._write(_exec(Q.touch_worker_meta, params))

    async def deregister_worker(self, worker_id: str) -> None:
        await self._write(_exec(Q.deregister_worker, (worker_id,)))

    async def list_workers(self) -> list[WorkerInfo]:
        return [_row_to_worker(r) for r in await self._read(Q.list_workers)]

    async def prune_workers(self, seen_before: datetime) -> int:
        return await self._write(_exec_count(Q.prune_workers, (_to_us(seen_before),)))

    # -- schedules -------------------------------------------------------------------

    async def upsert_schedule(self, schedule: Schedule) -> Schedule:
        return await self._put_schedule(schedule, Q.upsert_schedule)

    async def create_schedule(self, schedule: Schedule) -> Schedule:
        return await self._put_schedule(schedule, Q.insert_schedule)

    async def _put_schedule(self, schedule: Schedule, query: str) -> Schedule:
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

        def tx(conn: sqlite3.Connection) -> Schedule:
            rows = _fetch(conn, query, params)
            if not rows:
                raise AlreadyExists(f"a schedule named {schedule.name!r} exists", field="name")
            return _row_to_schedule(rows[0])

        return await self._write(tx)

    async def get_schedule(self, name: str) -> Schedule:
        rows = await self._read(Q.select_schedule, (name,))
        if not rows:
            raise ScheduleNotFound(f"schedule {name!r} not found")
        return _row_to_schedule(rows[0])

    async def list_schedules(self) -> list[Schedule]:
        return [_row_to_schedule(r) for r in await self._read(Q.list_schedules)]

    async def delete_schedule(self, name: str) -> None:
        def tx(conn: sqlite3.Connection) -> bool:
            return bool(_fetch(conn, Q.delete_schedule, (name,)))

        if not await self._write(tx):
            raise ScheduleNotFound(f"schedule {name!r} not found")

    async def due_schedules(self, now: datetime) -> list[Schedule]:
        return [_row_to_schedule(r) for r in await self._read(Q.due_schedules, (_to_us(now),))]

    async def fire_schedule(
        self, name: str, fire_at: datetime, next_run_at: datetime, job: NewJob
    ) -> Job | None:
        fire_us, next_us = _to_us(fire_at), _to_us(next_run_at)

        def tx(conn: sqlite3.Connection) -> tuple[Job | None, set[str]]:
            now = _now_us()
            won = _fetch(conn, Q.fire_schedule, (next_us, fire_us, now, name, fire_us))
            if not won:
                return None, set()
            results, ready = _enqueue_in_tx(conn, [job], now, self.publishes_events)
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

        def tx(conn: sqlite3.Connection) -> list[Row]:
            return _fetch(conn, Q.insert_user, params)

        rows = await self._write(tx)
        if not rows:
            raise AlreadyExists(f"user {user.username!r} already exists", field="username")
        return _row_to_user(rows[0])

    async def get_user(self, username: str) -> User | None:
        rows = await self._read(Q.select_user, (username,))
        return _row_to_user(rows[0]) if rows else None

    async def list_users(self) -> list[User]:
        return [_row_to_user(r) for r in await self._read(Q.list_users)]

    async def set_user(self, user: User) -> User:
        params = (
            Role(user.role).value,
            user.tenant,
            user.password_hash,
            int(user.disabled),
            _now_us(),
            user.username,
        )

        def tx(conn: sqlite3.Connection) -> list[Row]:
            return _fetch(conn, Q.update_user, params)

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

        def tx(conn: sqlite3.Connection) -> list[Row]:
            return _fetch(conn, Q.insert_token, params)

        rows = await self._write(tx)
        if not rows:
            raise AlreadyExists(f"API token {token.jti!r} already exists", field="jti")
        return _row_to_token(rows[0])

    async def get_api_token(self, jti: str) -> ApiToken | None:
        rows = await self._read(Q.select_token, (jti,))
        return _row_to_token(rows[0]) if rows else None

    async def list_api_tokens(self) -> list[ApiToken]:
        return [_row_to_token(r) for r in await self._read(Q.list_tokens)]

    async def revoke_api_token(self, jti: str) -> ApiToken:
        def tx(conn: sqlite3.Connection) -> list[Row]:
            return _fetch(conn, Q.revoke_token, (_now_us(), jti))

        rows = await self._write(tx)
        if not rows:
            raise TokenNotFound(f"API token {jti!r} not found", field="jti")
        return _row_to_token(rows[0])

    # -- coordination and housekeeping ---------------------------------------------------

    async def try_lead(self, name: str, holder: str, ttl: float) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            now = _now_us()
            rows = _fetch(conn, Q.try_lead, (name, holder, now + _seconds_us(ttl), now))
            return bool(rows)

        return await self._write(tx)

    async def resign(self, name: str, holder: str) -> None:
        await self._write(_exec(Q.resign, (name, holder)))

    async def vacuum(self) -> None:
        """Nothing to do: SQLite updates rows in place and reuses freed pages."""

    async def prune_finished(self, status: JobStatus, finished_before: datetime) -> int:
        status = JobStatus(status)
        if not status.terminal:
            return 0
        params = (status.value, _to_us(finished_before), PRUNE_BATCH)
        total = 0
        while True:
            n = await self._write(_delete_jobs(Q.prune_finished, params), long=True)
            total += n
            if n < PRUNE_BATCH:
                return total


# --------------------------------------------------------------------------------------
# helpers that run inside a transaction
# --------------------------------------------------------------------------------------


def _outbox(conn: sqlite3.Connection, from_status: JobStatus | None, ids: list[str]) -> None:
    """The outbox rows of a transition (migration 0006), in its transaction, after it."""
    if ids:
        _run(conn, Q.outbox_add, (None if from_status is None else from_status.value, _dumps(ids)))


def _fetch(conn: sqlite3.Connection, query: str, params: Sequence[Any] = ()) -> list[Row]:
    # Rows are plain tuples (no row_factory).
    rows: list[Row] = conn.execute(query, params).fetchall()
    return rows


def _run(conn: sqlite3.Connection, query: str, params: Sequence[Any] = ()) -> None:
    # Stepped to the end, so no statement is left pending (RETURNING rows unread) at COMMIT.
    conn.execute(query, params).fetchall()


def _rollback(conn: sqlite3.Connection) -> None:
    # Always sent, never decided from in_transaction: "no transaction is active" is harmless,
    # and a connection left inside a transaction would hold the write lock for good.
    with contextlib.suppress(sqlite3.Error):
        conn.execute(Q.rollback)


def _exec(query: str, params: Sequence[Any]) -> Callable[[sqlite3.Connection], None]:
    def run(conn: sqlite3.Connection) -> None:
        _run(conn, query, params)

    return run


def _exec_count(query: str, params: Sequence[Any]) -> Callable[[sqlite3.Connection], int]:
    def run(conn: sqlite3.Connection) -> int:
        cur = conn.execute(query, params)
        cur.fetchall()
        return cur.rowcount

    return run


def _delete_jobs(query: str, params: Sequence[Any]) -> Callable[[sqlite3.Connection], int]:
    """Delete jobs (`query` returns their ids) and their events in one transaction: job_events has
    no foreign key to cascade (migration 0003). Returns how many jobs went."""

    def run(conn: sqlite3.Connection) -> int:
        gone = _fetch(conn, query, params)
        if gone:
            _run(conn, Q.delete_events_of_jobs, (_dumps([r[0] for r in gone]),))
        return len(gone)

    return run


@dataclass(frozen=True, slots=True)
class _Busy:
    """A transaction that could not take (or keep) the write lock, and was rolled back."""

    error: str


class _NotAll(Exception):
    """A batch update that did not apply to every item: roll back, and name the ones that do."""


class _Abandoned(Exception):
    """The caller of a transaction on the store's thread was cancelled: roll it back."""


class _Skipped:
    """A write not tried: what it was after is not there (see _write_if)."""


_SKIPPED = _Skipped()


def _attempt(
    conn: sqlite3.Connection,
    fn: Callable[[sqlite3.Connection], T],
    abandoned: threading.Event | None = None,
) -> T | _Busy:
    """One try at `fn` in a BEGIN IMMEDIATE transaction: its result, committed, or _Busy (rolled
    back) when another connection holds the write lock. Never leaves a transaction open.
    `abandoned` set before the commit (its caller went away): rolled back instead."""
    try:
        _run(conn, Q.begin_immediate)
    except sqlite3.OperationalError as exc:
        if _is_busy(exc):
            return _Busy(str(exc))
        raise StoreUnavailable(f"SQLite write failed: {exc}") from exc
    try:
        result = fn(conn)
        if abandoned is not None and abandoned.is_set():
            raise _Abandoned
        _run(conn, Q.commit)
    except BaseException as exc:
        _rollback(conn)
        if isinstance(exc, sqlite3.OperationalError):
            if _is_busy(exc):
                return _Busy(str(exc))
            raise StoreUnavailable(f"SQLite write failed: {exc}") from exc
        raise
    return result


_Item = TypeVar("_Item", Completion, Failure, Release, Lease)


def _unique_by_job(items: Sequence[_Item]) -> tuple[list[_Item], list[str]]:
    """The first entry per job, and their ids as text: a job can change state once per batch,
    and a duplicate in the JSON join would write a second event for the one update."""
    first: dict[uuid.UUID, _Item] = {}
    for item in items:
        first.setdefault(item.job_id, item)
    return list(first.values()), [str(i) for i in first]


def _applied(items: list[_Item], keys: list[str], rows: Iterable[Row]) -> list[uuid.UUID]:
    """The ids of `items` (unique, with their ids as text in `keys`) whose update applied
    (`rows` start with the ids the statement returned), in input order."""
    hit = {r[0] for r in rows}
    return [item.job_id for key, item in zip(keys, items, strict=True) if key in hit]


def _enqueue_in_tx(
    conn: sqlite3.Connection, jobs: Sequence[NewJob], now: int, publish: bool
) -> tuple[list[Enqueued], set[str]]:
    """The body of enqueue_many, shared with fire_schedule so a cron fire and its job commit
    together. Returns the results and the queues that received ready jobs."""
    # Ids, and a repeated unique_key within the batch folded into its first job: common.
    plan = common.plan_batch(jobs)
    keys = sorted({k for i in plan.to_insert if (k := jobs[i].unique_key) is not None})
    live: dict[str, Job] = {}
    if keys:
        for r in _fetch(conn, Q.select_live_by_unique_keys, (_dumps(keys),)):
            existing = _row_to_job(r)
            assert existing.unique_key is not None
            live[existing.unique_key] = existing

    now_dt = _from_us(now)
    results: list[Enqueued] = []
    job_rows: list[Row] = []
    added: dict[str, int] = {}
    ready: set[str] = set()
    for i in plan.to_insert:
        nj = jobs[i]
        if nj.unique_key is not None:
            held = live.get(nj.unique_key)
            if held is not None:
                results.append(Enqueued(job=held, created=False))
                continue
        run_us = now if nj.run_at is None else _to_us(nj.run_at)
        if run_us <= now:
            status, run_us = JobStatus.QUEUED, now
            ready.add(nj.queue)
        else:
            status = JobStatus.SCHEDULED
        job = Job(
            id=plan.ids[i],
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
        # The service's validation already encoded the payload: those bytes are stored.
        payload = _dumps(nj.payload) if nj.payload_json is None else nj.payload_json.decode()
        job_rows.append(_job_params(job, payload))
        added[nj.queue] = added.get(nj.queue, 0) + 1
        results.append(Enqueued(job=job, created=True))

    if added:
        full = [
            name
            for name, max_depth, depth in _fetch(
                conn, Q.select_depth_limits, (_dumps(list(added)),)
            )
            if depth + added[name] > max_depth
        ]
        if full:
            raise common.queue_full(full)
        try:
            conn.executemany(Q.insert_job, job_rows)
        except sqlite3.IntegrityError as exc:
            raise InvalidInput(f"cannot insert jobs: {exc} (duplicate job id?)") from exc
        if publish:
            _outbox(conn, None, [r[0] for r in job_rows])
    return plan.results(results), ready
