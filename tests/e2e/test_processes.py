"""Real worker processes: SIGKILL mid-job loses nothing; SIGTERM finishes in-flight jobs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conveyor import App, JobStatus
from conveyor.worker.executor import THREAD_MARGIN
from tests.e2e.conftest import TRANSPORTS
from tests.helpers import child_pythonpath, wait_until

REPO = Path(__file__).resolve().parents[2]


def spawn_worker(
    store_url: str, *args: str, transport: dict[str, Any] | None = None
) -> subprocess.Popen[bytes]:
    """`conveyor worker` on the store, and on the transport of the `transport` fixture."""
    env = {
        **os.environ,
        **{f"CONVEYOR_{k.upper()}": str(v) for k, v in (transport or {}).items()},
        "CONVEYOR_STORE_URL": store_url,
        "CONVEYOR_HEARTBEAT_INTERVAL": "0.2",
        "CONVEYOR_MAINTENANCE_INTERVAL": "0.1",
        "CONVEYOR_POLL_INTERVAL": "0.1",
        "PYTHONPATH": child_pythonpath(),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli", "worker", "tests.e2e.apps:app", *args],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@TRANSPORTS
async def test_killed_worker_loses_nothing(
    app: App, store_url: str, transport: dict[str, Any], tmp_path: Path
) -> None:
    job = await app.enqueue("proc.slow", {"marker_dir": str(tmp_path), "seconds": 60})
    victim = spawn_worker(store_url, "--lease", "1", transport=transport)
    try:
        await wait_until(
            lambda: (tmp_path / f"{job.id}.1").exists(),
            timeout=20,
            message="first attempt to start",
        )
        running = await app.store.get_job(job.id)
        assert running.status == JobStatus.RUNNING
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL
    finally:
        victim.kill()
    rescuer = spawn_worker(store_url, "--lease", "1", transport=transport)
    try:

        async def completed() -> bool:
            return (await app.store.get_job(job.id)).status == JobStatus.COMPLETED

        await wait_until(completed, timeout=20, message="job to be recovered and completed")
    finally:
        rescuer.terminate()
        rescuer.wait(10)
    done = await app.store.get_job(job.id)
    assert done.attempt == 2  # the lost attempt counted
    assert done.result["attempt"] == 2
    events = await app.store.job_events(job.id)
    assert any("lease" in (e.message or "") for e in events)


@TRANSPORTS
async def test_sigterm_lets_running_jobs_finish(
    app: App, store_url: str, transport: dict[str, Any], tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    jobs = await app.enqueue_many(
        [app.new_job("proc.slow", {"marker_dir": str(markers), "seconds": 1.0}) for _ in range(5)]
    )
    worker = spawn_worker(store_url, "--grace", "20", "--concurrency", "10", transport=transport)
    try:
        await wait_until(
            lambda: len(list(markers.iterdir())) == 5, timeout=20, message="all five jobs to start"
        )
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(20)
    finally:
        worker.kill()
    assert code == 0, worker.stderr.read().decode() if worker.stderr else ""
    for j in jobs:
        done = await app.store.get_job(j.id)
        assert done.status == JobStatus.COMPLETED
        assert done.attempt == 1
    assert await app.store.list_workers() == []  # deregistered on the way out


async def test_sigterm_never_hands_back_a_running_sync_job(
    app: App, store_url: str, transport: dict[str, Any], tmp_path: Path
) -> None:
    """Issue 19: a sync handler still running at the end of `--grace` is not handed back
    (another worker would run it at the same time): the worker exits within grace + margin,
    its lease expires with it, and only then does a second worker run the job."""
    log = tmp_path / "runs.log"
    log.touch()
    job = await app.enqueue("proc.sync_slow", {"log": str(log), "seconds": 60})
    grace = 2.0
    first = spawn_worker(store_url, "--grace", str(grace), "--lease", "2", transport=transport)
    second: subprocess.Popen[bytes] | None = None
    try:
        await wait_until(lambda: "start" in log.read_text(), timeout=20, message="job to start")
        first.send_signal(signal.SIGTERM)
        signalled = time.time()
        second = spawn_worker(store_url, "--lease", "2", transport=transport)
        await wait_until(
            lambda: first.poll() is not None, timeout=30, interval=0.02, message="first to exit"
        )
        first_exit = time.time()
        code = first.poll()
        assert code == 0, first.stderr.read().decode() if first.stderr else ""
        # Exits by its grace plus the thread margin (and a little for flushing and closing).
        assert first_exit - signalled <= grace + THREAD_MARGIN + 2.5, first_exit - signalled

        async def completed() -> bool:
            return (await app.store.get_job(job.id)).status == JobStatus.COMPLETED

        await wait_until(completed, timeout=30, message="the job to be retried and completed")
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)
    runs = [line.split() for line in log.read_text().splitlines()]
    starts = [(int(pid), float(at)) for kind, pid, at, _ in runs if kind == "start"]
    ends = {int(pid): float(at) for kind, pid, at, _ in runs if kind == "end"}
    assert [pid for pid, _ in starts] == [first.pid, second.pid]
    assert first.pid not in ends  # its thread was still sleeping when the process ended
    # The second worker started the job only after the first process (and its thread) ended.
    assert starts[1][1] > first_exit
    done = await app.store.get_job(job.id)
    assert done.attempt == 2  # the abandoned attempt counts, like a crash's
