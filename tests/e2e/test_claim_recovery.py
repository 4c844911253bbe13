"""Issue 19 #2: a claim whose answer is lost after the store committed it. The worker must run
the job at once (not a lease later) without charging a second attempt, or, when it is
stopping, hand the job back uncharged. The store is real; only the claim's answer is lost."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from conveyor import App, JobContext, JobStatus
from conveyor.domain.errors import StoreUnavailable
from conveyor.store import Store
from conveyor.worker import Worker
from tests.e2e.conftest import fast_settings
from tests.helpers import wait_until

LEASE = 30.0  # what the stranded job would wait without the recovery


class LosesClaimAnswer:
    """The real store, except that the first claim that takes jobs commits and then raises, as
    when the connection drops on the way back; the first `reclaim_failures` reclaims find the
    store down. `on_lost` runs just before the claim raises."""

    def __init__(self, store: Store, reclaim_failures: int = 0) -> None:
        self._store = store
        self.reclaim_failures = reclaim_failures
        self.lost: list[Any] = []
        self.reclaims = 0
        self.on_lost: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def claim(self, *args: Any) -> Any:
        jobs = await self._store.claim(*args)
        if jobs and not self.lost:
            self.lost = jobs
            if self.on_lost is not None:
                self.on_lost()
            raise ConnectionError("connection lost after the claim committed")
        return jobs

    async def reclaim(self, *args: Any) -> Any:
        self.reclaims += 1
        if self.reclaims <= self.reclaim_failures:
            raise StoreUnavailable("PostgreSQL unavailable: the test says so")
        return await self._store.reclaim(*args)


async def test_a_lost_claim_answer_runs_the_job_at_once_on_its_first_attempt(app: App) -> None:
    ran: list[int] = []

    @app.job("once")
    async def once(payload: dict[str, Any], ctx: JobContext) -> str:
        ran.append(ctx.attempt)
        return "ran"

    # max_retries=0: charged a lost attempt, it would be dead without ever running.
    job = await app.enqueue("once", {}, max_retries=0)
    store = LosesClaimAnswer(app.store, reclaim_failures=2)  # the store is down for a moment
    worker = Worker(
        store,  # type: ignore[arg-type]
        app.registry,
        settings=fast_settings(app.settings.store_url, lease_seconds=LEASE),
    )
    started = time.monotonic()
    task = asyncio.create_task(worker.run())
    try:

        async def completed() -> bool:
            return (await app.store.get_job(job.id)).status == JobStatus.COMPLETED

        await wait_until(
            completed, timeout=LEASE / 3, message="the job to run after the lost claim"
        )
        took = time.monotonic() - started
    finally:
        worker.stop()
        await asyncio.wait_for(task, 10)
    assert [j.id for j in store.lost] == [job.id]
    assert store.reclaims == 3  # two refused while the store was down, then the one that worked
    assert took < 5, took  # promptly, far from the 30 s lease
    done = await app.store.get_job(job.id)
    assert (done.attempt, done.result, ran) == (1, "ran", [1])


async def test_a_lost_claim_answer_while_stopping_hands_the_job_back_uncharged(app: App) -> None:
    ran: list[int] = []

    @app.job("never")
    async def never(payload: dict[str, Any]) -> None:
        ran.append(1)

    job = await app.enqueue("never", {})
    store = LosesClaimAnswer(app.store)
    worker = Worker(
        store,  # type: ignore[arg-type]
        app.registry,
        settings=fast_settings(app.settings.store_url, lease_seconds=LEASE),
    )
    store.on_lost = worker.stop  # SIGTERM lands while the claim is on its way back
    await asyncio.wait_for(worker.run(), 10)
    back = await app.store.get_job(job.id)
    assert (back.status, back.attempt, back.worker_id, ran) == (JobStatus.QUEUED, 0, None, [])
