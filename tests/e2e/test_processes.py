"""Real worker processes: SIGKILL mid-job loses nothing; SIGTERM finishes in-flight jobs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from conveyor import App, JobStatus
from tests.helpers import wait_until

REPO = Path(__file__).resolve().parents[2]


def spawn_worker(store_url: str, *args: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CONVEYOR_STORE_URL": store_url,
        "CONVEYOR_HEARTBEAT_INTERVAL": "0.2",
        "CONVEYOR_MAINTENANCE_INTERVAL": "0.1",
        "CONVEYOR_POLL_INTERVAL": "0.1",
        "PYTHONPATH": str(REPO),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli", "worker", "tests.e2e.apps:app", *args],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def test_killed_worker_loses_nothing(app: App, store_url: str, tmp_path: Path) -> None:
    job = await app.enqueue("proc.slow", {"marker_dir": str(tmp_path), "seconds": 60})
    victim = spawn_worker(store_url, "--lease", "1")
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
    rescuer = spawn_worker(store_url, "--lease", "1")
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


async def test_sigterm_lets_running_jobs_finish(app: App, store_url: str, tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    jobs = await app.enqueue_many(
        [app.new_job("proc.slow", {"marker_dir": str(markers), "seconds": 1.0}) for _ in range(5)]
    )
    worker = spawn_worker(store_url, "--grace", "20", "--concurrency", "10")
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
