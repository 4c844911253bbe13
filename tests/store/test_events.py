"""The audit trail: every status change is in the job's history, oldest first (creation and
claims kept by the job row and its attempt's outcome row: store.common.audit_trail)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from conveyor.domain.errors import JobNotFound
from conveyor.domain.job import JobStatus
from conveyor.domain.records import Completion, Failure, Release
from conveyor.store import Store
from tests.helpers import (
    claim_exactly,
    dead_job,
    enqueue_one,
    running_job,
    seconds_from_now,
    sleep_until,
    transitions,
    utcnow,
    wait_until,
)

S = JobStatus


async def test_enqueue_claim_complete(store: Store) -> None:
    job = await running_job(store, worker_id="w7")
    await store.complete_many([Completion(job.id, job.lease_token, None)])
    events = await store.job_events(job.id)
    assert transitions(events) == [
        (None, S.QUEUED),
        (S.QUEUED, S.RUNNING),
        (S.RUNNING, S.COMPLETED),
    ]
    assert all(e.job_id == job.id for e in events)
    assert [e.id for e in events] == sorted(e.id for e in events)
    assert [e.at for e in events] == sorted(e.at for e in events)
    assert events[1].worker_id == "w7"
    assert events[1].attempt == 1
    assert all(e.at.tzinfo is not None for e in events)


async def test_scheduled_promoted(store: Store) -> None:
    soon = seconds_from_now(0.2)
    job = await enqueue_one(store, run_at=soon)
    await sleep_until(soon)
    assert await store.promote_due() == 1
    assert transitions(await store.job_events(job.id)) == [
        (None, S.SCHEDULED),
        (S.SCHEDULED, S.QUEUED),
    ]


async def test_fail_retry_then_dead(store: Store) -> None:
    job = await running_job(store)
    await store.fail_many([Failure(job.id, job.lease_token, "e1", utcnow() - timedelta(seconds=1))])
    await store.promote_due()
    (again,) = await claim_exactly(store, 1)
    await store.fail_many([Failure(again.id, again.lease_token, "e2", None)])

    events = await store.job_events(job.id)
    assert transitions(events) == [
        (None, S.QUEUED),
        (S.QUEUED, S.RUNNING),
        (S.RUNNING, S.RETRYING),
        (S.RETRYING, S.QUEUED),
        (S.QUEUED, S.RUNNING),
        (S.RUNNING, S.DEAD),
    ]
    assert [e.attempt for e in events if e.to_status == S.RUNNING] == [1, 2]


async def test_reap(store: Store) -> None:
    job = await running_job(store, lease_seconds=0.2)
    await wait_until(store.reap_expired, timeout=5, message="the lease to be reaped")
    events = await store.job_events(job.id)
    assert transitions(events)[-1] == (S.RUNNING, S.QUEUED)
    assert events[-1].attempt == 1


async def test_release(store: Store) -> None:
    job = await running_job(store)
    await store.release_many([Release(job.id, job.lease_token, reason="shutting down")])
    events = await store.job_events(job.id)
    assert transitions(events)[-1] == (S.RUNNING, S.QUEUED)


async def test_running_job_shows_its_claim(store: Store) -> None:
    job = await running_job(store, worker_id="w9")
    events = await store.job_events(job.id)
    assert transitions(events) == [(None, S.QUEUED), (S.QUEUED, S.RUNNING)]
    assert (events[1].worker_id, events[1].attempt, events[1].at) == ("w9", 1, job.started_at)
    await store.complete_many([Completion(job.id, job.lease_token, None)])
    after = await store.job_events(job.id)
    assert after[:2] == events  # ids and content keep their place once the attempt ends


async def test_cancel_running_keeps_its_claim(store: Store) -> None:
    job = await running_job(store, worker_id="w3")
    await store.cancel(job.id, reason="stop")
    events = await store.job_events(job.id)
    assert transitions(events) == [
        (None, S.QUEUED),
        (S.QUEUED, S.RUNNING),
        (S.RUNNING, S.CANCELLED),
    ]
    assert [e.worker_id for e in events[1:]] == ["w3", "w3"]


async def test_release_names_the_attempt_handed_back(store: Store) -> None:
    job = await running_job(store)
    await store.release_many([Release(job.id, job.lease_token, reason="shutting down")])
    (again,) = await claim_exactly(store, 1)
    assert again.attempt == 1
    events = await store.job_events(job.id)
    assert [(e.to_status, e.attempt) for e in events[1:]] == [
        (S.RUNNING, 1),
        (S.QUEUED, 1),
        (S.RUNNING, 1),
    ]


async def test_cancel(store: Store) -> None:
    job = await enqueue_one(store)
    await store.cancel(job.id, reason="operator said so")
    events = await store.job_events(job.id)
    assert transitions(events) == [(None, S.QUEUED), (S.QUEUED, S.CANCELLED)]
    # the reason is recorded: on the event, or as the job's last_error
    recorded = (events[-1].message or "") + ((await store.get_job(job.id)).last_error or "")
    assert "operator said so" in recorded


async def test_requeue_dead(store: Store) -> None:
    job = await dead_job(store)
    await store.requeue_dead(job.id)
    assert transitions(await store.job_events(job.id))[-2:] == [
        (S.RUNNING, S.DEAD),
        (S.DEAD, S.QUEUED),
    ]


async def test_fenced_writes_leave_no_event(store: Store) -> None:
    job = await running_job(store)
    await store.complete_many([Completion(job.id, job.lease_token + 1)])
    await store.fail_many([Failure(job.id, job.lease_token + 1, "x", None)])
    assert len(await store.job_events(job.id)) == 2


async def test_events_of_unknown_job(store: Store) -> None:
    with pytest.raises(JobNotFound):
        await store.job_events(uuid.uuid4())
