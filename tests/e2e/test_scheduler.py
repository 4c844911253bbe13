"""Cron schedules fire each tick exactly once, even with two schedulers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from conveyor import App
from conveyor.domain.records import JobFilter, Schedule
from conveyor.scheduler.scheduler import Scheduler
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
