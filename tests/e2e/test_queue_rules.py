"""The queue rules a worker must honour, whichever transport brings it the jobs: cancel, pause
and resume, per-queue concurrency, unique keys and max_depth."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from conveyor import App, JobStatus
from conveyor.domain.errors import QueueFull
from conveyor.worker import Worker
from tests.e2e.conftest import TRANSPORTS
from tests.helpers import wait_until

pytestmark = TRANSPORTS


@contextlib.asynccontextmanager
async def running(*workers: Worker) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        yield
    finally:
        for w in workers:
            w.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)


def count_runs(app: App, queue: str = "default") -> Counter[int]:
    runs: Counter[int] = Counter()

    @app.job("t", queue=queue)
    async def t(payload: dict[str, Any]) -> None:
        runs[payload["i"]] += 1

    return runs


async def test_a_cancelled_job_never_starts(app: App) -> None:
    runs = count_runs(app)
    doomed = await app.enqueue("t", {"i": 0})
    await app.service.cancel(doomed.id)
    await app.enqueue("t", {"i": 1})
    async with running(app.worker()):
        await wait_until(lambda: runs[1] == 1, message="the live job to run")
        await app.enqueue("t", {"i": 2})  # a later job after the cancelled one still runs
        await wait_until(lambda: runs[2] == 1, message="the later job to run")
    assert runs[0] == 0
    assert (await app.store.get_job(doomed.id)).status == JobStatus.CANCELLED


async def test_a_paused_queue_holds_its_jobs_until_resumed(app: App) -> None:
    runs = count_runs(app)
    await app.service.update_queue("default", {"paused": True})
    jobs = await app.enqueue_many([app.new_job("t", {"i": i}) for i in range(5)])
    async with running(app.worker()):
        # Let the worker come round several times (its poll and maintenance are 50 ms).
        with pytest.raises(AssertionError):
            await wait_until(lambda: runs, timeout=0.5)
        assert {(await app.store.get_job(j.id)).status for j in jobs} == {JobStatus.QUEUED}
        await app.service.update_queue("default", {"paused": False})
        await wait_until(lambda: len(runs) == 5, message="jobs to run after resume")
    assert set(runs.values()) == {1}


async def test_queue_concurrency_holds_across_workers(app: App) -> None:
    await app.service.update_queue("default", {"concurrency": 2})
    running_now = peak = done = 0

    @app.job("t")
    async def t(payload: dict[str, Any]) -> None:
        nonlocal running_now, peak, done
        running_now += 1
        peak = max(peak, running_now)
        await asyncio.sleep(0.02)
        running_now -= 1
        done += 1

    await app.enqueue_many([app.new_job("t", {"i": i}) for i in range(20)])
    async with running(app.worker(concurrency=5), app.worker(concurrency=5, maintenance=False)):
        await wait_until(lambda: done == 20, timeout=20, message="all jobs to run")
    assert peak == 2


async def test_a_unique_key_runs_once(app: App) -> None:
    runs = count_runs(app)
    first = await app.enqueue("t", {"i": 0}, unique_key="k")
    again = await app.enqueue("t", {"i": 1}, unique_key="k")
    assert again.id == first.id
    async with running(app.worker()):
        await wait_until(lambda: runs[0] == 1)
        await app.enqueue("t", {"i": 2})
        await wait_until(lambda: runs[2] == 1)
    assert runs[1] == 0 and runs[0] == 1


async def test_max_depth_refuses_then_frees_up(app: App) -> None:
    runs = count_runs(app)
    await app.service.update_queue("default", {"max_depth": 3})
    await app.enqueue_many([app.new_job("t", {"i": i}) for i in range(3)])
    with pytest.raises(QueueFull):
        await app.enqueue("t", {"i": 3})
    async with running(app.worker()):
        await wait_until(lambda: len(runs) == 3)
        await app.enqueue("t", {"i": 4})
        await wait_until(lambda: runs[4] == 1)
    assert runs[3] == 0
