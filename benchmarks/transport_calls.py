"""Redis commands per job on the Redis transport, as the Redis server counts them (INFO
commandstats; commands that scripts run count too): a figure the host's load cannot blur.

Two phases, one worker (c=50) in this process: 2,000 jobs submitted one at a time at 200/s
(the worker goes idle between jobs: wake-up, take, claim, acknowledgement each time), then
10,000 submitted in batches of 1,000 and drained (the worker stays busy). Each phase starts
from reset counters, so use a Redis of the benchmark's own: CONFIG RESETSTAT resets the
server's statistics.

    .venv/bin/python benchmarks/transport_calls.py --store-url postgresql://…/bench \
        --redis-url redis://127.0.0.1:PRIVATE_PORT/0
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import click
import redis.asyncio as aioredis

from conveyor.app import App
from conveyor.cli.common import run_async
from conveyor.config import Settings
from conveyor.runtime.logs import configure_logging

IDLE_JOBS, IDLE_RATE = 2_000, 200.0
DRAIN_JOBS, BATCH = 10_000, 1_000


async def commands(client: aioredis.Redis) -> dict[str, int]:
    info = await client.info("commandstats")
    out = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items()}
    for admin in ("config|resetstat", "info"):
        out.pop(admin, None)
    return out


async def run(store_url: str, redis_url: str) -> None:
    settings = Settings(
        store_url=store_url,
        transport="redis",
        redis_url=redis_url,
        transport_key_prefix=f"calls-{uuid.uuid4().hex[:8]}",
    )
    app = App(settings=settings, check_types=False)
    await app.open(migrate=True)
    started: list[float] = []
    done = asyncio.Event()
    want = 0

    @app.job("t")
    async def t(payload: dict[str, Any]) -> None:
        started.append(time.time() - payload["t"])
        if len(started) >= want:
            done.set()

    client = aioredis.Redis.from_url(redis_url)
    worker = app.worker(concurrency=50, maintenance=False)
    task = asyncio.create_task(worker.run())
    try:
        for phase, jobs, batch in (("idle, 200/s", IDLE_JOBS, 1), ("drain", DRAIN_JOBS, BATCH)):
            started.clear()
            done.clear()
            want = jobs
            await client.config_resetstat()
            begin = time.perf_counter()
            for i in range(0, jobs, batch):
                if batch > 1:
                    await app.enqueue_many(
                        [app.new_job("t", {"t": time.time()}) for _ in range(batch)]
                    )
                    continue
                delay = begin + i / IDLE_RATE - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await app.enqueue("t", {"t": time.time()})
            await asyncio.wait_for(done.wait(), 300)
            counts = await commands(client)
            per_job = ", ".join(f"{k} {v / jobs:.2f}" for k, v in sorted(counts.items()))
            click.echo(
                f"{phase}: {jobs} jobs; Redis commands per job: {per_job}; "
                f"total {sum(counts.values()) / jobs:.2f}"
            )
    finally:
        worker.stop()
        await task
        await client.aclose()
        await app.close()


@click.command()
@click.option("--store-url", required=True)
@click.option("--redis-url", required=True, help="a Redis of the benchmark's own")
def main(store_url: str, redis_url: str) -> None:
    configure_logging("WARNING", "json")
    run_async(run(store_url, redis_url))


if __name__ == "__main__":
    main()
