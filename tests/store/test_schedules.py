from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from conveyor.domain.errors import ScheduleNotFound
from conveyor.domain.job import JobStatus
from conveyor.domain.records import JobFilter, Schedule
from conveyor.store import Store
from tests.helpers import make_job, utcnow

T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


def _schedule(name: str = "nightly", **kw) -> Schedule:
    fields = dict(
        cron="0 9 * * *",
        timezone="Europe/Berlin",
        type="report.build",
        payload={"kind": "daily"},
        queue="reports",
        priority=3,
        max_retries=1,
        timeout=60.0,
        next_run_at=T0,
    )
    fields.update(kw)
    return Schedule(name=name, **fields)


def _same(a: Schedule, b: Schedule) -> None:
    keys = (
        "name",
        "cron",
        "timezone",
        "type",
        "payload",
        "queue",
        "priority",
        "max_retries",
        "timeout",
        "enabled",
        "next_run_at",
        "last_run_at",
    )
    assert {k: getattr(a, k) for k in keys} == {k: getattr(b, k) for k in keys}


async def test_upsert_and_get_schedule(store: Store) -> None:
    saved = await store.upsert_schedule(_schedule())
    _same(saved, _schedule())
    assert saved.created_at is not None and saved.updated_at is not None
    got = await store.get_schedule("nightly")
    _same(got, _schedule())
    assert got.created_at == saved.created_at


async def test_upsert_updates_an_existing_schedule(store: Store) -> None:
    first = await store.upsert_schedule(_schedule())
    second = await store.upsert_schedule(_schedule(cron="*/5 * * * *", enabled=False))
    assert second.cron == "*/5 * * * *"
    assert second.enabled is False
    assert second.created_at == first.created_at
    assert second.updated_at is not None and first.updated_at is not None
    assert second.updated_at >= first.updated_at
    assert [s.name for s in await store.list_schedules()] == ["nightly"]
    assert (await store.get_schedule("nightly")).cron == "*/5 * * * *"


async def test_list_and_delete_schedules(store: Store) -> None:
    await store.upsert_schedule(_schedule("a"))
    await store.upsert_schedule(_schedule("b"))
    assert sorted(s.name for s in await store.list_schedules()) == ["a", "b"]
    await store.delete_schedule("a")
    assert [s.name for s in await store.list_schedules()] == ["b"]
    with pytest.raises(ScheduleNotFound):
        await store.get_schedule("a")
    with pytest.raises(ScheduleNotFound):
        await store.delete_schedule("a")


async def test_get_unknown_schedule(store: Store) -> None:
    with pytest.raises(ScheduleNotFound):
        await store.get_schedule("nope")


async def test_due_schedules(store: Store) -> None:
    now = utcnow()
    await store.upsert_schedule(_schedule("due", next_run_at=now - timedelta(minutes=1)))
    await store.upsert_schedule(_schedule("exactly-now", next_run_at=now))
    await store.upsert_schedule(_schedule("future", next_run_at=now + timedelta(minutes=1)))
    await store.upsert_schedule(
        _schedule("disabled", next_run_at=now - timedelta(minutes=1), enabled=False)
    )
    await store.upsert_schedule(_schedule("unset", next_run_at=None))
    due = await store.due_schedules(now)
    assert sorted(s.name for s in due) == ["due", "exactly-now"]


async def test_fire_schedule_enqueues_and_advances(store: Store) -> None:
    await store.upsert_schedule(_schedule())
    next_at = T0 + timedelta(days=1)
    job = await store.fire_schedule(
        "nightly", T0, next_at, make_job("report.build", queue="reports", payload={"k": 1})
    )
    assert job is not None
    assert (job.type, job.queue, job.payload, job.status) == (
        "report.build",
        "reports",
        {"k": 1},
        JobStatus.QUEUED,
    )
    assert await store.get_job(job.id) == job
    after = await store.get_schedule("nightly")
    assert after.next_run_at == next_at
    assert after.last_run_at == T0


async def test_fire_schedule_twice_fires_once(store: Store) -> None:
    await store.upsert_schedule(_schedule())
    next_at = T0 + timedelta(days=1)
    first = await store.fire_schedule("nightly", T0, next_at, make_job("report.build"))
    second = await store.fire_schedule("nightly", T0, next_at, make_job("report.build"))
    assert first is not None
    assert second is None
    page = await store.list_jobs(JobFilter(type="report.build"))
    assert [j.id for j in page.jobs] == [first.id]
    assert (await store.get_schedule("nightly")).next_run_at == next_at


async def test_concurrent_fires_yield_exactly_one_job(store: Store, store_factory) -> None:
    await store.upsert_schedule(_schedule())
    others = [await store_factory() for _ in range(3)]
    next_at = T0 + timedelta(days=1)
    results = await asyncio.gather(
        *[
            s.fire_schedule("nightly", T0, next_at, make_job("report.build"))
            for s in [store, *others]
        ]
    )
    fired = [j for j in results if j is not None]
    assert len(fired) == 1
    page = await store.list_jobs(JobFilter(type="report.build"))
    assert [j.id for j in page.jobs] == [fired[0].id]
