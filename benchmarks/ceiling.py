"""End-to-end drain as a share of the SQL ceiling, both measured in the same run.

This host's speed moves by a third from one quarter-hour to the next, so a jobs/s figure alone
says little; the ratio to the queue's own SQL (../shared/bench, one connection, claim batch
100, no job system) measured minutes apart does. Rounds alternate ceiling and Conveyor, and
every round gets a fresh PostgreSQL schema or SQLite file (PostgreSQL here runs with
autovacuum off: leftovers of one round would slow the next).

    .venv/bin/python benchmarks/ceiling.py --store postgres --rounds 3
    .venv/bin/python benchmarks/ceiling.py --store sqlite -n 50000
    # another checkout's code (e.g. before a change), same harness:
    .venv/bin/python benchmarks/ceiling.py --src /tmp/before/src
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import asyncpg

REPO = Path(__file__).resolve().parent.parent
CEILING_DIR = REPO.parent / "shared" / "bench"
DRAIN = re.compile(r"drain \(claim\+run\+complete\): ([\d,]+) jobs/s")


def run(cmd: list[str], env: dict[str, str] | None = None) -> str:
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, timeout=1800)
    return out.stdout


def ceiling(store: str, n: int, batch: int, dsn: str) -> int:
    if store == "postgres":
        cmd = [sys.executable, str(CEILING_DIR / "pg_ceiling.py"), "--dsn", dsn]
    else:
        cmd = [sys.executable, str(CEILING_DIR / "sqlite_ceiling.py")]
    line = run([*cmd, "--n", str(n), "--batch", str(batch)]).strip().splitlines()[-1]
    return int(json.loads(line)["claim_complete_jobs_per_s"])


async def _drop_schema(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def conveyor(store: str, n: int, concurrency: int, dsn: str, src: str | None) -> int:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    cmd = [sys.executable, "-m", "conveyor.cli", "bench", "-n", str(n), "-c", str(concurrency)]
    if store == "postgres":
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        try:
            out = run([*cmd, "--store-url", f"{dsn}?schema={schema}"], env)
        finally:
            asyncio.run(_drop_schema(dsn, schema))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            out = run([*cmd, "--store-url", f"sqlite:///{tmp}/bench.db"], env)
    found = DRAIN.search(out)
    if found is None:
        raise SystemExit(f"no drain figure in the bench output:\n{out}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", choices=["postgres", "sqlite"], default="postgres")
    ap.add_argument("-n", "--jobs", type=int, default=20_000)
    ap.add_argument("-c", "--concurrency", type=int, default=200)
    ap.add_argument("--batch", type=int, default=100, help="the ceiling's claim batch")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dsn", default="postgresql://root@127.0.0.1:5432/test")
    ap.add_argument("--src", help="PYTHONPATH for Conveyor (another checkout's src/)")
    a = ap.parse_args()
    if not CEILING_DIR.is_dir():
        raise SystemExit(f"the ceiling scripts are not at {CEILING_DIR}")
    ratios = []
    print(f"store {a.store}  jobs {a.jobs}  concurrency {a.concurrency}  ceiling batch {a.batch}")
    for r in range(1, a.rounds + 1):
        top = ceiling(a.store, a.jobs, a.batch, a.dsn)
        got = conveyor(a.store, a.jobs, a.concurrency, a.dsn, a.src)
        ratios.append(got / top)
        print(f"round {r}: ceiling {top:,} jobs/s  conveyor {got:,} jobs/s  ratio {got / top:.2f}")
        sys.stdout.flush()
    mid, lo, hi = statistics.median(ratios), min(ratios), max(ratios)
    print(f"median ratio {mid:.2f} (min {lo:.2f}, max {hi:.2f})")


if __name__ == "__main__":
    main()
