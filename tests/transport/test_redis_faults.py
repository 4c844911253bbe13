"""Losing Redis costs latency, never a job: SIGKILL of Redis and FLUSHALL in the middle of a
run of thousands of jobs. Every job completes, and none is claimed twice in the store."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from conveyor import App, JobStatus
from tests.helpers import running, wait_until
from tests.transport.conftest import RedisServer

BATCH = 100


def dispatched(via: str) -> float:
    """Ids this process added to Redis so far, by the submit ("enqueue") or the sweep."""
    return REGISTRY.get_sample_value("conveyor_transport_dispatched_total", {"via": via}) or 0.0


def count_runs(app: App) -> Counter[int]:
    runs: Counter[int] = Counter()

    @app.job("t")
    async def t(payload: dict[str, Any]) -> None:
        runs[payload["i"]] += 1
        await asyncio.sleep(0.001)

    return runs


async def submit(app: App, start: int, n: int) -> None:
    for first in range(start, start + n, BATCH):
        await app.enqueue_many([app.new_job("t", {"i": i}) for i in range(first, first + BATCH)])


async def all_ran_once(app: App, runs: Counter[int], n: int) -> None:
    await wait_until(lambda: len(runs) == n, timeout=30, message=f"all {n} jobs to run")

    async def completed() -> bool:
        counts = await app.store.count_by_queue_status()
        return counts.get("default", {}).get(JobStatus.COMPLETED, 0) == n

    await wait_until(completed, timeout=10, message="every outcome stored")
    assert set(runs.values()) == {1}  # nobody ran a job twice
    assert (await app.store.count_by_queue_status())["default"] == {JobStatus.COMPLETED: n}


async def test_redis_killed_mid_run_loses_no_job(redis_app: App, redis_server: RedisServer) -> None:
    runs = count_runs(redis_app)
    async with running(redis_app.worker(concurrency=50)):
        await submit(redis_app, 0, 1000)
        redis_server.kill()
        await submit(redis_app, 1000, 1000)  # submits keep succeeding while Redis is down
        await wait_until(lambda: len(runs) >= 1500, timeout=20, message="work from the store")
        redis_server.start()  # empty: no persistence
        before = dispatched("enqueue")
        resumed = 2000

        async def dispatching() -> bool:  # dispatch resumes by itself
            nonlocal resumed
            await submit(redis_app, resumed, BATCH)
            resumed += BATCH
            return dispatched("enqueue") > before

        await wait_until(dispatching, timeout=15, interval=0.2, message="dispatch to resume")
        await all_ran_once(redis_app, runs, resumed)


async def test_flushall_mid_run_loses_no_job(redis_app: App, redis_server: RedisServer) -> None:
    runs = count_runs(redis_app)
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await submit(redis_app, 0, 3000)
        before = dispatched("sweep")
        async with running(redis_app.worker(concurrency=50)):
            await wait_until(lambda: len(runs) >= 500, timeout=20, message="the run to start")
            await client.flushall()
            await all_ran_once(redis_app, runs, 3000)
        assert dispatched("sweep") > before  # the sweep put back what Redis forgot
    finally:
        await client.aclose()
