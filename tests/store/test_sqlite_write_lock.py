"""SQLite writes and the write lock: a lock another connection holds is waited for without
blocking the event loop and taken promptly once free; a writer gives up (StoreUnavailable)
after WRITE_LOCK_TIMEOUT; a claimer whose jobs went to another while it waited gives up
without the lock; no transaction outlives its call, even a cancelled one on the store's
thread; and the WAL reaches the database file through the background checkpoints.

"Another connection" is a plain sqlite3 connection holding BEGIN IMMEDIATE: to SQLite it is
the same as another process's store in the middle of a write."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from conveyor.domain.errors import QueueFull, StoreUnavailable
from conveyor.domain.records import QueueSettings
from conveyor.store import sqlite as sqlite_driver
from conveyor.store.sqlite import SQLiteStore
from tests.helpers import enqueue_one, make_job

STEP = 10.0  # deadline of any one step: far above every figure a test expects


@pytest_asyncio.fixture
async def store(sqlite_url: str) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(sqlite_url)
    await s.connect()
    await s.migrate()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def other(store: SQLiteStore) -> Iterator[sqlite3.Connection]:
    """Another connection on the store's file (busy_timeout 0: it never waits itself)."""
    conn = sqlite3.connect(store.path, isolation_level=None, timeout=0)
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


def _lock_is_free(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc) or "busy" in str(exc), exc
        return False
    conn.execute("ROLLBACK")
    return True


class _Ticker:
    """The longest the event loop went without running a 1 ms ticker: how long it was
    blocked."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.001)
            now = time.monotonic()
            self.longest = max(self.longest, now - last)
            last = now

    def stop(self) -> float:
        self._task.cancel()
        return self.longest


async def test_a_held_lock_is_waited_for_without_blocking_the_loop(
    store: SQLiteStore, other: sqlite3.Connection
) -> None:
    other.execute("BEGIN IMMEDIATE")
    ticker = _Ticker()
    write = asyncio.create_task(enqueue_one(store, queue="mail"))
    await asyncio.sleep(0.3)
    assert not write.done(), "the write did not wait for the lock"
    other.execute("COMMIT")
    released = time.monotonic()
    job = await asyncio.wait_for(write, STEP)
    took = time.monotonic() - released
    longest = ticker.stop()
    assert job.queue == "mail"
    # SQLite's busy handler would have slept up to 100 ms between tries by now; the store
    # tries every millisecond or two.
    assert took < 0.05, f"the write took {took * 1e3:.1f} ms after the lock was released"
    assert longest < 0.1, f"the event loop was blocked for {longest * 1e3:.1f} ms"


async def test_a_lock_held_past_the_timeout_is_store_unavailable(
    store: SQLiteStore, other: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_driver, "WRITE_LOCK_TIMEOUT", 0.3)
    other.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await asyncio.wait_for(enqueue_one(store), STEP)
    assert 0.3 <= time.monotonic() - started < STEP
    other.execute("ROLLBACK")
    assert (await enqueue_one(store, queue="after")).queue == "after"


async def test_a_claimer_whose_jobs_went_elsewhere_gives_up_without_the_lock(
    store: SQLiteStore, other: sqlite3.Connection
) -> None:
    job = await enqueue_one(store, queue="mail")
    other.execute("BEGIN IMMEDIATE")
    claim = asyncio.create_task(store.claim("w", ["mail"], 10, 30))
    await asyncio.sleep(0.2)
    assert not claim.done(), "the claim did not wait for the lock"
    # Another claimer takes the job and commits; it (or another writer) holds the lock again
    # straight away.
    other.execute("UPDATE jobs SET status = 'running' WHERE id = ?", (str(job.id),))
    other.execute("COMMIT")
    other.execute("BEGIN IMMEDIATE")
    assert await asyncio.wait_for(claim, STEP) == []


async def test_a_failed_transaction_leaves_the_lock_free(
    store: SQLiteStore, other: sqlite3.Connection
) -> None:
    await store.set_queue_settings(QueueSettings(name="small", max_depth=1))
    await enqueue_one(store, queue="small")
    with pytest.raises(QueueFull):
        await enqueue_one(store, queue="small")
    assert _lock_is_free(other)


async def test_a_cancelled_transaction_on_the_store_thread_rolls_back(
    store: SQLiteStore, other: sqlite3.Connection
) -> None:
    inside = asyncio.Event()
    loop = asyncio.get_running_loop()

    def slow(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO queues (name, paused) VALUES ('ghost', 0)")
        loop.call_soon_threadsafe(inside.set)
        time.sleep(0.3)  # the caller is cancelled meanwhile

    write = asyncio.create_task(store._write(slow, long=True))
    await asyncio.wait_for(inside.wait(), STEP)
    write.cancel()
    with pytest.raises(asyncio.CancelledError):
        await write
    # The transaction had ended (rolled back) by the time the cancelled call returned.
    assert _lock_is_free(other)
    assert other.execute("SELECT count(*) FROM queues WHERE name = 'ghost'").fetchone() == (0,)
    saved = await store.set_queue_settings(QueueSettings(name="real"))
    assert saved.name == "real"


async def test_the_wal_reaches_the_database_file_in_the_background(store: SQLiteStore) -> None:
    # The write connection's own automatic checkpoint waits for a WAL of ~40 MB: what reaches
    # the database file before that was copied by the background checkpoints.
    db = store.path
    for _ in range(20):
        await store.enqueue_many(
            [make_job(queue="bulk", payload={"pad": "x" * 200}) for _ in range(100)]
        )
        await asyncio.sleep(0.02)
    deadline = time.monotonic() + STEP
    while os.path.getsize(db) < 400_000:  # 2,000 jobs of ~250 bytes, and their indexes
        assert time.monotonic() < deadline, f"database file still {os.path.getsize(db)} bytes"
        await asyncio.sleep(0.05)
        await store.enqueue_many([make_job(queue="bulk")])  # a commit starts a due checkpoint
