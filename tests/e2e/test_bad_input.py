"""Bad input gets a clear, typed error naming the field, and nothing is written."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import pytest

from conveyor import App, InvalidInput, NewJob
from conveyor.domain.records import Schedule


async def _snapshot(app: App) -> tuple[Any, ...]:
    s = app.store
    return (
        await s.count_by_queue_status(),
        [q.__dict__ for q in await s.list_queue_settings()],
        [x.name for x in await s.list_schedules()],
    )


@pytest.fixture
def registered(app: App) -> App:
    app.job("known")(lambda payload: None)
    return app


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"type": ""}, "type"),
        ({"type": "known", "payload": {"when": datetime(2026, 1, 1)}}, "payload"),
        ({"type": "known", "payload": {"s": {1, 2}}}, "payload"),
        ({"type": "known", "payload": {"x": math.nan}}, "payload"),
        ({"type": "known", "payload": ["a set inside", {1, 2}]}, "payload"),
        ({"type": "known", "timeout": -1.0}, "timeout"),
        ({"type": "known", "timeout": 0}, "timeout"),
        ({"type": "known", "max_retries": -1}, "max_retries"),
        ({"type": "known", "priority": 10**12}, "priority"),
        ({"type": "known", "queue": "bad queue!"}, "queue"),
        ({"type": "known", "run_at": datetime(2030, 1, 1)}, "run_at"),  # naive
        ({"type": "known", "payload": {"big": "x" * 300_000}}, "payload"),
    ],
)
async def test_invalid_job_is_refused_and_nothing_written(
    registered: App, kwargs: dict[str, Any], field: str
) -> None:
    before = await _snapshot(registered)
    with pytest.raises(InvalidInput) as info:
        await registered.service.submit(NewJob(**kwargs))
    assert info.value.field == field
    assert await _snapshot(registered) == before


async def test_an_app_that_opts_in_refuses_types_it_has_no_handler_for(app: App) -> None:
    """The default accepts any type (one rule at every door, issue 18); a producer may ask
    for the check itself."""
    strict = App(settings=app.settings, check_types=True)
    strict.job("known")(lambda payload: None)
    async with strict:
        before = await _snapshot(strict)
        with pytest.raises(InvalidInput) as info:
            await strict.enqueue("not-registered")
        assert info.value.field == "type" and "not-registered" in info.value.message
        assert await _snapshot(strict) == before
        assert (await strict.enqueue("known")).type == "known"


async def test_one_bad_job_rejects_the_whole_batch(registered: App) -> None:
    before = await _snapshot(registered)
    good = NewJob(type="known")
    with pytest.raises(InvalidInput) as info:
        await registered.service.submit_many([good, good, NewJob(type="known", timeout=-5)])
    assert info.value.field == "jobs[2].timeout"
    assert await _snapshot(registered) == before


@pytest.mark.parametrize(
    ("cron", "tz", "field"),
    [
        ("not a cron", "UTC", "cron"),
        ("99 * * * *", "UTC", "cron"),
        ("* * * * *", "Nowhere/X", "timezone"),
    ],
)
async def test_invalid_schedule_is_refused(registered: App, cron: str, tz: str, field: str) -> None:
    before = await _snapshot(registered)
    with pytest.raises(InvalidInput) as info:
        await registered.service.put_schedule(
            Schedule(name="s", cron=cron, timezone=tz, type="known")
        )
    assert info.value.field == field
    assert await _snapshot(registered) == before


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"colour": "blue"}, "colour"),
        ({"paused": "yes"}, "paused"),
        ({"max_depth": -3}, "max_depth"),
    ],
)
async def test_invalid_queue_setting_is_refused(
    registered: App, changes: dict[str, Any], field: str
) -> None:
    before = await _snapshot(registered)
    with pytest.raises(InvalidInput) as info:
        await registered.service.update_queue("default", changes)
    assert info.value.field == field
    assert await _snapshot(registered) == before
