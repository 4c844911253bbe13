"""A long run on PostgreSQL with vacuum lagging: enqueue N jobs, drain them with one worker,
and show whether the queue slows as dead rows pile up, and what each job costs on disk.

PostgreSQL here runs with autovacuum off, so every dead tuple and dead index entry a job
leaves stays for the whole run: a claim or a housekeeping scan that walks them shows here as
a falling rate. Printed: the drain rate of each window of jobs (and of the first and last
10,000), rows written per job (inserts, updates, HOT updates, dead tuples, from
pg_stat_user_tables), table + index bytes per job, and WAL bytes per job (the difference of
pg_current_wal_lsn() across the run; nothing else should write to the server meanwhile), and
the checkpoints that ran during the drain: the first change to a page after a checkpoint
writes the whole page to the WAL, so a window a checkpoint falls in is slower whatever the
queue does (with the default max_wal_size of 1GB, a million jobs bring on two or three).

Then the question itself, with the host's drift taken out: `--probes` pairs of the same small
drain (`--probe` jobs, enqueued then drained), one on the soaked schema (the million finished
jobs and their dead tuples still there) and one on a fresh schema, alternated in the same
minutes. The first and last 10,000 of the big drain last a third of a second each here, so
their ratio swings by tens of percent between identical runs with whatever the host or a
checkpoint does in those moments; the medians of the alternated probes do not.

    .venv/bin/python benchmarks/soak.py -n 1000000           # ~5 minutes here
    .venv/bin/python benchmarks/soak.py -n 100000 --src /tmp/before/src
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

_argv = sys.argv[1:]
if "--src" in _argv:  # another checkout's code, e.g. before a change
    sys.path.insert(0, str(Path(_argv[_argv.index("--src") + 1]).resolve()))

import asyncpg  # noqa: E402

from conveyor.config import Settings  # noqa: E402
from conveyor.domain.job import NewJob  # noqa: E402
from conveyor.runtime.logs import configure_logging  # noqa: E402
from conveyor.service.maintenance import run_maintenance  # noqa: E402
from conveyor.store import Store, open_store  # noqa: E402
from conveyor.worker import Registry, Worker  # noqa: E402

TABLES = ("jobs", "job_events")


async def table_stats(conn: asyncpg.Connection, schema: str) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_dead_tup,"
        " pg_total_relation_size(relid) AS bytes"
        " FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = ANY($2::text[])",
        schema,
        list(TABLES),
    )
    out: dict[str, int] = {}
    for r in rows:
        for key in ("n_tup_ins", "n_tup_upd", "n_tup_hot_upd", "n_dead_tup", "bytes"):
            out[f"{r['relname']}.{key}"] = r[key]
    return out


async def wal_lsn(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))


async def checkpoints(conn: asyncpg.Connection) -> int:
    return int(
        await conn.fetchval("SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter")
    )


async def enqueue(store: Store, queue: str, n: int) -> None:
    for start in range(0, n, 1000):
        await store.enqueue_many(
            [NewJob(type="soak.noop", queue=queue) for _ in range(min(1000, n - start))]
        )


async def drain(store: Store, queue: str, n: int, concurrency: int) -> list[float]:
    """Run `n` no-op jobs of `queue` with one worker and the housekeeping a deployed worker
    runs (promote, reap, vacuum); returns when each started (perf_counter), the worker's
    start first."""
    stamps: list[float] = []
    all_ran = asyncio.Event()
    registry = Registry()

    async def noop(payload: dict[str, object]) -> None:
        stamps.append(time.perf_counter())
        if len(stamps) > n:
            all_ran.set()

    registry.register("soak.noop", noop, queue=queue)
    worker = Worker(
        store,
        registry,
        queues=[queue],
        concurrency=concurrency,
        settings=Settings(poll_interval=0.5, heartbeat_interval=5.0),
        maintenance=functools.partial(run_maintenance, store),
    )
    stamps.append(time.perf_counter())
    task = asyncio.create_task(worker.run())
    await all_ran.wait()
    worker.stop()  # flushes the last outcomes
    await task
    stamps.append(time.perf_counter())
    return stamps


async def probe(store: Store, size: int, concurrency: int) -> float:
    """One small drain, enqueue excluded: jobs/s."""
    queue = f"probe-{uuid.uuid4().hex[:6]}"
    await enqueue(store, queue, size)
    stamps = await drain(store, queue, size, concurrency)
    return size / (stamps[-1] - stamps[0])


async def probes(
    soaked: Store, dsn: str, pairs: int, size: int, concurrency: int
) -> tuple[list[float], list[float]]:
    """`pairs` probes on the soaked schema and as many on a fresh one, alternated."""
    schema = f"soak_fresh_{uuid.uuid4().hex[:8]}"
    fresh = open_store(f"{dsn}?schema={schema}")
    await fresh.connect()
    await fresh.migrate()
    old: list[float] = []
    new: list[float] = []
    try:
        for _ in range(pairs):
            old.append(await probe(soaked, size, concurrency))
            new.append(await probe(fresh, size, concurrency))
    finally:
        await fresh.close()
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await admin.close()
    return old, new


async def run(
    dsn: str, n: int, concurrency: int, window: int, keep: bool, pairs: int, size: int
) -> None:
    schema = f"soak_{uuid.uuid4().hex[:8]}"
    url = f"{dsn}?schema={schema}"
    admin = await asyncpg.connect(dsn)
    store = open_store(url)
    await store.connect()
    await store.migrate()
    try:
        wal0 = await wal_lsn(admin)
        t0 = time.perf_counter()
        await enqueue(store, "soak", n)
        enq = time.perf_counter() - t0
        wal1 = await wal_lsn(admin)
        print(f"jobs {n:,}  concurrency {concurrency}  schema {schema}")
        print(f"enqueue: {n / enq:,.0f} jobs/s, WAL {(wal1 - wal0) / n:,.0f} bytes/job")
        ckpt0 = await checkpoints(admin)
        stamps = await drain(store, "soak", n, concurrency)
        drained = stamps.pop() - stamps.pop(0)
        wal2 = await wal_lsn(admin)

        def rate(lo: int, hi: int) -> float:
            return (hi - lo) / (stamps[hi - 1] - stamps[lo]) if hi - 1 > lo else float("nan")

        print(f"drain: {n / drained:,.0f} jobs/s, WAL {(wal2 - wal1) / n:,.0f} bytes/job")
        ckpt = await checkpoints(admin) - ckpt0
        max_wal = await admin.fetchval("SHOW max_wal_size")
        timeout = await admin.fetchval("SHOW checkpoint_timeout")
        print(
            f"checkpoints during the drain: {ckpt} (max_wal_size {max_wal}, checkpoint_timeout"
            f" {timeout}); the windows they fall in pay for full-page writes"
        )
        for lo in range(0, n, window):
            hi = min(n, lo + window)
            print(f"  jobs {lo:>9,}-{hi:<9,} {rate(lo, hi):>9,.0f} jobs/s")
        k = min(10_000, n // 2)
        first, last = rate(0, k), rate(n - k, n)
        change = last / first - 1
        print(f"first {k:,}: {first:,.0f} jobs/s  last {k:,}: {last:,.0f} jobs/s  ({change:+.0%})")
        print(f"WAL total {(wal2 - wal0) / n:,.0f} bytes/job (enqueue + drain)")
        await store.close()  # its backends flush their table statistics as they exit
        stats: dict[str, int] = {}
        for _ in range(50):  # exits are asynchronous: wait for the counts to settle
            stats = await table_stats(admin, schema)
            if stats.get("jobs.n_tup_ins", 0) >= n:
                break
            await asyncio.sleep(0.1)
        for table in TABLES:
            print(
                f"{table}: {stats.get(f'{table}.bytes', 0) / n:,.0f} bytes/job (table + indexes), "
                f"inserts {stats.get(f'{table}.n_tup_ins', 0) / n:.2f}/job, "
                f"updates {stats.get(f'{table}.n_tup_upd', 0) / n:.2f}/job "
                f"(HOT {stats.get(f'{table}.n_tup_hot_upd', 0) / n:.2f}), "
                f"dead tuples {stats.get(f'{table}.n_dead_tup', 0) / n:.2f}/job"
            )
        if pairs:  # the soaked schema reopened: closing it flushed its statistics
            store = open_store(url)
            await store.connect()
            old, new = await probes(store, dsn, pairs, size, concurrency)
            ratio = statistics.median(old) / statistics.median(new)
            print(
                f"probes of {size:,} jobs, alternated: after the run {statistics.median(old):,.0f}"
                f" jobs/s (median of {', '.join(f'{x:,.0f}' for x in old)}), fresh schema "
                f"{statistics.median(new):,.0f} ({', '.join(f'{x:,.0f}' for x in new)}): "
                f"{ratio - 1:+.0%}"
            )
    finally:
        await store.close()
        if not keep:
            await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--jobs", type=int, default=1_000_000)
    ap.add_argument("-c", "--concurrency", type=int, default=200)
    ap.add_argument("--window", type=int, default=100_000)
    ap.add_argument("--dsn", default=os.environ.get("SOAK_DSN", "postgresql://127.0.0.1/test"))
    ap.add_argument("--keep", action="store_true", help="keep the schema, to inspect it")
    ap.add_argument("--src", help="import Conveyor from this src/ folder (another checkout)")
    ap.add_argument("--probes", type=int, default=7, help="alternated probe pairs (0: none)")
    ap.add_argument("--probe", type=int, default=20_000, help="jobs per probe")
    a = ap.parse_args()
    configure_logging("WARNING", "json")
    window = min(a.window, a.jobs)
    asyncio.run(run(a.dsn, a.jobs, a.concurrency, window, a.keep, a.probes, a.probe))


if __name__ == "__main__":
    main()
