"""Two `conveyor scheduler` processes, the leader SIGKILLed while a per-second schedule runs:
the other takes over within a bound (PostgreSQL: the advisory lock dies with the leader's
connection; SQLite: the leader lease's TTL), and every tick fires at most once throughout."""

from __future__ import annotations

import subprocess
import time
from datetime import datetime

import pytest

from conveyor.domain.records import JobFilter, Schedule
from tests.faults.conftest import open_app
from tests.faults.procs import Procs
from tests.helpers import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

LEADER_TTL = 2.0
TICK = 0.2
NAME = "every-second"
SLACK = 3.0  # noticing the dead connection, a tick, a busy machine


def _leads(procs: Procs, proc: subprocess.Popen[bytes]) -> bool:
    changes = [
        e["leader"] for e in procs.lines(proc) if e.get("event") == "scheduler leadership changed"
    ]
    return bool(changes) and changes[-1] is True


async def test_leader_killed_the_other_takes_over_and_no_tick_fires_twice(
    store_url: str, backend: str, procs: Procs
) -> None:
    app = await open_app(store_url)
    env = {"CONVEYOR_LEADER_TTL": str(LEADER_TTL), "CONVEYOR_SCHEDULER_TICK": str(TICK)}

    async def fire_times() -> list[datetime]:
        """The tick each fired job stands for (its unique key carries the fire time)."""
        page = await app.store.list_jobs(JobFilter(tag=f"schedule:{NAME}"), limit=1000)
        prefix = f"schedule:{NAME}:"
        return sorted(
            datetime.fromisoformat(j.unique_key.removeprefix(prefix))
            for j in page.jobs
            if j.unique_key
        )

    async def fired_at_least(n: int) -> bool:
        return len(await fire_times()) >= n

    try:
        await app.service.put_schedule(
            Schedule(name=NAME, cron="* * * * * *", timezone="UTC", type="faults.tick")
        )
        schedulers = [procs.start("scheduler", store_url, "scheduler", **env) for _ in range(2)]
        leader = await wait_until(
            lambda: next((p for p in schedulers if _leads(procs, p)), None),
            timeout=30,
            message="a leader",
        )
        (follower,) = [p for p in schedulers if p is not leader]
        await wait_until(lambda: fired_at_least(3), timeout=20, message="three fires")
        procs.kill(leader)
        killed = time.monotonic()
        await wait_until(
            lambda: _leads(procs, follower), timeout=30, interval=0.02, message="takeover"
        )
        takeover = time.monotonic() - killed
        before = len(await fire_times())
        await wait_until(
            lambda: fired_at_least(before + 3),
            timeout=20,
            message="three fires by the new leader",
        )
        procs.close()
        fired = await fire_times()
        assert follower.returncode == 0, procs.text(follower)
    finally:
        procs.close()
        await app.close()
    bound = (LEADER_TTL if backend == "sqlite" else 0) + TICK + SLACK
    print(f"takeover {takeover:.2f}s (bound {bound:.1f}s); {len(fired)} fires")
    assert len(fired) == len(set(fired)), f"a tick fired twice: {fired}"
    assert all(t.microsecond == 0 for t in fired)  # one job per whole-second tick
    assert takeover <= bound, f"takeover took {takeover:.2f}s (bound {bound:.1f}s)"
