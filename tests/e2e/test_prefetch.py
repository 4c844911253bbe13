"""Backpressure inside the worker: it never holds more jobs than it has slots, so a backlog
stays in the store (where other workers can take it) instead of in one worker's memory."""

from __future__ import annotations

import asyncio
from typing import Any

from conveyor import App, JobStatus
from tests.helpers import counts, wait_until


async def test_worker_holds_at_most_its_concurrency(app: App) -> None:
    release = asyncio.Event()
    peak = {"running": 0, "held": 0}

    @app.job("slow")
    async def slow(payload: dict[str, Any]) -> None:
        await release.wait()

    await app.enqueue_many([app.new_job("slow", {"i": i}) for i in range(30)])
    worker = app.worker(concurrency=3)
    task = asyncio.create_task(worker.run())
    try:

        async def sample() -> bool:
            c = await counts(app.store)
            peak["running"] = max(peak["running"], c.get(JobStatus.RUNNING, 0))
            peak["held"] = max(peak["held"], worker.running_count)
            return c.get(JobStatus.RUNNING, 0) == 3

        await wait_until(sample, timeout=5, message="three jobs running")
        for _ in range(10):  # keep sampling for a while: the worker must not claim more
            await sample()
            await asyncio.sleep(0.02)
        assert peak == {"running": 3, "held": 3}
        assert (await counts(app.store))[JobStatus.QUEUED] == 27
        release.set()
        await wait_until(
            lambda: _all_done(app), timeout=10, message="the backlog to drain through 3 slots"
        )
        assert peak["held"] <= 3
    finally:
        release.set()
        worker.stop()
        await asyncio.wait_for(task, 10)


async def _all_done(app: App) -> bool:
    return (await counts(app.store)).get(JobStatus.COMPLETED, 0) == 30
