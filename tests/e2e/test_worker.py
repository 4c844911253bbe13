"""The worker against both real stores and every transport: retries, DLQ, delays, priority,
cancellation, concurrency, shutdown (what the executor does alike everywhere: test_executor.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conveyor import App, JobContext, JobStatus, RetryPolicy
from conveyor.worker import executor
from tests.e2e.conftest import TRANSPORTS
from tests.helpers import running, transitions, wait_until

pytestmark = TRANSPORTS


async def until_status(app: App, job_id: Any, *statuses: JobStatus, timeout: float = 10) -> Any:
    async def check() -> Any:
        job = await app.store.get_job(job_id)
        return job if job.status in statuses else None

    return await wait_until(check, timeout=timeout, message=f"job to become {statuses}")


async def test_fails_twice_then_succeeds_with_backoff(app: App) -> None:
    app.retry_policy = RetryPolicy(base=0.2, factor=2, jitter=False)
    starts: list[float] = []

    @app.job("flaky", max_retries=3)
    async def flaky(payload: dict[str, Any], ctx: JobContext) -> str:
        starts.append(time.monotonic())
        if ctx.attempt < 3:
            raise RuntimeError(f"fail {ctx.attempt}")
        return "done"

    job = await app.enqueue("flaky", {})
    async with running(app.worker()):
        done = await until_status(app, job.id, JobStatus.COMPLETED)
    assert done.attempt == 3
    assert done.result == "done"
    assert "fail 2" in (done.last_error or "")
    # backoff: 0.2 s after the first failure, 0.4 s after the second
    assert starts[1] - starts[0] >= 0.2
    assert starts[2] - starts[1] >= 0.4
    events = await app.store.job_events(job.id)
    assert transitions(events).count((JobStatus.RUNNING, JobStatus.RETRYING)) == 2
    assert transitions(events)[-1] == (JobStatus.RUNNING, JobStatus.COMPLETED)


async def test_retry_run_at_carries_the_backoff(app: App) -> None:
    app.retry_policy = RetryPolicy(base=30, jitter=False)

    @app.job("fails")
    def fails(payload: dict[str, Any]) -> None:
        raise ValueError("nope")

    job = await app.enqueue("fails", {})
    before = datetime.now(UTC)
    async with running(app.worker()):
        retrying = await until_status(app, job.id, JobStatus.RETRYING)
    assert retrying.run_at >= before + timedelta(seconds=29)
    assert retrying.run_at <= datetime.now(UTC) + timedelta(seconds=31)
    assert "ValueError: nope" in retrying.last_error
    assert "Traceback" in retrying.last_error


async def test_always_failing_ends_dead_after_max_retries(app: App) -> None:
    app.retry_policy = RetryPolicy(base=0.01, jitter=False)
    calls = 0

    @app.job("always.fails", max_retries=2)
    def always(payload: dict[str, Any]) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("broken dependency")

    job = await app.enqueue("always.fails", {})
    async with running(app.worker()):
        dead = await until_status(app, job.id, JobStatus.DEAD)
    assert calls == 3
    assert dead.attempt == 3
    assert "retries exhausted" in dead.last_error
    assert "broken dependency" in dead.last_error
    assert dead.finished_at is not None


async def test_unknown_type_is_dead_lettered_with_a_clear_error(app: App) -> None:
    @app.job("known")
    async def known(payload: dict[str, Any]) -> None:
        return None

    # submitted by another service that knows a type this worker does not
    (res,) = await app.store.enqueue_many([app.new_job("nobody.handles.this")])
    async with running(app.worker(queues=["default"])):
        dead = await until_status(app, res.job.id, JobStatus.DEAD)
    assert "unknown job type 'nobody.handles.this'" in dead.last_error
    assert "known" in dead.last_error  # says what this worker does handle


async def test_delayed_job_does_not_start_before_execute_at(app: App) -> None:
    started: list[datetime] = []

    @app.job("later")
    async def later(payload: dict[str, Any]) -> None:
        started.append(datetime.now(UTC))

    run_at = datetime.now(UTC) + timedelta(seconds=1)
    job = await app.enqueue("later", {}, run_at=run_at)
    assert job.status == JobStatus.SCHEDULED
    async with running(app.worker()):
        await until_status(app, job.id, JobStatus.COMPLETED)
    assert started[0] >= run_at


async def test_priority_orders_the_backlog(app: App) -> None:
    order: list[int] = []

    @app.job("p")
    async def p(payload: dict[str, Any]) -> None:
        order.append(payload["p"])

    await app.enqueue_many([app.new_job("p", {"p": p}, priority=p) for p in (0, 5, -1, 9, 5)])
    async with running(app.worker(concurrency=1)):
        await wait_until(lambda: len(order) == 5)
    assert order == [9, 5, 5, 0, -1]


async def test_cancelling_a_running_job_stops_its_handler(app: App) -> None:
    seen_cancel = asyncio.Event()
    started = asyncio.Event()

    @app.job("long")
    async def long(payload: dict[str, Any], ctx: JobContext) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen_cancel.set()
            raise

    job = await app.enqueue("long", {})
    async with running(app.worker()) as w:
        await asyncio.wait_for(started.wait(), 5)
        await app.service.cancel(job.id)
        await asyncio.wait_for(seen_cancel.wait(), 5)
        await wait_until(lambda: w.running_count == 0)
    final = await app.store.get_job(job.id)
    assert final.status == JobStatus.CANCELLED


async def test_graceful_stop_lets_in_flight_jobs_finish(app: App) -> None:
    started = asyncio.Event()

    @app.job("work")
    async def work(payload: dict[str, Any]) -> str:
        started.set()
        await asyncio.sleep(0.3)
        return "finished"

    job = await app.enqueue("work", {})
    w = app.worker()
    task = asyncio.create_task(w.run())
    await asyncio.wait_for(started.wait(), 5)
    w.stop()
    await asyncio.wait_for(task, 10)
    done = await app.store.get_job(job.id)
    assert done.status == JobStatus.COMPLETED
    assert done.result == "finished"


async def test_jobs_over_the_grace_period_are_handed_back_uncharged(
    app: App, store_url: str
) -> None:
    app.settings = app.settings.model_copy(update={"shutdown_grace": 0.2})
    started = asyncio.Event()

    @app.job("stuck")
    async def stuck(payload: dict[str, Any]) -> None:
        started.set()
        await asyncio.sleep(60)

    job = await app.enqueue("stuck", {})
    w = app.worker()
    task = asyncio.create_task(w.run())
    await asyncio.wait_for(started.wait(), 5)
    w.stop()
    await asyncio.wait_for(task, 10)
    back = await app.store.get_job(job.id)
    assert back.status == JobStatus.QUEUED
    assert back.attempt == 0  # the interrupted attempt is not charged
    assert back.worker_id is None


async def test_sync_job_still_running_at_shutdown_is_not_handed_back(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19: a sync handler's thread cannot be stopped, so its job must not be released
    (another worker would run it concurrently). The worker stops waiting at grace + margin and
    leaves the job running under its lease; `threads_running` says a thread is left."""
    monkeypatch.setattr(executor, "THREAD_MARGIN", 0.3)
    app.settings = app.settings.model_copy(update={"shutdown_grace": 0.2})
    started, finish = threading.Event(), threading.Event()

    @app.job("stubborn")
    def stubborn(payload: dict[str, Any]) -> str:
        started.set()
        finish.wait(30)  # ignores ctx.cancelled, like most blocking code
        return "late"

    job = await app.enqueue("stubborn", {})
    w = app.worker()
    task = asyncio.create_task(w.run())
    try:
        await wait_until(started.is_set, timeout=5, message="the handler to start")
        w.stop()
        stopping = time.monotonic()
        await asyncio.wait_for(task, 10)
        assert time.monotonic() - stopping < 0.2 + 0.3 + 1.0  # grace + margin + slack
        assert w.threads_running == 1
        held = await app.store.get_job(job.id)
        assert held.status == JobStatus.RUNNING  # not handed back: its lease is still held
        assert held.worker_id == w.id and held.attempt == 1
    finally:
        finish.set()
    await wait_until(lambda: w.threads_running == 0, message="the thread to end")


