"""claim_ids and ready_jobs: what a transport in front of the store (Redis) relies on."""

from __future__ import annotations

import uuid

from conveyor.domain.job import JobStatus
from conveyor.domain.records import QueueSettings
from conveyor.store import Store
from tests.helpers import enqueue, enqueue_one, make_job, seconds_from_now


async def test_claim_ids_takes_exactly_the_given_queued_jobs(store: Store) -> None:
    a, b, c = await enqueue(store, *[make_job(payload={"i": i}) for i in range(3)])
    claimed = await store.claim_ids("w", [c.id, a.id], 30.0)
    assert [j.id for j in claimed] == [a.id, c.id]  # claim order, not input order
    for job, before in zip(claimed, (a, c), strict=True):
        assert job.status == JobStatus.RUNNING
        assert job.worker_id == "w"
        assert job.attempt == 1
        assert job.lease_token == before.lease_token + 1
    assert (await store.get_job(b.id)).status == JobStatus.QUEUED
    events = await store.job_events(a.id)
    assert (events[-1].from_status, events[-1].to_status) == (JobStatus.QUEUED, JobStatus.RUNNING)


async def test_claim_ids_returns_the_stored_jobs(store: Store) -> None:
    jobs = await enqueue(
        store,
        make_job(payload={"k": [1]}, priority=2, tags=["x"], tenant="t", unique_key="k-1"),
        make_job(payload=[1, 2], timeout=7.5),
    )
    claimed = await store.claim_ids("w", [j.id for j in jobs], 30.0)
    assert len(claimed) == 2
    assert claimed == [await store.get_job(j.id) for j in claimed]


async def test_claim_ids_refuses_what_claim_would_not_take(store: Store) -> None:
    running = await enqueue_one(store)
    cancelled = await enqueue_one(store)
    later = await enqueue_one(store, run_at=seconds_from_now(60))
    ok = await enqueue_one(store)
    assert [j.id for j in await store.claim_ids("w1", [running.id], 30.0)] == [running.id]
    await store.cancel(cancelled.id)
    ids = [running.id, cancelled.id, later.id, uuid.uuid4(), ok.id, ok.id]
    claimed = await store.claim_ids("w2", ids, 30.0)
    assert [j.id for j in claimed] == [ok.id]
    assert (await store.get_job(running.id)).worker_id == "w1"


async def test_claim_ids_honours_pause_and_concurrency(store: Store) -> None:
    await store.set_queue_settings(QueueSettings(name="p", paused=True))
    await store.set_queue_settings(QueueSettings(name="two", concurrency=2))
    paused = await enqueue_one(store, queue="p")
    limited = await enqueue(store, *[make_job(queue="two", payload={"i": i}) for i in range(3)])
    free = await enqueue_one(store)
    ids = [paused.id, *(j.id for j in limited), free.id]

    first = await store.claim_ids("w", ids, 30.0)
    assert {j.id for j in first} == {limited[0].id, limited[1].id, free.id}
    assert await store.claim_ids("w", ids, 30.0) == []  # "two" is full, "p" paused

    await store.set_queue_settings(QueueSettings(name="p", paused=False))
    assert [j.id for j in await store.claim_ids("w", ids, 30.0)] == [paused.id]


async def test_ready_jobs_lists_queued_due_jobs_in_claim_order(store: Store) -> None:
    low, high = await enqueue(store, make_job(priority=0), make_job(priority=5))
    await enqueue(store, make_job(run_at=seconds_from_now(60)), make_job(queue="other"))
    await store.claim_ids("w", [], 30.0)
    ready = await store.ready_jobs("default", 10)
    assert [(r.id, r.priority, r.queue) for r in ready] == [
        (high.id, 5, "default"),
        (low.id, 0, "default"),
    ]
    assert ready[1].run_at == low.run_at
    assert ready[1].updated_at == (await store.get_job(low.id)).updated_at  # ready since
    assert [r.id for r in await store.ready_jobs("default", 1)] == [high.id]
    await store.claim_ids("w", [high.id], 30.0)
    assert [r.id for r in await store.ready_jobs("default", 10)] == [low.id]
