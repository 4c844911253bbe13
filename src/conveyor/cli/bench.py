"""`conveyor bench`: throughput and latency of the real engine on a real store.

Throughput mode enqueues N no-op jobs in batches, then drains them with one worker.

Steady mode (`--rate R`) has a producer *process* call `App.enqueue` once per job on a fixed
schedule (job i is due at start + i/R, each call its own task, so one slow call delays no
later one) while one worker in this process runs them, and reports the rate reached and the
enqueue-to-start latency (the producer stamps time.time() into the payload just before the
call; the handler reads the same clock).

Serial mode (`serial=N`; `python -m conveyor.cli.bench --serial N`) times N `App.enqueue`
calls one after another with nothing else running: the single-submit round trip alone.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import statistics
import time
import uuid
from typing import Any

import click

from conveyor.app import App
from conveyor.cli.common import run_async
from conveyor.config import Settings
from conveyor.domain.job import NewJob
from conveyor.runtime.heap import freeze_startup_heap
from conveyor.runtime.logs import configure_logging
from conveyor.store import open_store
from conveyor.worker import Registry, Worker

# Steady mode: submits before the clock starts (statements prepared, pool warm); their jobs
# run but are not counted.
WARMUP_SUBMITS = 50


def _percentiles(xs: list[float]) -> str:
    if len(xs) < 2:
        return "n/a"
    xs = sorted(xs)
    q = statistics.quantiles(xs, n=100, method="inclusive")
    return (
        f"p50 {q[49] * 1000:.2f} ms  p95 {q[94] * 1000:.2f} ms  p99 {q[98] * 1000:.2f} ms  "
        f"max {xs[-1] * 1000:.1f} ms"
    )


def bench_worker(store: Any, queue: str, concurrency: int, latencies: list[float]) -> Worker:
    registry = Registry()

    async def noop(payload: dict[str, Any]) -> None:
        if "w" not in payload:  # warm-up jobs are not counted
            latencies.append(time.time() - payload["t"])

    registry.register("bench.noop", noop, queue=queue)
    settings = Settings(poll_interval=0.5, heartbeat_interval=5.0)
    freeze_startup_heap()  # as `conveyor worker` does before it runs
    return Worker(store, registry, queues=[queue], concurrency=concurrency, settings=settings)


async def drain(worker: Worker, n: int, timeout: float = 600) -> None:
    """Wait until `n` handlers ran, then stop the worker, which flushes the last outcomes."""
    deadline = time.monotonic() + timeout
    while worker.processed < n:
        if time.monotonic() > deadline:
            raise click.ClickException("benchmark did not finish in time")
        await asyncio.sleep(0.005)


async def run_bench(
    url: str,
    *,
    jobs: int,
    concurrency: int,
    rate: float | None,
    duration: float,
    serial: int | None = None,
) -> None:
    store = open_store(url)
    await store.connect()
    await store.migrate()
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    latencies: list[float] = []
    try:
        if serial is not None:
            await _serial(url, queue, serial)
        elif rate is None:
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


async def _serial(url: str, queue: str, n: int) -> None:
    """`App.enqueue` N times, one after another, nothing else running (after a warm-up). For
    scale, the same number of bare asyncpg INSERTs (one uuid + jsonb row, a table with only its
    primary key, one connection) is timed in the same run, in alternating blocks, on
    PostgreSQL: this host's speed moves by half from one minute to the next."""
    import asyncpg

    from conveyor.store.postgres import parse_url

    dsn, schema = parse_url(url) if url.startswith("postgres") else ("", "")
    bare: list[float] = []
    times: list[float] = []
    blocks = 10
    async with App(url, check_types=False) as app:
        conn = await asyncpg.connect(dsn) if dsn else None
        table = f'"{schema}".bench_bare_insert'
        try:
            if conn is not None:
                await conn.execute(f"CREATE TABLE {table} (id uuid PRIMARY KEY, payload jsonb)")
            for _ in range(min(200, n)):
                await app.enqueue("bench.noop", {"t": 0}, queue=queue)
            for b in range(blocks):
                for _ in range(n // blocks + (b < n % blocks)):
                    t = time.perf_counter()
                    await app.enqueue("bench.noop", {"t": t}, queue=queue)
                    times.append(time.perf_counter() - t)
                if conn is None:
                    continue
                for _ in range(n // blocks + (b < n % blocks)):
                    t = time.perf_counter()
                    await conn.execute(
                        f"INSERT INTO {table} VALUES ($1, $2::jsonb)", uuid.uuid4(), '{"t": 0}'
                    )
                    bare.append(time.perf_counter() - t)
        finally:
            if conn is not None:
                await conn.execute(f"DROP TABLE IF EXISTS {table}")
                await conn.close()
    click.echo(f"store {url.split('?')[0]}  serial App.enqueue x {n}, no worker")
    click.echo(
        f"App.enqueue: median {statistics.median(times) * 1000:.3f} ms  {_percentiles(times)}"
    )
    if bare:
        ratio = statistics.median(times) / statistics.median(bare)
        click.echo(
            f"bare asyncpg INSERT (same run): median {statistics.median(bare) * 1000:.3f} ms  "
            f"{_percentiles(bare)}  (App.enqueue / bare: {ratio:.2f})"
        )


def _produce(url: str, queue: str, rate: float, duration: float) -> None:
    """Call App.enqueue once per job on a fixed schedule: job i is due at start + i/rate.
    Each call is its own task, as independent callers would be, so a slow call delays no
    later one; the payload carries the time the call began."""

    async def go() -> None:
        async with App(url, check_types=False) as app:
            # Open the pool's connections and prepare the statements before the clock starts:
            # a real service is warm.
            await asyncio.gather(*[app.store.ping() for _ in range(10)])
            for _ in range(WARMUP_SUBMITS):
                await app.enqueue("bench.noop", {"t": time.time(), "w": 1}, queue=queue)
            submit_times: list[float] = []
            inflight: set[asyncio.Task[Any]] = set()

            async def submit() -> None:
                t = time.time()
                await app.enqueue("bench.noop", {"t": t}, queue=queue)
                submit_times.append(time.time() - t)

            total = max(1, round(rate * duration))
            interval = 1.0 / rate
            start = time.perf_counter()
            for i in range(total):
                delay = start + i * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(submit())
                inflight.add(task)
                task.add_done_callback(inflight.discard)
            sent_in = time.perf_counter() - start
            await asyncio.gather(*inflight)
            done_in = time.perf_counter() - start
        click.echo(
            f"producer: {total} App.enqueue calls, offered {rate:g}/s, started at "
            f"{total / sent_in:,.0f}/s, completed at {total / done_in:,.0f}/s"
        )
        click.echo(f"App.enqueue latency (producer side): {_percentiles(submit_times)}")

    run_async(go())


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
        if worker.processed >= sum(counts.values()):
            break
        await asyncio.sleep(0.05)
    worker.stop()
    await run
    click.echo(
        f"store {url.split('?')[0]}  steady {rate:g} jobs/s for {duration:g} s, "
        f"one producer process calling App.enqueue once per job, "
        f"one worker (c={concurrency})"
    )
    click.echo(f"jobs run: {len(latencies)} (seen before drain: {expected})")
    click.echo(f"enqueue-to-start latency: {_percentiles(latencies)}")


@click.command()
@click.option("--store-url", default=None, help="default: Settings().store_url")
@click.option("--jobs", "-n", type=int, default=20_000, show_default=True)
@click.option("--concurrency", "-c", type=int, default=200, show_default=True)
@click.option("--rate", type=float, default=None, help="steady mode: jobs per second")
@click.option("--duration", type=float, default=20.0, show_default=True, help="steady mode seconds")
@click.option("--serial", type=int, default=None, help="serial mode: App.enqueue N times")
def main(
    store_url: str | None,
    jobs: int,
    concurrency: int,
    rate: float | None,
    duration: float,
    serial: int | None,
) -> None:
    """`conveyor bench`, plus serial mode."""
    configure_logging("WARNING", "json")
    url = store_url or Settings().store_url
    run_async(
        run_bench(
            url, jobs=jobs, concurrency=concurrency, rate=rate, duration=duration, serial=serial
        )
    )


if __name__ == "__main__":
    main()
