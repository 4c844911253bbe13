"""SIGTERM, once or twice, with async and sync handlers running: in-flight work finishes or is
handed back, never runs in two places at once, and the process exits within its grace period
plus a bounded margin. A second worker is there from the first signal to take what is handed
back at once."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from conveyor import JobStatus
from conveyor.worker.executor import THREAD_MARGIN
from tests.faults.conftest import open_app
from tests.faults.history import History
from tests.faults.procs import Procs
from tests.helpers import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

GRACE = 2.0
SLACK = 3.0  # flushing, deregistering, interpreter exit, on a busy machine


@pytest.mark.parametrize("signals", [1, 2], ids=["sigterm", "sigterm-twice"])
@pytest.mark.parametrize("handler", ["faults.work", "faults.sync_work"], ids=["async", "sync"])
async def test_sigterm_finishes_or_hands_back_and_exits_in_time(
    pg_url: str, history: History, procs: Procs, tmp_path: Path, handler: str, signals: int
) -> None:
    release = tmp_path / "release"
    app = await open_app(pg_url)
    try:
        short = [
            app.new_job(handler, {"history": str(history.path), "seconds": 0.5}) for _ in range(2)
        ]
        long = [
            app.new_job(
                handler, {"history": str(history.path), "seconds": 60, "release": str(release)}
            )
            for _ in range(2)
        ]
        jobs = await app.enqueue_many(short + long)
        history.submit(j.id for j in jobs)
        first = procs.worker(pg_url, "--concurrency", "4", "--grace", str(GRACE))
        await wait_until(
            lambda: len(history.running_in(first.pid)) == 4,
            timeout=60,
            message="all four jobs running in the first worker",
        )
        first.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        second = procs.worker(pg_url, "--concurrency", "4")
        if signals == 2:
            await wait_until(
                lambda: any(
                    e.get("event") == "waiting for in-flight jobs" for e in procs.lines(first)
                ),
                timeout=10,
                message="the first worker to start draining",
            )
            first.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
        await wait_until(
            lambda: first.poll() is not None, timeout=30, message="the first worker to exit"
        )
        took = time.monotonic() - signalled
        procs.reaped(first)
        assert first.returncode == 0, procs.text(first)
        release.touch()  # what the second worker runs may finish at once

        async def all_completed() -> bool:
            got = await app.store.get_jobs([j.id for j in jobs])
            return all(j.status == JobStatus.COMPLETED for j in got)

        await wait_until(all_completed, timeout=60, message="every job to complete")
        procs.close()
        verdict = await history.verdict(app.store)
        done = {j.id: j for j in await app.store.get_jobs([j.id for j in jobs])}
    finally:
        procs.close()
        await app.close()
    assert verdict.ok, verdict.summary()
    assert verdict.faulted_processes == 0  # no fault: no run may overlap another at all
    if signals == 1:
        bound = GRACE + (THREAD_MARGIN if handler == "faults.sync_work" else 0) + SLACK
        for j in jobs[:2]:  # short jobs finished in the first worker, on their only attempt
            assert (done[j.id].result["pid"], done[j.id].attempt) == (first.pid, 1)
    else:
        bound = SLACK  # the second signal stops at once
    print(f"{handler} x{signals}: exited {took:.2f}s after the last signal (bound {bound:.1f}s)")
    assert took <= bound, f"exited {took:.1f}s after the signal (bound {bound:.1f}s)"
    for j in jobs[2:]:
        assert done[j.id].result["pid"] == second.pid
        # An async job is handed back uncharged; a sync job's thread cannot be stopped, so it is
        # left to its lease (the attempt counts, as after a crash) and runs after the exit.
        assert done[j.id].attempt == (1 if handler == "faults.work" else 2)
