"""Worker processes on the Kafka transport, one consumer group: 10,000 jobs drained by two
workers, each completed exactly once; and a worker SIGKILLed mid-run, after which the group
rebalances, the reaper requeues what it held (dispatched again through the outbox) and every
job completes."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from conveyor import App, JobStatus, NewJob
from tests.e2e.conftest import fast_settings, kafka_settings
from tests.helpers import child_pythonpath, opened, wait_until
from tests.kafka.broker import Tansu

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(kafka: Tansu) -> dict[str, Any]:
    return kafka_settings(kafka.bootstrap, leader_ttl=2.0)


@pytest_asyncio.fixture
async def app(pg_url: str, settings: dict[str, Any]) -> AsyncIterator[App]:
    """The submitting side: no worker, no housekeeping here (the workers relay and reap)."""
    async with opened(App(settings=fast_settings(pg_url, **settings))) as a:
        yield a


def spawn(pg_url: str, settings: dict[str, Any], *args: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **{f"CONVEYOR_{k.upper()}": str(v) for k, v in settings.items()},
        "CONVEYOR_STORE_URL": pg_url,
        "CONVEYOR_HEARTBEAT_INTERVAL": "0.2",
        "CONVEYOR_MAINTENANCE_INTERVAL": "0.2",
        "CONVEYOR_POLL_INTERVAL": "0.5",
        "CONVEYOR_LOG_LEVEL": "WARNING",
        "PYTHONPATH": child_pythonpath(),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli", "worker", "tests.kafka.apps:app", *args],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(*procs: subprocess.Popen[bytes]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


async def completed(app: App, n: int) -> bool:
    c = await app.store.count_by_queue_status()
    return c.get("default", {}).get(JobStatus.COMPLETED, 0) >= n


def runs(log: Path) -> list[tuple[str, int, int]]:
    """(job id, attempt, pid) per handler run."""
    out = []
    for line in log.read_text().splitlines():
        job, attempt, pid = line.split()
        out.append((job, int(attempt), int(pid)))
    return out


async def test_two_workers_drain_10000_jobs_each_once(
    app: App, pg_url: str, settings: dict[str, Any], tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    workers = [spawn(pg_url, settings, "--concurrency", "100") for _ in range(2)]
    try:
        jobs = await app.enqueue_many([NewJob("k.mark", {"log": str(log)}) for _ in range(10_000)])
        await wait_until(lambda: completed(app, 10_000), timeout=240, message="10,000 jobs")
    finally:
        stop(*workers)
    ran = runs(log)
    assert len(ran) == 10_000
    assert {r[0] for r in ran} == {str(j.id) for j in jobs}  # every job, once
    assert len({r[2] for r in ran}) == 2  # both workers ran jobs
    stored = await app.store.get_jobs([j.id for j in jobs])
    assert {(j.status, j.attempt) for j in stored} == {(JobStatus.COMPLETED, 1)}


async def test_a_killed_worker_loses_no_job(
    app: App, pg_url: str, settings: dict[str, Any], tmp_path: Path
) -> None:
    """The victim runs alone until it is mid-run (jobs of 50 ms, 50 at a time), the survivor
    joins the group and the victim is killed at once: its membership lapses, the survivor gets
    every partition (records the victim took without committing come again and are refused or
    run), the victim's running jobs are reaped after their 1 s lease and dispatched again."""
    log = tmp_path / "runs.log"
    args = ("--concurrency", "50", "--lease", "1")
    victim = spawn(pg_url, settings, *args)
    survivor: subprocess.Popen[bytes] | None = None
    try:
        payload = {"log": str(log), "sleep": 0.05}
        jobs = await app.enqueue_many([NewJob("k.mark", payload) for _ in range(2000)])

        def victim_ran() -> bool:
            return log.exists() and len(runs(log)) >= 200

        await wait_until(victim_ran, timeout=60, message="the victim to run jobs")
        survivor = spawn(pg_url, settings, *args)
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL
        assert not await completed(app, 2000)  # mid-run
        await wait_until(lambda: completed(app, 2000), timeout=120, message="every job")
    finally:
        stop(victim, *([survivor] if survivor else []))
    assert survivor is not None
    ran = runs(log)
    assert {r[0] for r in ran} == {str(j.id) for j in jobs}
    stored = {j.id: j for j in await app.store.get_jobs([j.id for j in jobs])}
    assert {j.status for j in stored.values()} == {JobStatus.COMPLETED}
    # At least once: a job run twice was held by the victim, and its lost attempt counted.
    times = collections.Counter(r[0] for r in ran)
    for job_id, n in times.items():
        if n > 1:
            assert max(a for j, a, _ in ran if j == job_id) >= 2
    assert any(r[2] == survivor.pid for r in ran)
