"""WorkerGateway: a worker that hangs up mid-fetch strands no job."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conveyor.domain.job import JobStatus, NewJob
from conveyor.service.workers import WorkerGateway
from conveyor.store import Store
from tests.grpc.conftest import grpc_settings
from tests.helpers import enqueue


class SlowClaims:
    """The real store, with claims held until `release` is set: cancelled mid-way, for sure."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.claiming = asyncio.Event()
        self.release = asyncio.Event()
        self.claimed: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def claim(self, *args: Any) -> Any:
        self.claiming.set()
        await self.release.wait()
        jobs = await self._store.claim(*args)
        self.claimed.extend(jobs)
        return jobs


async def test_a_cancelled_fetch_hands_its_claim_back(store: Store, store_url: str) -> None:
    (job,) = await enqueue(store, NewJob(type="t.x"))
    slow = SlowClaims(store)
    gateway = WorkerGateway(slow, grpc_settings(store_url))  # type: ignore[arg-type]
    fetch = asyncio.create_task(gateway.fetch("w1", ["default"], 5, 30, 0))
    await slow.claiming.wait()
    fetch.cancel()
    slow.release.set()  # the claim goes on after its caller was cancelled
    with pytest.raises(asyncio.CancelledError):
        await fetch
    assert [j.id for j in slow.claimed] == [job.id]  # claimed after all, then handed back
    back = await store.get_job(job.id)
    assert back.status == JobStatus.QUEUED
    assert back.attempt == 0  # handed back without charging the attempt


async def test_closing_ends_a_parked_fetch(store: Store, store_url: str) -> None:
    parked = asyncio.Event()
    store_wait = store.wait_for_jobs

    async def watched_wait(*a: Any, **kw: Any) -> None:
        parked.set()
        await store_wait(*a, **kw)

    store.wait_for_jobs = watched_wait  # type: ignore[method-assign]
    gateway = WorkerGateway(store, grpc_settings(store_url))
    fetch = asyncio.create_task(gateway.fetch("w1", ["default"], 5, 30, 10))
    await asyncio.wait_for(parked.wait(), 5)  # parked in the long poll, not yet answered
    assert not fetch.done()
    gateway.closing = True
    assert await asyncio.wait_for(fetch, 2) == []
