"""SQLite wake-ups across processes: enqueue-to-start latency and a waiting worker's idle CPU.

Every party has a process of its own, as in a deployment on one SQLite file: one producer
submits single jobs at a steady rate through `JobService.submit` (the path of the API and
`App.enqueue`), and W workers (`Worker` with the default settings, so the polling fallback
is `CONVEYOR_POLL_INTERVAL`, 1 s, and with the housekeeping `App.worker` gives a lone worker)
run them. The handler records `time.time()` minus the time the producer stamped into the
payload just before its submit, so a figure includes the submit's own commit (as
`conveyor bench --rate` does; that command runs its worker in the bench process with settings
of its own, not the defaults). Two lines split it: the submit as the producer saw it, and from
the submit's return to the handler's start (wake-up, claim, dispatch).

Before the producer starts, each worker waits on an empty queue for --idle seconds; its
`time.process_time()` over that window is the idle CPU of a waiting worker (heartbeats,
housekeeping, polling fallback and the wake mechanism together).

    .venv/bin/python benchmarks/sqlite_wake.py --rate 200 --duration 10
    .venv/bin/python benchmarks/sqlite_wake.py --rate 200 --duration 10 --workers 3
    # another checkout's code (e.g. before a change), same harness:
    .venv/bin/python benchmarks/sqlite_wake.py --src /tmp/wake-before/src
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

QUEUE = "wake-bench"


def _worker(url: str, concurrency: int, idle: float, ready: Any, stop: Any, out: Any) -> None:
    import functools

    from conveyor.runtime.logs import configure_logging
    from conveyor.service.maintenance import run_maintenance
    from conveyor.store import open_store
    from conveyor.worker import Registry, Worker

    configure_logging("WARNING", "json")
    latencies: list[float] = []
    started: dict[str, float] = {}

    async def go() -> float:
        store = open_store(url)
        await store.connect()
        registry = Registry()

        async def noop(payload: dict[str, Any]) -> None:
            now = time.time()
            latencies.append(now - payload["t"])
            started[payload["k"]] = now

        registry.register("bench.noop", noop, queue=QUEUE)
        worker = Worker(
            store,
            registry,
            queues=[QUEUE],
            concurrency=concurrency,
            maintenance=functools.partial(run_maintenance, store),
        )
        loop = asyncio.get_running_loop()
        # The stop signal arrives on a thread blocked on the event: no polling in the loop.
        threading.Thread(
            target=lambda: (stop.wait(), loop.call_soon_threadsafe(worker.stop)), daemon=True
        ).start()
        run = asyncio.create_task(worker.run())
        for _ in range(3000):  # registered within 30 s
            if worker.registered:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # past start-up work (first heartbeat, housekeeping)
        ready.set()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(idle)
        idle_cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        await run
        await store.close()
        return idle_cpu

    idle_cpu = asyncio.run(go())
    out.put((idle_cpu, latencies, started))


def _producer(url: str, rate: float, duration: float, out: Any) -> None:
    from conveyor.domain.job import NewJob
    from conveyor.runtime.logs import configure_logging
    from conveyor.service.jobs import JobService
    from conveyor.store import open_store

    configure_logging("WARNING", "json")

    async def go() -> dict[str, tuple[float, float]]:
        store = open_store(url)
        await store.connect()
        service = JobService(store)
        interval = 1.0 / rate
        inflight: set[asyncio.Task[Any]] = set()
        times: dict[str, tuple[float, float]] = {}  # key: (stamped, submit returned)

        async def submit(key: str) -> None:
            t = time.time()
            await service.submit(NewJob(type="bench.noop", queue=QUEUE, payload={"t": t, "k": key}))
            times[key] = (t, time.time())

        sent = 0
        start = time.perf_counter()
        while (now := time.perf_counter() - start) < duration:
            while sent <= now / interval:
                task = asyncio.create_task(submit(str(sent)))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
                sent += 1
            await asyncio.sleep(max(0.0, sent * interval - (time.perf_counter() - start)))
        await asyncio.gather(*inflight)
        await store.close()
        return times

    out.put(asyncio.run(go()))


def _ms(xs: list[float]) -> str:
    xs = sorted(xs)
    q = statistics.quantiles(xs, n=100, method="inclusive")
    return (
        f"p50 {q[49] * 1e3:.1f} ms  p95 {q[94] * 1e3:.1f} ms  p99 {q[98] * 1e3:.1f} ms  "
        f"max {xs[-1] * 1e3:.1f} ms"
    )


async def _completed(url: str) -> int:
    from conveyor.domain.job import JobStatus
    from conveyor.store import open_store

    store = open_store(url)
    await store.connect()
    try:
        counts = (await store.count_by_queue_status()).get(QUEUE, {})
        return counts.get(JobStatus.COMPLETED, 0)
    finally:
        await store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=200.0, help="jobs/s")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of producing")
    ap.add_argument("--workers", type=int, default=1, help="worker processes")
    ap.add_argument("--concurrency", type=int, default=20, help="slots per worker")
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of idle measurement")
    ap.add_argument("--db", help="SQLite file (default: a fresh temporary one)")
    ap.add_argument("--src", help="import conveyor from this src directory instead")
    args = ap.parse_args()
    if args.src:
        src = str(Path(args.src).resolve())
        sys.path.insert(0, src)  # spawned children start from this sys.path
        os.environ["PYTHONPATH"] = src

    import conveyor
    from conveyor.store import open_store

    with tempfile.TemporaryDirectory(prefix="wake-bench-") as tmp:
        db = args.db or os.path.join(tmp, "conveyor.db")
        url = f"sqlite:///{db}"

        async def migrate() -> None:
            store = open_store(url)
            await store.connect()
            await store.migrate()
            await store.close()

        asyncio.run(migrate())
        ctx = mp.get_context("spawn")
        out, stop = ctx.Queue(), ctx.Event()
        readies = [ctx.Event() for _ in range(args.workers)]
        workers = [
            ctx.Process(target=_worker, args=(url, args.concurrency, args.idle, r, stop, out))
            for r in readies
        ]
        for p in workers:
            p.start()
        for r in readies:
            if not r.wait(60):
                raise SystemExit("a worker did not start")
        time.sleep(args.idle + 0.5)  # the workers measure their idle CPU meanwhile
        sent_q = ctx.Queue()
        producer = ctx.Process(target=_producer, args=(url, args.rate, args.duration, sent_q))
        producer.start()
        times = sent_q.get(timeout=args.duration + 120)
        sent = len(times)
        producer.join()
        deadline = time.monotonic() + 60
        while asyncio.run(_completed(url)) < sent and time.monotonic() < deadline:
            time.sleep(0.1)
        stop.set()
        idle_cpu: list[float] = []
        latencies: list[float] = []
        started: dict[str, float] = {}
        for _ in workers:
            cpu, lat, st = out.get(timeout=120)
            idle_cpu.append(cpu)
            latencies.extend(lat)
            started.update(st)
        for p in workers:
            p.join()

    print(
        f"conveyor from {Path(conveyor.__file__).parent}\n"
        f"SQLite, producer process at {args.rate:g} jobs/s for {args.duration:g} s, "
        f"{args.workers} worker process(es) (c={args.concurrency}, default settings)"
    )
    print(f"jobs sent {sent}, run {len(latencies)}")
    print(f"enqueue-to-start latency: {_ms(latencies)}")
    print(f"  of which the submit (producer side): {_ms([d - t for t, d in times.values()])}")
    after = [started[k] - d for k, (_, d) in times.items() if k in started]
    print(f"  submit returned to start: {_ms(after)}")
    print(
        "idle CPU of a waiting worker: "
        + ", ".join(f"{c * 1e3:.1f} ms/s" for c in idle_cpu)
        + f" (over {args.idle:g} s)"
    )


if __name__ == "__main__":
    main()