async def test_immediate_stop_does_not_hand_back_a_running_sync_job(app: App) -> None:
    started, finish = threading.Event(), threading.Event()

    @app.job("stubborn")
    def stubborn(payload: dict[str, Any]) -> None:
        started.set()
        finish.wait(30)

    job = await app.enqueue("stubborn", {})
    w = app.worker()
    task = asyncio.create_task(w.run())
    try:
        await wait_until(started.is_set, timeout=5, message="the handler to start")
        w.stop()
        w.stop(immediate=True)  # the second signal
        await asyncio.wait_for(task, 2)
        held = await app.store.get_job(job.id)
        assert held.status == JobStatus.RUNNING and held.worker_id == w.id
    finally:
        finish.set()
    await wait_until(lambda: w.threads_running == 0, message="the thread to end")


async def test_sync_job_ending_within_the_thread_margin_completes(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(executor, "THREAD_MARGIN", 3.0)
    app.settings = app.settings.model_copy(update={"shutdown_grace": 0.2})
    started = threading.Event()

    @app.job("overrun")
    def overrun(payload: dict[str, Any]) -> str:
        started.set()
        time.sleep(0.8)
        return "finished"

    job = await app.enqueue("overrun", {})
    w = app.worker()
    task = asyncio.create_task(w.run())
    await wait_until(started.is_set, timeout=5, message="the handler to start")
    w.stop()
    await asyncio.wait_for(task, 10)
    assert w.threads_running == 0
    done = await app.store.get_job(job.id)
    assert done.status == JobStatus.COMPLETED and done.result == "finished"
    assert done.attempt == 1


async def test_worker_claims_no_more_than_its_concurrency(app: App) -> None:
    gate = asyncio.Event()
    peak = 0
    active = 0

    @app.job("gated")
    async def gated(payload: dict[str, Any]) -> None:
        nonlocal peak, active
        active += 1
        peak = max(peak, active)
        await gate.wait()
        active -= 1

    await app.enqueue_many([app.new_job("gated") for _ in range(30)])
    async with running(app.worker(concurrency=7)) as w:
        await wait_until(lambda: w.running_count == 7)
        # Claimed is not yet started: runners take the claimed jobs one loop turn apart.
        await wait_until(lambda: active == 7, message="seven handlers running at once")
        counts = (await app.store.count_by_queue_status())["default"]
        assert counts.get(JobStatus.RUNNING) == 7  # prefetch is bounded by free slots
        assert counts.get(JobStatus.QUEUED) == 23
        gate.set()
        await wait_until(lambda: w.processed == 30)
    assert peak == 7


@pytest.mark.parametrize("n", [500])
async def test_many_jobs_all_complete_exactly_once(app: App, n: int) -> None:
    seen: list[int] = []

    @app.job("count")
    async def count(payload: dict[str, Any]) -> None:
        seen.append(payload["i"])

    await app.enqueue_many([app.new_job("count", {"i": i}) for i in range(n)])
    async with running(app.worker(concurrency=50)):
        await wait_until(lambda: _completed(app, n), timeout=30, message=f"{n} completed jobs")
    assert sorted(seen) == list(range(n))


async def _completed(app: App, n: int) -> bool:
    counts = (await app.store.count_by_queue_status()).get("default", {})
    return counts.get(JobStatus.COMPLETED, 0) == n
