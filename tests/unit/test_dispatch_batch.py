"""DispatchBatcher: concurrent dispatches share calls; each caller learns its call's fate."""

from __future__ import annotations

import asyncio

import pytest

from conveyor.transport.redis.batch import DispatchBatcher
from tests.helpers import wait_until


async def test_dispatches_made_during_a_call_go_together_in_the_next() -> None:
    calls: list[tuple[str, list[str]]] = []
    gate = asyncio.Event()

    async def send(queue: str, members: list[str]) -> None:
        calls.append((queue, members))
        await gate.wait()

    batcher = DispatchBatcher(send)
    first = asyncio.create_task(batcher.add({"q": ["a"]}))
    await wait_until(lambda: calls, message='the call sending "a"')
    later = [
        asyncio.create_task(batcher.add({"q": ["b"]})),
        asyncio.create_task(batcher.add({"q": ["c"], "r": ["d"]})),
    ]
    await wait_until(lambda: len(batcher._waiters) == 2, message="both waiting for the next call")
    gate.set()
    await asyncio.gather(first, *later)
    assert calls == [("q", ["a"]), ("q", ["b", "c"]), ("r", ["d"])]


async def test_a_failed_call_fails_the_callers_it_carried_only() -> None:
    async def send(queue: str, members: list[str]) -> None:
        if "bad" in members:
            raise ConnectionError("down")

    batcher = DispatchBatcher(send)
    with pytest.raises(ConnectionError):
        await batcher.add({"q": ["bad"]})
    await batcher.add({"q": ["good"]})


async def test_a_lone_dispatch_is_sent_by_its_caller() -> None:
    senders: list[asyncio.Task[object] | None] = []

    async def send(queue: str, members: list[str]) -> None:
        senders.append(asyncio.current_task())

    batcher = DispatchBatcher(send)
    for _ in range(2):
        caller = asyncio.create_task(batcher.add({"q": ["a"]}))
        await caller
        assert senders[-1] is caller  # no flusher task in between: one hop less per submit
