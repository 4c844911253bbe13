"""Operator actions: cancel, requeue from the DLQ, discard."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from conveyor.domain.errors import IllegalTransition, JobNotFound
from conveyor.domain.job import Job, JobStatus
from conveyor.domain.records import Failure
from conveyor.store import Store
from tests.helpers import (
    claim_exactly,
    completed_job,
    counts,
    dead_job,
    enqueue_one,
    running_job,
    seconds_from_now,
    utcnow,
)


async def _scheduled(store: Store) -> Job:
    return await enqueue_one(store, run_at=seconds_from_now(3600))


async def _queued(store: Store) -> Job:
    return await enqueue_one(store)


async def _running(store: Store) -> Job:
    return await running_job(store)


async def _retrying(store: Store) -> Job:
    job = await running_job(store)
    await store.fail_many([Failure(job.id, job.lease_token, "e", seconds_from_now(3600))])
    return await store.get_job(job.id)


@pytest.mark.parametrize("make", [_scheduled, _queued, _running, _retrying])
async def test_cancel_from_every_live_status(store: Store, make) -> None:
    job = await make(store)
    cancelled = await store.cancel(job.id)
    assert cancelled.id == job.id
    assert cancelled.status == JobStatus.CANCELLED
    assert cancelled.finished_at is not None
    assert await store.get_job(job.id) == cancelled
    assert await store.claim("w", ["default"], 10, 30) == []


async def test_cancel_of_a_completed_job_is_illegal(store: Store) -> None:
    job = await completed_job(store, result="r")
    with pytest.raises(IllegalTransition):
        await store.cancel(job.id)
    assert (await store.get_job(job.id)).status == JobStatus.COMPLETED


async def test_cancel_of_a_dead_job_is_illegal(store: Store) -> None:
    job = await dead_job(store)
    with pytest.raises(IllegalTransition):
        await store.cancel(job.id)


async def test_cancel_of_an_unknown_job(store: Store) -> None:
    with pytest.raises(JobNotFound):
        await store.cancel(uuid.uuid4())


async def test_requeue_dead_resets_attempts(store: Store) -> None:
    job = await dead_job(store, payload={"v": 1}, max_retries=2)
    requeued = await store.requeue_dead(job.id)
    assert requeued.status == JobStatus.QUEUED
    assert requeued.attempt == 0
    assert requeued.payload == {"v": 1}
    assert requeued.finished_at is None
    assert await store.get_job(job.id) == requeued

    (again,) = await claim_exactly(store, 1)
    assert (again.id, again.attempt) == (job.id, 1)


async def test_requeue_dead_with_an_edited_payload(store: Store) -> None:
    job = await dead_job(store, payload={"v": 1})
    requeued = await store.requeue_dead(job.id, payload={"v": 2, "fixed": True})
    assert requeued.payload == {"v": 2, "fixed": True}
    assert (await store.get_job(job.id)).payload == {"v": 2, "fixed": True}


async def test_requeue_of_a_live_job_is_illegal(store: Store) -> None:
    job = await enqueue_one(store)
    with pytest.raises(IllegalTransition):
        await store.requeue_dead(job.id)
    with pytest.raises(JobNotFound):
        await store.requeue_dead(uuid.uuid4())


async def test_discard_dead_deletes_only_dead_jobs(store: Store) -> None:
    dead1 = await dead_job(store)
    dead2 = await dead_job(store)
    done = await completed_job(store)
    live = await enqueue_one(store)

    n = await store.discard_dead([dead1.id, live.id, done.id, uuid.uuid4()])
    assert n == 1
    with pytest.raises(JobNotFound):
        await store.get_job(dead1.id)
    with pytest.raises(JobNotFound):
        await store.job_events(dead1.id)
    remaining = {j.id for j in await store.get_jobs([dead2.id, live.id, done.id])}
    assert remaining == {dead2.id, live.id, done.id}
    assert await counts(store) == {
        JobStatus.DEAD: 1,
        JobStatus.QUEUED: 1,
        JobStatus.COMPLETED: 1,
    }


async def test_dead_job_past_its_time_is_not_promoted(store: Store) -> None:
    job = await running_job(store)
    await store.fail_many([Failure(job.id, job.lease_token, "e", None)])
    assert await store.promote_due() == 0
    assert (await store.get_job(job.id)).status == JobStatus.DEAD
    assert utcnow() - timedelta(minutes=1) < (await store.get_job(job.id)).updated_at
