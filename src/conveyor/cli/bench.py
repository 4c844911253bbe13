"""`conveyor bench`: throughput and latency of the real engine on a real store.

Throughput mode enqueues N no-op jobs in batches, then drains them with one worker.
Steady mode has a producer *process* submit one job at a time at a fixed rate while one
worker runs them, and reports enqueue-to-start latency (measured with the same clock on
both sides: the producer stamps time.time() into the payload).
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import statistics
import time
import uuid
from typing import Any

import click

from conveyor.config import Settings
from conveyor.domain.job import NewJob
from conveyor.service.jobs import JobService
from conveyor.store import open_store
from conveyor.worker import Registry, Worker


def _percentiles(xs: list[float]) -> str:
    if not xs:
        return "n/a"
    xs = sorted(xs)
    q = statistics.quantiles(xs, n=100, method="inclusive")
    return (
        f"p50 {q[49] * 1000:.1f} ms  p95 {q[94] * 1000:.1f} ms  p99 {q[98] * 1000:.1f} ms  "
        f"max {xs[-1] * 1000:.1f} ms"
    )


def bench_worker(store: Any, queue: str, concurrency: int, latencies: list[float]) -> Worker:
    registry = Registry()

    async def noop(payload: dict[str, Any]) -> None:
        latencies.append(time.time() - payload["t"])

    registry.register("bench.noop", noop, queue=queue)
    settings = Settings(poll_interval=0.5, heartbeat_interval=5.0)
    return Worker(store, registry, queues=[queue], concurrency=concurrency, settings=settings)


async def drain(worker: Worker, n: int, timeout: float = 600) -> None:
    """Wait until `n` handlers ran, then stop the worker, which flushes the last outcomes."""
    deadline = time.monotonic() + timeout
    while worker.processed < n:
        if time.monotonic() > deadline:
            raise click.ClickException("benchmark did not finish in time")
        await asyncio.sleep(0.005)


async def run_bench(
    url: str, *, jobs: int, concurrency: int, rate: float | None, duration: float
) -> None:
    store = open_store(url)
    await store.connect()
    await store.migrate()
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    latencies: list[float] = []
    try:
        if rate is None:
            await _throughput(store, url, queue, jobs, concurrency, latencies)
        else:
            await _steady(store, url, queue, rate, duration, concurrency, latencies)
    finally:
        await store.close()


async def _throughput(
    store: Any, url: str, queue: str, n: int, concurrency: int, latencies: list[float]
) -> None:
    t0 = time.perf_counter()
    for start in range(0, n, 1000):
        now = time.time()
        await store.enqueue_many(
            [
                NewJob(type="bench.noop", queue=queue, payload={"t": now})
                for _ in range(min(1000, n - start))
            ]
        )
    enq = time.perf_counter() - t0
    click.echo(f"store {url.split('?')[0]}  jobs {n}  concurrency {concurrency}")
    click.echo(f"enqueue (batches of 1000): {n / enq:,.0f} jobs/s ({enq:.2f} s)")
    worker = bench_worker(store, queue, concurrency, latencies)
    t1 = time.perf_counter()
    run = asyncio.create_task(worker.run())
    await drain(worker, n)
    worker.stop()
    await run
    drained_in = time.perf_counter() - t1
    click.echo(f"drain (claim+run+complete): {n / drained_in:,.0f} jobs/s ({drained_in:.2f} s)")


def _produce(url: str, queue: str, rate: float, duration: float) -> None:
    """Submit single jobs on a fixed schedule. Each submit is its own task, as independent
    clients would be, so a slow round trip delays no later submit."""

    async def go() -> None:
        store = open_store(url)
        await store.connect()
        # Open the pool's connections before the clock starts: a real service is warm.
        await asyncio.gather(*[store.ping() for _ in range(20)])
        # Through the service, as the API and App submit: concurrent submits share commits.
        service = JobService(store)
        interval = 1.0 / rate
        start = time.perf_counter()
        inflight: set[asyncio.Task[Any]] = set()
        submit_times: list[float] = []

        async def submit() -> None:
            t = time.time()
            await service.submit(NewJob(type="bench.noop", queue=queue, payload={"t": t}))
            submit_times.append(time.time() - t)

        sent = 0
        while (now := time.perf_counter() - start) < duration:
            while sent <= now / interval:
                task = asyncio.create_task(submit())
                inflight.add(task)
                task.add_done_callback(inflight.discard)
                sent += 1
            await asyncio.sleep(max(0.0, sent * interval - (time.perf_counter() - start)))
        await asyncio.gather(*inflight)
        await store.close()
        click.echo(f"submit latency (producer side): {_percentiles(submit_times)}")

    asyncio.run(go())


async def _steady(
    store: Any,
    url: str,
    queue: str,
    rate: float,
    duration: float,
    concurrency: int,
    latencies: list[float],
) -> None:
    worker = bench_worker(store, queue, concurrency, latencies)
    run = asyncio.create_task(worker.run())
    proc = mp.get_context("spawn").Process(target=_produce, args=(url, queue, rate, duration))
    proc.start()
    await asyncio.get_running_loop().run_in_executor(None, proc.join)
    expected = len(latencies)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        counts = (await store.count_by_queue_status()).get(queue, {})
        total = sum(counts.values())
        if len(latencies) >= total:
            break
        await asyncio.sleep(0.05)
    worker.stop()
    await run
    click.echo(
        f"store {url.split('?')[0]}  steady {rate:g} jobs/s for {duration:g} s, "
        f"one producer process submitting single jobs via JobService.submit, "
        f"one worker (c={concurrency})"
    )
    click.echo(f"jobs run: {len(latencies)} (seen before drain: {expected})")
    click.echo(f"enqueue-to-start latency: {_percentiles(latencies)}")
