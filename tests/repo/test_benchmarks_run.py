"""The benchmarks under benchmarks/ still run: CI never measures with them, so a change to
what they import or print would otherwise go unseen until someone needs a figure. Each runs
for a second or two on tiny sizes; the figures themselves are not checked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_DSN
from tests.helpers import child_pythonpath

REPO = Path(__file__).resolve().parents[2]


def run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": child_pythonpath()},
    )
    assert done.returncode == 0, f"{args}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_conveyor_bench_drains_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/bench.db"
    out = run("-m", "conveyor.cli", "bench", "-n", "500", "-c", "20", "--store-url", url)
    assert "drain (claim+run+complete):" in out


def test_sqlite_wake_measures_cross_process_starts() -> None:
    out = run("benchmarks/sqlite_wake.py", "--rate", "50", "--duration", "1", "--idle", "0.5")
    assert "enqueue-to-start latency:" in out
    assert "idle CPU of a waiting worker:" in out


@pytest.mark.postgres
def test_soak_reports_windows_disk_and_probes(pg_url: str) -> None:
    out = run(
        "benchmarks/soak.py", "-n", "2000", "--window", "1000", "--probes", "1",
        "--probe", "500", "--dsn", PG_DSN,
    )  # fmt: skip
    for line in ("drain:", "jobs         0-1,000", "jobs: ", "probes of 500 jobs, alternated"):
        assert line in out, out


@pytest.mark.postgres
def test_transport_compares_store_and_redis(pg_url: str, redis_url: str) -> None:
    out = run(
        "benchmarks/transport.py", "--store-url", pg_url, "--redis-url", redis_url,
        "--transport", "store", "--transport", "redis", "--jobs", "500", "--rate", "100",
        "--duration", "1", "-c", "20",
    )  # fmt: skip
    assert out.count("enqueue-to-start latency:") == 2, out
