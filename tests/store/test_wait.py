"""wait_for_jobs wakes idle workers: PostgreSQL through LISTEN/NOTIFY (so the enqueue may come
from any process), SQLite through an in-process signal from the same store instance.

The waker enqueues repeatedly until the waiter returns, so the test does not depend on when
exactly the waiter starts listening; it only requires the wake-up to come long before the
waiter's own timeout."""

from __future__ import annotations

import asyncio
import time

from conveyor.store import Store
from tests.helpers import enqueue, make_job

WAIT_TIMEOUT = 10.0
PROMPT = 3.0  # far below WAIT_TIMEOUT


async def _waker(store: Store, queue: str, waiter: asyncio.Task) -> int:
    sent = 0
    while not waiter.done():
        await enqueue(store, make_job(queue=queue))
        sent += 1
        await asyncio.wait({waiter}, timeout=0.05)
    return sent


async def test_enqueue_wakes_a_waiter(store: Store, store_factory, backend: str) -> None:
    enqueuer = await store_factory() if backend == "postgres" else store
    started = time.monotonic()
    waiter = asyncio.create_task(store.wait_for_jobs(["mail", "other"], timeout=WAIT_TIMEOUT))
    sent = await asyncio.wait_for(_waker(enqueuer, "mail", waiter), WAIT_TIMEOUT + 5)
    elapsed = time.monotonic() - started
    await waiter
    assert sent >= 1
    assert elapsed < PROMPT, f"woke after {elapsed:.2f}s: the enqueue did not wake the waiter"


async def test_wait_times_out_without_jobs(store: Store) -> None:
    started = time.monotonic()
    await store.wait_for_jobs(["mail"], timeout=0.3)
    elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 2.0
