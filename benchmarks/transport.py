"""The store transport next to the Redis transport, in one run, on the same store.

For each transport: drain (N no-op jobs submitted through the service in batches of 1,000,
so the Redis transport dispatches them as in production, then drained by one worker), and
steady mode at each `--rate` (a producer *process* calling App.enqueue once per job on a fixed
schedule, one worker here; enqueue-to-start latency from the producer's clock to the
handler's), which is `conveyor bench --rate` with the transport chosen by the environment.

    .venv/bin/python benchmarks/transport.py --store-url postgresql://…/test \
        --redis-url redis://127.0.0.1:6379/0 --jobs 20000 --rate 200 --rate 1000 --duration 10
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
import uuid

import click

from conveyor.app import App
from conveyor.cli.bench import _steady, bench_worker, drain
from conveyor.cli.common import run_async
from conveyor.config import Settings
from conveyor.runtime.logs import configure_logging
from conveyor.store import open_store
from conveyor.transport import open_transport

BATCH = 1000


def cpu_seconds() -> float:
    """This process's CPU time: on a loaded host the cost per job says more than the wall
    clock (the worker runs in this process, the producer in its own)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def use_transport(name: str, redis_url: str, prefix: str) -> Settings:
    """Set the transport in the environment, which the producer process inherits."""
    os.environ["CONVEYOR_TRANSPORT"] = name
    os.environ["CONVEYOR_REDIS_URL"] = redis_url
    os.environ["CONVEYOR_TRANSPORT_KEY_PREFIX"] = prefix
    return Settings()


async def run(
    url: str, redis_url: str, jobs: int, rates: list[float], duration: float, concurrency: int
) -> None:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    for name in ("store", "redis"):
        settings = use_transport(name, redis_url, prefix).model_copy(update={"store_url": url})
        store = open_store(url)
        await store.connect()
        await store.migrate()
        transport = open_transport(settings)
        worker_store = transport.worker_store(store)
        try:
            queue = f"bench-{uuid.uuid4().hex[:8]}"
            latencies: list[float] = []
            async with App(settings=settings, check_types=False) as app:
                t0 = time.perf_counter()
                for start in range(0, jobs, BATCH):
                    now = time.time()
                    await app.enqueue_many(
                        [
                            app.new_job("bench.noop", {"t": now}, queue=queue)
                            for _ in range(min(BATCH, jobs - start))
                        ]
                    )
                enqueued_in = time.perf_counter() - t0
            worker = bench_worker(worker_store, queue, concurrency, latencies)
            t1, cpu = time.perf_counter(), cpu_seconds()
            task = asyncio.create_task(worker.run())
            await drain(worker, jobs)
            worker.stop()
            await task
            drained_in = time.perf_counter() - t1
            cpu = cpu_seconds() - cpu
            click.echo(
                f"== transport {name}  store {url.split('?')[0]}  jobs {jobs}  c={concurrency}"
            )
            click.echo(
                f"enqueue (service, batches of {BATCH}): {jobs / enqueued_in:,.0f} jobs/s; "
                f"drain: {jobs / drained_in:,.0f} jobs/s ({drained_in:.2f} s), "
                f"worker CPU {cpu / jobs * 1e6:.0f} µs/job"
            )
            for rate in rates:
                steady: list[float] = []
                queue = f"bench-{uuid.uuid4().hex[:8]}"
                cpu = cpu_seconds()
                await _steady(worker_store, url, queue, rate, duration, concurrency, steady)
                click.echo(f"worker CPU: {(cpu_seconds() - cpu) / len(steady) * 1e6:.0f} µs/job")
        finally:
            await transport.close()
            await store.close()


@click.command()
@click.option("--store-url", required=True)
@click.option("--redis-url", default="redis://127.0.0.1:6379/0", show_default=True)
@click.option("--jobs", "-n", type=int, default=20_000, show_default=True)
@click.option("--rate", "rates", type=float, multiple=True, default=[200.0, 1000.0])
@click.option("--duration", type=float, default=10.0, show_default=True)
@click.option("--concurrency", "-c", type=int, default=50, show_default=True)
def main(
    store_url: str,
    redis_url: str,
    jobs: int,
    rates: tuple[float, ...],
    duration: float,
    concurrency: int,
) -> None:
    configure_logging("WARNING", "json")
    run_async(run(store_url, redis_url, jobs, list(rates), duration, concurrency))


if __name__ == "__main__":
    main()
