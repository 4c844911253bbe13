"""The store transport next to the Redis and Kafka transports, in one run, on the same store.

For each transport: drain (N no-op jobs submitted through the service in batches of 1,000,
so the Redis transport dispatches them as in production, then drained by one worker; on the
Kafka transport the worker has joined its group and the relay runs, in this process, before the
submits start, so submit and drain overlap there: compare the "submit + drain" wall time), and
steady mode at each `--rate` (a producer *process* calling App.enqueue once per job on a fixed
schedule, one worker here; enqueue-to-start latency from the producer's clock to the
handler's), which is `conveyor bench --rate` with the transport chosen by the environment.

    .venv/bin/python benchmarks/transport.py --store-url postgresql://…/test \
        --redis-url redis://127.0.0.1:6379/0 --jobs 20000 --rate 200 --rate 1000 --duration 10

Add `--transport kafka --kafka-bootstrap host:port` (with `--transport store` etc.: the
transports to run, in order; default store and redis) for the Kafka transport; its store
publishes events (as it must), and the relay's events per second are printed. With
`--relay-process` the Kafka transport's relay runs in a process of its own (as in a
deployment, where the scheduler or server runs it) instead of beside the worker.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import resource
import time
import uuid
from typing import Any

import click

from conveyor.app import App
from conveyor.cli.bench import _steady, bench_worker, drain
from conveyor.cli.common import run_async
from conveyor.config import Settings
from conveyor.runtime.logs import configure_logging
from conveyor.store import open_store
from conveyor.transport import open_transport
from conveyor.transport.relay import Relay

BATCH = 1000


def cpu_seconds() -> float:
    """This process's CPU time: on a loaded host the cost per job says more than the wall
    clock (the worker runs in this process, the producer in its own)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def use_transport(name: str, redis_url: str, prefix: str, kafka_bootstrap: str | None) -> Settings:
    """Set the transport in the environment, which the producer process inherits. Only the
    Kafka transport's processes have a bootstrap (and so write the outbox)."""
    os.environ["CONVEYOR_TRANSPORT"] = name
    os.environ["CONVEYOR_REDIS_URL"] = redis_url
    os.environ["CONVEYOR_TRANSPORT_KEY_PREFIX"] = prefix
    os.environ.pop("CONVEYOR_KAFKA_BOOTSTRAP", None)
    if name == "kafka":
        if not kafka_bootstrap:
            raise click.ClickException("--transport kafka needs --kafka-bootstrap")
        os.environ.update(
            CONVEYOR_KAFKA_BOOTSTRAP=kafka_bootstrap,
            CONVEYOR_KAFKA_TOPIC_PREFIX=prefix,
            CONVEYOR_KAFKA_SESSION_TIMEOUT="1",
            CONVEYOR_KAFKA_HEARTBEAT_INTERVAL="0.3",
        )
    return Settings()


def _relay_process(url: str, stop: Any) -> None:
    """A relay alone in its process (settings from the environment) until `stop` is set."""

    async def go() -> None:
        settings = Settings().model_copy(update={"store_url": url})
        store = open_store(url, publish_events=True)
        await store.connect()
        relay = Relay(store, settings)
        task = asyncio.create_task(relay.run())
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)
        relay.stop()
        await task
        await store.close()

    asyncio.run(go())


async def kafka_ready(
    transport: Any, store: Any, worker: Any, relay_here: bool = True
) -> asyncio.Task[None]:
    """The Kafka transport's relay running here (unless it runs in its own process), and the
    worker's consumer in its group."""
    if relay_here:
        await transport.sweep(store)  # starts the relay
    task = asyncio.create_task(worker.run())
    deadline = time.monotonic() + 60
    while not worker.store.assignment:
        if time.monotonic() > deadline:
            raise click.ClickException("the Kafka consumer did not join its group")
        await asyncio.sleep(0.05)
    return task


