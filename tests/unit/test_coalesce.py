"""SubmitCoalescer's batching, over a store that only records the batches it is given."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from conveyor.domain.job import NewJob
from conveyor.domain.records import Enqueued
from conveyor.service.coalesce import SubmitCoalescer
from tests.helpers import wait_until


class RecordingStore:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.commit = asyncio.Event()  # a round trip ends when this is set
        self.commit.set()

    async def enqueue_many(self, jobs: Sequence[NewJob]) -> list[Enqueued]:
        self.batches.append([j.type for j in jobs])
        await self.commit.wait()
        return [Enqueued(job=j, created=True) for j in jobs]  # type: ignore[arg-type]


def coalescer(linger: float) -> tuple[SubmitCoalescer, RecordingStore]:
    store = RecordingStore()
    return SubmitCoalescer(store, linger=linger), store  # type: ignore[arg-type]


async def test_a_lone_submit_is_written_at_once_whatever_the_linger() -> None:
    c, store = coalescer(linger=30.0)
    started = time.monotonic()
    result: Any = await asyncio.wait_for(c.submit(NewJob("a")), timeout=5)
    assert result.created and store.batches == [["a"]]
    assert time.monotonic() - started < 1.0
    # still at once when submits come one at a time
    await asyncio.wait_for(c.submit(NewJob("b")), timeout=5)
    assert store.batches == [["a"], ["b"]]


async def test_under_concurrent_load_the_writer_waits_for_company() -> None:
    c, store = coalescer(linger=0.2)
    store.commit.clear()
    first = [asyncio.create_task(c.submit(NewJob(t))) for t in ("a", "b")]
    await wait_until(lambda: len(store.batches) == 1)  # [a, b] is being written: a crowd
    later = asyncio.create_task(c.submit(NewJob("c")))  # waits for the next batch
    await wait_until(lambda: c._pending)
    store.commit.set()
    await asyncio.gather(*first)
    # The writer now lingers before writing "c"; submits arriving meanwhile join it.
    more = [asyncio.create_task(c.submit(NewJob(t))) for t in ("d", "e")]
    await asyncio.gather(later, *more)
    assert store.batches == [["a", "b"], ["c", "d", "e"]]


async def test_without_linger_batches_are_whatever_is_pending() -> None:
    c, store = coalescer(linger=0.0)
    await asyncio.gather(*(c.submit(NewJob(t)) for t in ("a", "b", "c")))
    assert store.batches == [["a", "b", "c"]]
