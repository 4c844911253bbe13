"""Concurrent single submits are written together, yet each caller gets its own outcome."""

from __future__ import annotations

import asyncio

from conveyor import App, NewJob, QueueFull
from conveyor.domain.records import QueueSettings


async def test_concurrent_submits_share_round_trips(app: App) -> None:
    calls: list[int] = []
    real = app.store.enqueue_many

    async def counting(jobs: list[NewJob]) -> object:
        calls.append(len(jobs))
        return await real(jobs)

    app.store.enqueue_many = counting  # type: ignore[method-assign]
    results = await asyncio.gather(
        *[app.service.submit(NewJob(type="t", payload={"i": i})) for i in range(200)]
    )
    assert sorted(r.job.payload["i"] for r in results) == list(range(200))
    assert all(r.created for r in results)
    assert sum(calls) == 200
    assert len(calls) < 50, f"expected batched writes, got {len(calls)} round trips"
    for r in results:
        assert (await app.store.get_job(r.job.id)).payload == r.job.payload


async def test_one_full_queue_does_not_fail_its_neighbours(app: App) -> None:
    await app.store.set_queue_settings(QueueSettings(name="tiny", max_depth=1))
    jobs = [NewJob(type="t", queue="tiny") for _ in range(3)] + [
        NewJob(type="t", queue="roomy") for _ in range(5)
    ]
    outcomes = await asyncio.gather(*[app.service.submit(j) for j in jobs], return_exceptions=True)
    full = [o for o in outcomes if isinstance(o, QueueFull)]
    ok = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(full) == 2
    assert len(ok) == 6
    counts = await app.store.count_by_queue_status()
    assert sum(counts["tiny"].values()) == 1
    assert sum(counts["roomy"].values()) == 5


async def test_duplicate_unique_keys_in_one_batch_return_the_first(app: App) -> None:
    a, b = await asyncio.gather(
        app.service.submit(NewJob(type="t", unique_key="k")),
        app.service.submit(NewJob(type="t", unique_key="k")),
    )
    assert a.job.id == b.job.id
    assert [a.created, b.created].count(True) == 1


async def test_a_lone_submit_is_written_at_once(app: App) -> None:
    r = await asyncio.wait_for(app.service.submit(NewJob(type="t")), 5)
    assert r.created
    assert (await app.store.get_job(r.job.id)).id == r.job.id
