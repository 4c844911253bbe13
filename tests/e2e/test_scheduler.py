"""Cron schedules fire each tick exactly once, even with two schedulers."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta

import pytest

from conveyor import App
from conveyor.domain.records import JobFilter, Schedule
from conveyor.scheduler.scheduler import Scheduler, TickReport
from conveyor.store import open_store
from tests.e2e.conftest import fast_settings
from tests.helpers import wait_until


async def _schedule_jobs(app: App, name: str) -> list[object]:
    page = await app.store.list_jobs(JobFilter(tag=f"schedule:{name}"), limit=500)
    return page.jobs


async def test_two_schedulers_fire_each_tick_once(app: App, store_url: str) -> None:
    await app.service.put_schedule(
        Schedule(name="every-second", cron="* * * * * *", timezone="UTC", type="tick")
    )
    stores = [open_store(store_url) for _ in range(2)]
    for s in stores:
        await s.connect()
    schedulers = [Scheduler(s, fast_settings(store_url)) for s in stores]
    tasks = [asyncio.create_task(s.run()) for s in schedulers]
    try:
        await wait_until(lambda: _enough(app), timeout=15, message="four fires")
        leaders = [s.is_leader for s in schedulers]
        assert leaders.count(True) == 1
    finally:
        for s in schedulers:
            s.stop()
        await asyncio.gather(*tasks)
        for s in stores:
            await s.close()
    jobs = await _schedule_jobs(app, "every-second")
    keys = [j.unique_key for j in jobs]  # type: ignore[attr-defined]
    assert len(keys) == len(set(keys)), f"a tick fired twice: {sorted(keys)}"


async def _enough(app: App) -> bool:
    return len(await _schedule_jobs(app, "every-second")) >= 4


async def test_concurrent_fires_of_one_tick_make_one_job(app: App, store_url: str) -> None:
    """Leadership aside (a failover can briefly give two leaders), the CAS guarantees once."""
    now = datetime.now(UTC)
    await app.service.put_schedule(
        Schedule(name="cas", cron="* * * * *", timezone="UTC", type="tick")
    )
    s = await app.store.get_schedule("cas")
    assert s.next_run_at is not None
    stores = [open_store(store_url) for _ in range(4)]
    for st in stores:
        await st.connect()
    try:
        later = s.next_run_at + timedelta(seconds=1)
        results = await asyncio.gather(
            *[
                Scheduler(st, fast_settings(store_url), clock=lambda: later).fire_due(later)
                for st in stores
            ]
        )
    finally:
        for st in stores:
            await st.close()
    assert sum(len(r) for r in results) == 1
    after = await app.store.get_schedule("cas")
    assert after.last_run_at == s.next_run_at
    assert after.next_run_at is not None and after.next_run_at > now


@pytest.mark.parametrize("enabled", [False])
async def test_disabled_schedule_does_not_fire(app: App, enabled: bool) -> None:
    await app.service.put_schedule(
        Schedule(name="off", cron="* * * * * *", timezone="UTC", type="tick", enabled=enabled)
    )
    future = datetime.now(UTC) + timedelta(minutes=5)
    fired = await Scheduler(app.store, app.settings).fire_due(future)
    assert fired == []


async def test_trigger_runs_a_schedule_now(app: App) -> None:
    await app.service.put_schedule(
        Schedule(name="manual", cron="0 0 1 1 *", timezone="UTC", type="tick", payload={"a": 1})
    )
    job = await app.service.trigger_schedule("manual")
    assert job.type == "tick" and job.payload == {"a": 1}
    assert "schedule:manual" in job.tags


async def test_a_per_second_schedule_fires_every_second_without_a_gap(sqlite_url: str) -> None:
    """Issue 19: a healthy scheduler skipped a tick (fired :09, :10, :12). It slept a fixed
    interval after each tick and drifted past a fire time; it now wakes at the next fire time.
    Its interval here is longer than the schedule's period, so a fixed sleep would skip
    about every other second."""
    app = App(settings=fast_settings(sqlite_url))
    await app.open(migrate=True)
    scheduler = Scheduler(app.store, fast_settings(sqlite_url, scheduler_tick=2.5))
    task = None
    try:
        await app.service.put_schedule(
            Schedule(name="per-second", cron="*/1 * * * * *", timezone="UTC", type="tick")
        )
        task = asyncio.create_task(scheduler.run())
        await wait_until(lambda: _at_least(app, "per-second", 5), timeout=15, message="five fires")
    finally:
        scheduler.stop()
        if task is not None:
            await task
        jobs = await _schedule_jobs(app, "per-second")
        await app.close()
    prefix = "schedule:per-second:"
    keys = [j.unique_key for j in jobs]  # type: ignore[attr-defined]
    assert len(keys) == len(set(keys)), f"a tick fired twice: {sorted(keys)}"
    fired = sorted(datetime.fromisoformat(k.removeprefix(prefix)) for k in keys)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(fired)]
    assert gaps and all(g == 1.0 for g in gaps), f"fired at {[f.isoformat() for f in fired]}"


async def _at_least(app: App, name: str, n: int) -> bool:
    return len(await _schedule_jobs(app, name)) >= n


def test_the_scheduler_sleeps_until_the_next_fire_time_within_its_interval() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, 300_000, tzinfo=UTC)
    scheduler = Scheduler(open_store("sqlite:///unused.db"), clock=lambda: now)
    interval = scheduler.settings.scheduler_tick
    soon = TickReport(next_fire=now + timedelta(seconds=0.7))
    assert 0.7 < scheduler.sleep_after(soon) < 0.75
    assert scheduler.sleep_after(TickReport(next_fire=now + timedelta(hours=1))) == interval
    assert scheduler.sleep_after(TickReport()) == interval  # no schedule, or not the leader
    late = TickReport(next_fire=now - timedelta(seconds=3))
    assert 0 < scheduler.sleep_after(late) < 0.05
