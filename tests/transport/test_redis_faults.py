"""Losing Redis costs latency, never a job: SIGKILL of Redis and FLUSHALL in the middle of a
run of 10,000 jobs each (the issue's scale). Every job completes, none runs twice (no worker
is killed here, so no job may run again), and the store holds each outcome once.

Kept to a few seconds each: jobs go in batches of 1,000, the handler does no work, one worker
runs 100 at a time, and completion is a count in SQL."""

from __future__ import annotations

from collections import Counter
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from conveyor import App, JobStatus
from conveyor.store.postgres import PostgresStore
from tests.helpers import running, wait_until
from tests.transport.conftest import RedisServer

N = 10_000
BATCH = 1_000


def dispatched(via: str) -> float:
    """Ids this process added to Redis so far, by the submit ("enqueue") or the sweep."""
    return REGISTRY.get_sample_value("conveyor_transport_dispatched_total", {"via": via}) or 0.0


def count_runs(app: App) -> Counter[int]:
    runs: Counter[int] = Counter()

    @app.job("t")
    async def t(payload: dict[str, Any]) -> None:
        runs[payload["i"]] += 1

    return runs


async def submit(app: App, start: int, n: int, batch: int = BATCH) -> None:
    for first in range(start, start + n, batch):
        stop = min(first + batch, start + n)
        await app.enqueue_many([app.new_job("t", {"i": i}) for i in range(first, stop)])


async def all_ran_once(app: App, runs: Counter[int], n: int) -> None:
    await wait_until(lambda: len(runs) == n, timeout=60, message=f"all {n} jobs to run")

    async def completed() -> bool:
        counts = await app.store.count_by_queue_status()
        return counts.get("default", {}).get(JobStatus.COMPLETED, 0) == n

    await wait_until(completed, timeout=10, message="every outcome stored")
    assert set(runs.values()) == {1}  # nobody ran a job twice
    assert (await app.store.count_by_queue_status())["default"] == {JobStatus.COMPLETED: n}
    # ...and the store claimed each once: a second claim would have counted a second attempt.
    assert isinstance(app.store, PostgresStore)  # redis_app
    by_attempt = "SELECT attempt, count(*) AS n FROM jobs GROUP BY attempt"
    attempts = await app.store.pool.fetch(by_attempt)
    assert {r["attempt"]: r["n"] for r in attempts} == {1: n}


async def test_redis_killed_mid_run_loses_no_job(redis_app: App, redis_server: RedisServer) -> None:
    runs = count_runs(redis_app)
    async with running(redis_app.worker(concurrency=100)):
        await submit(redis_app, 0, N // 2)
        await wait_until(lambda: len(runs) >= N // 10, timeout=20, message="the run to start")
        redis_server.kill()  # with ids ready, taken and acknowledged in it
        await submit(redis_app, N // 2, N // 4)  # submits keep succeeding while Redis is down
        await wait_until(lambda: len(runs) >= N // 2, timeout=30, message="work from the store")
        redis_server.start()  # empty: no persistence
        before = dispatched("enqueue")
        resumed = N * 3 // 4

        async def dispatching() -> bool:  # dispatch resumes by itself
            nonlocal resumed
            await submit(redis_app, resumed, 100)
            resumed += 100
            return dispatched("enqueue") > before

        await wait_until(dispatching, timeout=15, interval=0.1, message="dispatch to resume")
        await submit(redis_app, resumed, N - resumed)
        await all_ran_once(redis_app, runs, N)


async def test_flushall_mid_run_loses_no_job(redis_app: App, redis_server: RedisServer) -> None:
    runs = count_runs(redis_app)
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await submit(redis_app, 0, N)
        before = dispatched("sweep")
        async with running(redis_app.worker(concurrency=100)):
            await wait_until(lambda: len(runs) >= N // 4, timeout=20, message="the run to start")
            await client.flushall()
            await all_ran_once(redis_app, runs, N)
        assert dispatched("sweep") > before  # the sweep put back what Redis forgot
    finally:
        await client.aclose()
