"""A worker in its own network namespace, cut off from PostgreSQL and slowed down: with added
latency it still completes every job once; partitioned mid-job, its leases expire, another
worker takes the jobs, and when the link comes back the stale worker's completions are refused
by the fencing token. Nothing completes twice; the only overlapping runs are the partitioned
worker's, after the fault (the documented at-least-once window)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conveyor import JobStatus
from tests.faults.conftest import open_app
from tests.faults.history import History
from tests.faults.netns import DelayProxy, Netns
from tests.faults.procs import Procs
from tests.helpers import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(150)]

LATENCY = 0.1  # seconds each way: a 200 ms round trip to the database


@pytest.fixture
def netns() -> Iterator[Netns]:
    ns = Netns()
    ns.up()
    try:
        yield ns
    finally:
        ns.down()


async def test_partitioned_worker_is_fenced_and_nothing_completes_twice(
    pg_url: str, netns: Netns, history: History, procs: Procs, tmp_path: Path
) -> None:
    target = urlsplit(pg_url)
    proxy = DelayProxy(netns.host_ip, (target.hostname or "127.0.0.1", target.port or 5432))
    await proxy.start()
    app = await open_app(pg_url)
    release = tmp_path / "release"
    try:
        # Added latency: the namespaced worker alone drains a batch, each job once.
        proxy.delay = LATENCY
        stale = procs.worker(proxy.url(pg_url), "--concurrency", "4", netns=netns.name)
        quick = await app.enqueue_many(
            [
                app.new_job("faults.work", {"history": str(history.path), "seconds": 0.05})
                for _ in range(20)
            ]
        )
        history.submit(j.id for j in quick)
        started = time.monotonic()

        async def completed(jobs: list) -> bool:  # type: ignore[type-arg]
            got = await app.store.get_jobs([j.id for j in jobs])
            return all(j.status == JobStatus.COMPLETED for j in got)

        await wait_until(lambda: completed(quick), timeout=60, message="the slow worker's batch")
        slow_drain = time.monotonic() - started
        assert {j.result["pid"] for j in await app.store.get_jobs([j.id for j in quick])} == {
            stale.pid
        }

        # The partition, mid-job.
        proxy.delay = 0.0
        held = await app.enqueue_many(
            [
                app.new_job(
                    "faults.work",
                    {"history": str(history.path), "seconds": 60, "release": str(release)},
                )
                for _ in range(4)
            ]
        )
        history.submit(j.id for j in held)
        ids = {str(j.id) for j in held}
        await wait_until(
            lambda: history.running_in(stale.pid) >= ids, timeout=30, message="four jobs running"
        )
        netns.partition()
        history.fault(stale.pid)
        cut = time.monotonic()
        rescuer = procs.worker(pg_url, "--concurrency", "4")
        await wait_until(
            lambda: history.running_in(rescuer.pid) >= ids,
            timeout=60,
            message="the other worker to take the jobs once their leases expire",
        )
        taken = time.monotonic() - cut
        release.touch()  # both copies of each job may now finish
        await wait_until(lambda: completed(held), timeout=30, message="the jobs to complete")

        netns.heal()

        def refused() -> set[str]:
            return {
                e["job_id"]
                for e in procs.lines(stale)
                if e.get("event", "").startswith("outcome not applied")
            }

        await wait_until(
            lambda: refused() >= ids, timeout=60, message="the stale worker's outcomes refused"
        )
        assert stale.poll() is None, procs.text(stale)
        procs.close()
        verdict = await history.verdict(app.store)
        done = await app.store.get_jobs([j.id for j in held])
    finally:
        procs.close()
        await app.close()
        await proxy.stop()
    print(
        f"20 jobs over a {2 * LATENCY * 1000:.0f} ms round trip in {slow_drain:.1f}s; "
        f"jobs taken over {taken:.1f}s after the partition\n{verdict.summary()}"
    )
    assert verdict.ok, verdict.summary()
    assert verdict.overlapping_reruns == 4  # the stale runs went on: the at-least-once window
    for j in done:  # the rescuer's outcome stands, on the attempt after the lost one
        assert (j.result["pid"], j.attempt) == (rescuer.pid, 2)
