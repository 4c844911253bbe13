"""`conveyor bench --remote`: end-to-end jobs/s of a remote worker (jobs over gRPC) against a
direct worker (jobs from the store), on the same store and the same executor.

The bench process hosts the gRPC server (as `conveyor server` would); each worker runs in a
process of its own, as in a deployment, so the remote figure pays for every hop: worker ->
gRPC -> server -> store and back. Each worker drains its own backlog of N no-op jobs; the
clock runs from the worker's start until its last outcome is flushed.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
import uuid
from typing import Any

import click

from conveyor.cli.bench import bench_worker, drain
from conveyor.config import Settings
from conveyor.domain.job import NewJob
from conveyor.grpc.remote import RemoteWorkerStore
from conveyor.grpc.server import GrpcServer
from conveyor.runtime.logs import configure_logging
from conveyor.service.jobs import JobService
from conveyor.store import Store, open_store


def _run_worker(mode: str, target: str, queue: str, n: int, concurrency: int, out: Any) -> None:
    configure_logging("WARNING", "json")  # a spawned process starts with structlog's defaults

    async def go() -> float:
        store: Any
        if mode == "direct":
            store = open_store(target)
        else:
            store = RemoteWorkerStore(target, None, wait_seconds=1.0)
        await store.connect()
        try:
            worker = bench_worker(store, queue, concurrency, [])
            t0 = time.perf_counter()
            run = asyncio.create_task(worker.run())
            await drain(worker, n)
            worker.stop()
            await run
            return time.perf_counter() - t0
        finally:
            await store.close()

    try:
        import uvloop

        out.put(uvloop.run(go()))
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        out.put(asyncio.run(go()))


async def _fill(store: Store, queue: str, n: int) -> None:
    for start in range(0, n, 1000):
        now = time.time()
        await store.enqueue_many(
            [
                NewJob(type="bench.noop", queue=queue, payload={"t": now})
                for _ in range(min(1000, n - start))
            ]
        )


async def _drain_in_process(mode: str, target: str, queue: str, n: int, concurrency: int) -> float:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_run_worker, args=(mode, target, queue, n, concurrency, out))
    proc.start()
    loop = asyncio.get_running_loop()
    try:
        # Keep this loop free while waiting: it serves the remote worker's calls.
        elapsed: float = await loop.run_in_executor(None, out.get, True, 600)
    finally:
        await loop.run_in_executor(None, proc.join, 30)
    return elapsed


async def run_remote_bench(url: str, *, jobs: int, concurrency: int) -> None:
    store = open_store(url)
    await store.connect()
    await store.migrate()
    settings = Settings(store_url=url, auth_enabled=False, poll_interval=0.5)
    server = GrpcServer(JobService(store, settings), auth=None, port=0, maintenance=False)
    port = await server.start()
    try:
        click.echo(f"store {url.split('?')[0]}  jobs {jobs}  concurrency {concurrency}")
        rates = {}
        for mode, target in (("direct", url), ("remote", f"grpc://127.0.0.1:{port}")):
            queue = f"bench-{mode}-{uuid.uuid4().hex[:8]}"
            await _fill(store, queue, jobs)
            elapsed = await _drain_in_process(mode, target, queue, jobs, concurrency)
            rates[mode] = jobs / elapsed
            click.echo(f"{mode:>6} worker: {rates[mode]:,.0f} jobs/s ({elapsed:.2f} s)")
        click.echo(f"remote/direct: {rates['remote'] / rates['direct']:.2f}")
    finally:
        await server.stop(1)
        await store.close()
