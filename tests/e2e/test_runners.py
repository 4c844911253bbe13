"""The worker's runners (a task per stretch of jobs, not per job) and its one timeout timer:
what a task per job gave for free must still hold. Store-independent, so SQLite only."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from typing import Any

import pytest

from conveyor import App, JobContext, JobStatus
from tests.e2e.conftest import fast_settings
from tests.helpers import opened, running, wait_until

LEAK: contextvars.ContextVar[int] = contextvars.ContextVar("leak")


@pytest.fixture
async def app(sqlite_url: str) -> AsyncIterator[App]:
    async with opened(App(settings=fast_settings(sqlite_url))) as a:
        yield a


async def test_a_job_never_sees_context_variables_an_earlier_job_set(app: App) -> None:
    seen: list[int | None] = []

    @app.job("sets")
    async def sets(payload: dict[str, Any]) -> None:
        seen.append(LEAK.get(None))
        LEAK.set(payload["i"])
        if payload["i"] % 3 == 0:
            await asyncio.sleep(0)  # some wait, some finish without waiting

    await app.enqueue_many([app.new_job("sets", {"i": i}) for i in range(30)])
    async with running(app.worker(concurrency=4)) as w:
        await wait_until(lambda: w.processed == 30, message="all 30 jobs to run")
    assert seen == [None] * 30


async def test_a_timeout_stops_its_own_job_only_and_the_worker_goes_on(app: App) -> None:
    @app.job("hangs", max_retries=0, timeout=0.2)
    async def hangs(payload: dict[str, Any]) -> None:
        await asyncio.Event().wait()

    @app.job("slow", max_retries=0, timeout=5)
    async def slow(payload: dict[str, Any]) -> str:
        await asyncio.sleep(0.5)  # still running when the other job's deadline passes
        return "slow done"

    @app.job("quick", max_retries=0, timeout=5)
    async def quick(payload: dict[str, Any]) -> str:
        return "quick done"

    hung = await app.enqueue("hangs", {})
    late = await app.enqueue("slow", {})
    async with running(app.worker(concurrency=2)) as w:
        await wait_until(lambda: w.processed == 2, timeout=10, message="both jobs to end")
        after = await app.enqueue_many([app.new_job("quick") for _ in range(5)])
        await wait_until(lambda: w.processed == 7, timeout=10, message="the quick jobs")
    dead = await app.store.get_job(hung.id)
    assert dead.status == JobStatus.DEAD and "timed out after 0.2s" in (dead.last_error or "")
    done = await app.store.get_job(late.id)
    assert done.status == JobStatus.COMPLETED and done.result == "slow done"
    for e in after:
        job = await app.store.get_job(e.id)
        assert job.status == JobStatus.COMPLETED and job.result == "quick done"


async def test_a_run_whose_job_this_worker_claimed_again_is_stopped(sqlite_url: str) -> None:
    """The lease of a run expires (no heartbeat in time), the job is reaped and this same
    worker claims it again: the first run is stopped, not left running beside the second
    with nobody watching its timeout."""
    app = App(settings=fast_settings(sqlite_url, lease_seconds=0.3, heartbeat_interval=30))
    started: list[int] = []
    stopped: list[int] = []

    @app.job("stuck", max_retries=5, timeout=60)
    async def stuck(payload: dict[str, Any], ctx: JobContext) -> None:
        started.append(ctx.attempt)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            stopped.append(ctx.attempt)
            raise

    async with opened(app):
        await app.enqueue("stuck", {})
        async with running(app.worker(concurrency=4)):
            await wait_until(lambda: 2 in started, timeout=10, message="a second attempt")
            await wait_until(lambda: 1 in stopped, message="the first run stopped")
