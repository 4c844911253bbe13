"""Workers SIGKILLed again and again while their jobs run, on both stores: nothing is lost,
nothing completes twice, and a job runs in two places only as the at-least-once window allows
(never, here: a killed run ends with its process, and its lease expires after that)."""

from __future__ import annotations

import subprocess
import time

import pytest

from conveyor import JobStatus
from tests.faults.conftest import open_app
from tests.faults.history import History
from tests.faults.procs import Procs
from tests.helpers import counts, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]  # 25 worker boots on a busy machine

KILLS = 20
BACKLOG = 40  # jobs waiting or running, at least, until the last kill
WORKERS = 5  # a kill needs a busy worker: enough of them that one is while others boot


async def test_sigkill_loop_loses_nothing_and_completes_nothing_twice(
    store_url: str, history: History, procs: Procs
) -> None:
    app = await open_app(store_url)
    submitted = 0

    async def top_up() -> None:
        """Keep work waiting, so there is always a busy worker to kill however slowly
        replacements boot."""
        nonlocal submitted
        by_status = await counts(app.store)
        if submitted - by_status.get(JobStatus.COMPLETED, 0) >= BACKLOG:
            return
        jobs = await app.enqueue_many(
            [
                app.new_job(
                    "faults.work",
                    {"history": str(history.path), "seconds": 0.5 + (i % 5) * 0.25},
                    max_retries=100,  # each kill costs an attempt; none may end in the DLQ
                )
                for i in range(BACKLOG)
            ]
        )
        history.submit(j.id for j in jobs)
        submitted += len(jobs)

    try:
        await top_up()
        live = [procs.worker(store_url, "--concurrency", "3") for _ in range(WORKERS)]
        started = time.monotonic()
        for _ in range(KILLS):

            async def busy_worker() -> subprocess.Popen[bytes] | None:
                await top_up()
                return next((p for p in live if history.running_in(p.pid)), None)

            victim = await wait_until(
                busy_worker, timeout=60, interval=0.05, message="a worker running a job"
            )
            procs.kill(victim)
            live.remove(victim)
            live.append(procs.worker(store_url, "--concurrency", "3"))
        killing = time.monotonic() - started

        async def drained() -> bool:
            return (await counts(app.store)).get(JobStatus.COMPLETED, 0) == submitted

        await wait_until(drained, timeout=90, interval=0.2, message="every job to complete")
        procs.close()
        verdict = await history.verdict(app.store)
    finally:
        procs.close()
        await app.close()
    print(f"{KILLS} kills in {killing:.1f}s\n{verdict.summary()}")
    assert verdict.ok, verdict.summary()
    assert verdict.faulted_processes == KILLS
    assert verdict.reruns >= KILLS  # every kill cost at least one run, which ran again
