"""The worker kill loop of tests/faults, long: submit `--jobs` jobs spread over `--duration`
seconds to `--workers` real worker processes, SIGKILL a busy one every `--kill-every` seconds
(a replacement starts at once), then drain and judge the history with the fault suite's
checker (tests/faults/history.py): nothing lost, nothing completed twice, nothing running in two
places outside the at-least-once window. Run by hand, from the repository root:

    PYTHONPATH=src:. .venv/bin/python benchmarks/soak_faults.py --store sqlite --duration 180
    PYTHONPATH=src:. .venv/bin/python benchmarks/soak_faults.py --store postgres --jobs 20000

PostgreSQL: a fresh schema on --pg-dsn (default: the test server), dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import asyncpg
from tests.conftest import with_schema
from tests.faults.history import History
from tests.faults.procs import Procs

from conveyor import App, JobStatus
from conveyor.config import Settings

SUBMIT_BATCH = 50


async def soak(args: argparse.Namespace, folder: Path) -> bool:
    schema = None
    if args.store == "sqlite":
        url = f"sqlite:///{folder}/soak.db"
    else:
        schema = f"soak_faults_{uuid.uuid4().hex[:8]}"
        conn = await asyncpg.connect(args.pg_dsn)
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.close()
        url = with_schema(args.pg_dsn, schema)
    app = App(settings=Settings(store_url=url, log_level="WARNING"))
    await app.open(migrate=True)
    history = History(folder / "history.jsonl")
    procs = Procs(folder, history)
    rng = random.Random(args.seed)
    kills = 0
    try:
        live = [
            procs.worker(url, "--concurrency", str(args.concurrency)) for _ in range(args.workers)
        ]
        started = time.monotonic()
        end = started + args.duration
        submitted = 0
        next_kill = started + args.kill_every

        async def submit_until(due: int) -> None:
            nonlocal submitted
            while submitted < due:
                n = min(SUBMIT_BATCH, due - submitted)
                jobs = await app.enqueue_many(
                    [
                        app.new_job(
                            "faults.work",
                            {"history": str(history.path), "seconds": rng.uniform(0.05, 0.5)},
                            max_retries=1000,
                        )
                        for _ in range(n)
                    ]
                )
                history.submit(j.id for j in jobs)
                submitted += n

        while time.monotonic() < end:
            elapsed = time.monotonic() - started
            await submit_until(min(args.jobs, int(args.jobs * elapsed / args.duration) + 1))
            if time.monotonic() >= next_kill:
                busy = [p for p in live if history.running_in(p.pid)]
                if busy:
                    victim = rng.choice(busy)
                    procs.kill(victim)
                    kills += 1
                    live.remove(victim)
                    live.append(procs.worker(url, "--concurrency", str(args.concurrency)))
                    next_kill = time.monotonic() + args.kill_every
            await asyncio.sleep(0.05)  # pacing the load
        await submit_until(args.jobs)
        print(f"{kills} kills, {submitted} jobs submitted in {time.monotonic() - started:.0f}s")
        drain_from = time.monotonic()
        while True:
            counts = (await app.store.count_by_queue_status()).get("default", {})
            if counts.get(JobStatus.COMPLETED, 0) == submitted:
                break
            if time.monotonic() - drain_from > args.drain_timeout:
                print(f"not drained after {args.drain_timeout}s: {counts}")
                break
            await asyncio.sleep(0.5)
        print(f"drained {time.monotonic() - drain_from:.1f}s after the last submit")
        procs.close()
        verdict = await history.verdict(app.store)
        attempts = Counter(j.attempt for j in await app.store.get_jobs(list(history.submitted)))  # type: ignore[arg-type]
        print(verdict.summary())
        print(f"attempts per job: {dict(sorted(attempts.items()))}")
        print("OK" if verdict.ok else "FAILED")
        return verdict.ok
    finally:
        procs.close()
        await app.close()
        if schema is not None:
            conn = await asyncpg.connect(args.pg_dsn)
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await conn.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--pg-dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument("--duration", type=float, default=180.0, help="seconds of submits and kills")
    p.add_argument("--jobs", type=int, default=5000)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--kill-every", type=float, default=3.0, help="seconds between kills")
    p.add_argument("--drain-timeout", type=float, default=120.0)
    p.add_argument("--seed", type=int, default=19)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak-faults-") as folder:
        ok = asyncio.run(soak(args, Path(folder)))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