async def run(
    url: str,
    redis_url: str,
    kafka_bootstrap: str | None,
    transports: list[str],
    jobs: int,
    rates: list[float],
    duration: float,
    concurrency: int,
    relay_process: bool = False,
) -> None:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    for name in transports:
        relay_proc = None
        stop_relay = mp.get_context("spawn").Event()
        settings = use_transport(name, redis_url, prefix, kafka_bootstrap)
        settings = settings.model_copy(update={"store_url": url})
        store = open_store(url, publish_events=settings.publishes_events)
        await store.connect()
        await store.migrate()
        transport = open_transport(settings)
        if name == "kafka" and relay_process:
            relay_proc = mp.get_context("spawn").Process(
                target=_relay_process, args=(url, stop_relay)
            )
            relay_proc.start()
        try:
            queue = f"bench-{uuid.uuid4().hex[:8]}"
            latencies: list[float] = []
            worker = bench_worker(transport.worker_store(store), queue, concurrency, latencies)
            task = (
                await kafka_ready(transport, store, worker, not relay_process)
                if name == "kafka"
                else None
            )
            t0, cpu = time.perf_counter(), cpu_seconds()
            async with App(settings=settings, check_types=False) as app:
                for start in range(0, jobs, BATCH):
                    now = time.time()
                    await app.enqueue_many(
                        [
                            app.new_job("bench.noop", {"t": now}, queue=queue)
                            for _ in range(min(BATCH, jobs - start))
                        ]
                    )
                enqueued_in = time.perf_counter() - t0
            t1 = time.perf_counter()
            task = task or asyncio.create_task(worker.run())
            relay = getattr(transport, "relay", None)
            published = relay.published if relay is not None else 0
            await drain(worker, jobs)
            worker.stop()
            await task
            drained_in = time.perf_counter() - t1
            total = time.perf_counter() - t0
            cpu = cpu_seconds() - cpu
            click.echo(
                f"== transport {name}  store {url.split('?')[0]}  jobs {jobs}  c={concurrency}"
            )
            click.echo(
                f"enqueue (service, batches of {BATCH}): {jobs / enqueued_in:,.0f} jobs/s; "
                f"drain: {jobs / drained_in:,.0f} jobs/s ({drained_in:.2f} s); "
                f"submit + drain: {total:.2f} s ({jobs / total:,.0f} jobs/s); "
                f"process CPU {cpu / jobs * 1e6:.0f} µs/job"
            )
            if relay is not None:
                click.echo(
                    f"relay: {relay.published - published:,} outbox rows published during the "
                    f"drain, {(relay.published - published) / drained_in:,.0f} rows/s "
                    f"({relay.dispatched:,} dispatches so far)"
                )
            for rate in rates:
                steady: list[float] = []
                queue = f"bench-{uuid.uuid4().hex[:8]}"
                cpu = cpu_seconds()
                before = relay.published if relay is not None else 0
                t2 = time.perf_counter()
                await _steady(
                    transport.worker_store(store), url, queue, rate, duration, concurrency, steady
                )
                click.echo(f"worker CPU: {(cpu_seconds() - cpu) / len(steady) * 1e6:.0f} µs/job")
                if relay is not None:
                    rows = relay.published - before
                    click.echo(
                        f"relay: {rows:,} rows, {rows / (time.perf_counter() - t2):,.0f} rows/s"
                    )
        finally:
            if relay_proc is not None:
                stop_relay.set()
                await asyncio.get_running_loop().run_in_executor(None, relay_proc.join)
            await transport.close()
            await store.close()


@click.command()
@click.option("--store-url", required=True)
@click.option("--redis-url", default="redis://127.0.0.1:6379/0", show_default=True)
@click.option("--kafka-bootstrap", default=None, help="host:port, for --transport kafka")
@click.option(
    "--transport",
    "transports",
    type=click.Choice(["store", "redis", "kafka"]),
    multiple=True,
    default=["store", "redis"],
)
@click.option("--jobs", "-n", type=int, default=20_000, show_default=True)
@click.option("--rate", "rates", type=float, multiple=True, default=[200.0, 1000.0])
@click.option("--duration", type=float, default=10.0, show_default=True)
@click.option("--concurrency", "-c", type=int, default=50, show_default=True)
@click.option("--relay-process", is_flag=True, help="Kafka: the relay in a process of its own")
def main(
    store_url: str,
    redis_url: str,
    kafka_bootstrap: str | None,
    transports: tuple[str, ...],
    jobs: int,
    rates: tuple[float, ...],
    duration: float,
    concurrency: int,
    relay_process: bool,
) -> None:
    configure_logging("WARNING", "json")
    run_async(
        run(
            store_url,
            redis_url,
            kafka_bootstrap,
            list(transports),
            jobs,
            list(rates),
            duration,
            concurrency,
            relay_process,
        )
    )


if __name__ == "__main__":
    main()
