"""Small helpers shared by the tests. Tests synchronise by polling a condition with a deadline
(`wait_until`), never by sleeping a fixed time and hoping."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from conveyor.domain.job import Job, JobStatus, NewJob
from conveyor.domain.records import Completion, Failure
from conveyor.store import Store

T = TypeVar("T")


async def wait_until(
    predicate: Callable[[], Any | Awaitable[Any]],
    timeout: float = 5.0,
    interval: float = 0.02,
    message: str = "condition",
) -> Any:
    """Poll `predicate` (sync or async) until it returns something truthy; return that value.
    Raises AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(interval)


def utcnow() -> datetime:
    return datetime.now(UTC)


def seconds_from_now(seconds: float) -> datetime:
    return utcnow() + timedelta(seconds=seconds)


async def sleep_until(when: datetime) -> None:
    """Let the clock pass `when` (for run_at / lease times; not a synchronisation point)."""
    delay = (when - utcnow()).total_seconds()
    if delay > 0:
        await asyncio.sleep(delay + 0.02)


def assert_dt_close(actual: datetime | None, expected: datetime, tol: float = 0.002) -> None:
    assert actual is not None, f"expected a datetime near {expected}, got None"
    assert actual.tzinfo is not None, f"{actual!r} is naive; stores return aware UTC datetimes"
    diff = abs((actual - expected).total_seconds())
    assert diff <= tol, f"{actual} differs from {expected} by {diff}s (> {tol}s)"


def make_job(type: str = "test.job", **kw: Any) -> NewJob:
    return NewJob(type=type, **kw)


async def enqueue(store: Store, *jobs: NewJob) -> list[Job]:
    """Enqueue and return the jobs (asserting each one was newly created)."""
    results = await store.enqueue_many(list(jobs))
    assert all(r.created for r in results)
    return [r.job for r in results]


async def enqueue_one(store: Store, **kw: Any) -> Job:
    (job,) = await enqueue(store, make_job(**kw))
    return job


async def claim_exactly(
    store: Store,
    n: int,
    queues: Sequence[str] = ("default",),
    worker_id: str = "w1",
    lease_seconds: float = 30.0,
) -> list[Job]:
    jobs = await store.claim(worker_id, list(queues), n, lease_seconds)
    assert len(jobs) == n, f"expected to claim {n} jobs, claimed {len(jobs)}"
    return jobs


async def running_job(
    store: Store, worker_id: str = "w1", lease_seconds: float = 30.0, **kw: Any
) -> Job:
    """Enqueue one job (kwargs go to NewJob) and claim it."""
    job = await enqueue_one(store, **kw)
    (claimed,) = await claim_exactly(
        store, 1, [job.queue], worker_id=worker_id, lease_seconds=lease_seconds
    )
    assert claimed.id == job.id
    return claimed


async def completed_job(store: Store, result: Any = None, **kw: Any) -> Job:
    job = await running_job(store, **kw)
    assert await store.complete_many([Completion(job.id, job.lease_token, result)]) == [job.id]
    return await store.get_job(job.id)


async def dead_job(store: Store, error: str = "boom", **kw: Any) -> Job:
    job = await running_job(store, **kw)
    assert await store.fail_many([Failure(job.id, job.lease_token, error, None)]) == [job.id]
    dead = await store.get_job(job.id)
    assert dead.status == JobStatus.DEAD
    return dead


async def counts(store: Store, queue: str = "default") -> dict[JobStatus, int]:
    """{status: n} for one queue, zero counts dropped."""
    by_queue = await store.count_by_queue_status()
    return {JobStatus(s): n for s, n in by_queue.get(queue, {}).items() if n}


def transitions(events: Sequence[Any]) -> list[tuple[JobStatus | None, JobStatus]]:
    return [(e.from_status, e.to_status) for e in events]


class TcpProxy:
    """A loopback TCP forwarder to `host:port`: a database server a test can take away
    (`stop()` closes the listener and every forwarded connection, as a server crash would)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._reserved: socket.socket | None = None

    def reserve(self) -> int:
        """Take a port that refuses connections (bound, not listening) until `start()`: a
        database that is not up yet."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self._reserved = sock
        self.port = sock.getsockname()[1]
        return self.port

    async def start(self) -> int:
        if self._reserved is not None:
            sock, self._reserved = self._reserved, None
            self._server = await asyncio.start_server(self._serve, sock=sock)
        else:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def stop(self) -> None:
        if self._reserved is not None:
            self._reserved.close()
            self._reserved = None
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()
        if self._server is not None:
            await self._server.wait_closed()


def via_proxy(url: str, proxy_port: int) -> str:
    """A PostgreSQL URL with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0] + "@" if len(netloc) == 2 else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{proxy_port}"))


@contextlib.asynccontextmanager
async def store_to_take_down(url: str) -> AsyncIterator[tuple[Store, Callable[[], Awaitable[str]]]]:
    """A connected, migrated store on `url`, and `take_down()`: the database goes away under
    it for good, and it returns what the store then says when called (the detail a caller
    must not be shown). PostgreSQL is reached through a TcpProxy, which take_down() stops;
    SQLite reopens its file on the next call, so a directory takes the file's place (a chmod
    would not stop a test that runs as root)."""
    from conveyor.domain.errors import StoreUnavailable
    from conveyor.store import open_store
    from conveyor.store.sqlite import SQLiteStore

    proxy: TcpProxy | None = None
    if url.startswith("postgres"):
        parts = urlsplit(url)
        proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
        url = via_proxy(url, await proxy.start())
    store = open_store(url)
    await store.connect()

    async def take_down() -> str:
        if proxy is not None:
            await proxy.stop()
        else:
            assert isinstance(store, SQLiteStore)
            await store.close()
            db = store.path.expanduser()
            for suffix in ("", "-wal", "-shm"):
                part = db.with_name(db.name + suffix)
                if part.exists():
                    part.rename(part.with_name(part.name + ".gone"))
            db.mkdir()
        try:
            await store.list_queue_settings()
        except StoreUnavailable as exc:
            return exc.message
        raise AssertionError("the store still answers after take_down()")

    try:
        await store.migrate()
        yield store, take_down
    finally:
        await store.close()
        if proxy is not None:
            await proxy.stop()


_REPO = Path(__file__).resolve().parents[1]


def child_pythonpath() -> str:
    """PYTHONPATH for a Conveyor process a test starts: this checkout's src/ first (so a git
    worktree tests its own code, not the one the venv was installed from), then the repository
    (the tests' handler apps), then what the test run itself was given."""
    parts = [str(_REPO / "src"), str(_REPO), os.environ.get("PYTHONPATH", "")]
    return os.pathsep.join(p for p in parts if p)


@contextlib.asynccontextmanager
async def opened(app: Any) -> AsyncIterator[Any]:
    """An App open on its store (schema migrated) for the block, closed afterwards."""
    await app.open(migrate=True)
    try:
        yield app
    finally:
        await app.close()


@contextlib.asynccontextmanager
async def running(worker: Any) -> AsyncIterator[Any]:
    """Run a worker for the block; stop it (gracefully) and wait for it afterwards."""
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 10)
