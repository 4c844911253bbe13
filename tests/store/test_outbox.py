"""The outbox (issue 15, migration 0006): a store opened with publish_events records every
lifecycle transition in the transaction of the change, with the job as it is after it; a store
opened without writes nothing."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest_asyncio

from conveyor.domain.events import OutboxRow, event_name, is_promotion
from conveyor.domain.job import JobStatus
from conveyor.domain.records import Completion, Failure, Release, Schedule
from conveyor.store import Store, open_store
from tests.helpers import (
    claim_exactly,
    enqueue,
    enqueue_one,
    make_job,
    seconds_from_now,
    utcnow,
    wait_until,
)


@pytest_asyncio.fixture
async def publishing(store_url: str, store: Store) -> AsyncIterator[Store]:
    """A store on the same (migrated) database that publishes events."""
    s = open_store(store_url, publish_events=True)
    await s.connect()
    try:
        yield s
    finally:
        await s.close()


async def _events(store: Store) -> dict[uuid.UUID, list[OutboxRow]]:
    """Every outbox row, by job, in order."""
    by_job: dict[uuid.UUID, list[OutboxRow]] = {}
    for row in await store.outbox_pending(10_000):
        by_job.setdefault(row.job.id, []).append(row)
    return by_job


def _names(rows: list[OutboxRow]) -> list[str]:
    """Event names; a promotion's row (recorded for the Kafka transport's dispatch, never
    published as an event) shows as "(promoted)"."""
    return [
        "(promoted)"
        if is_promotion(r.from_status, r.job.status)
        else event_name(r.from_status, r.job.status)
        for r in rows
    ]


async def _every_transition(s: Store) -> dict[str, uuid.UUID]:
    """Drives one job through each transition the outbox records; returns them by story."""
    jobs: dict[str, uuid.UUID] = {}

    # created -> started -> retrying -> (promoted: a dispatch, no event) -> started -> completed
    done = await enqueue_one(s, payload={"n": 1}, max_retries=1)
    jobs["done"] = done.id
    (c,) = await claim_exactly(s, 1)
    assert await s.fail_many([Failure(c.id, c.lease_token, "boom", utcnow())]) == [c.id]
    assert await wait_until(lambda: s.promote_due(), message="the retry to come due") == 1
    (c,) = await claim_exactly(s, 1)
    assert await s.complete_many([Completion(c.id, c.lease_token, {"ok": True})]) == [c.id]

    # created (waiting) -> cancelled
    later = await enqueue_one(s, run_at=seconds_from_now(3600))
    jobs["cancelled"] = later.id
    await s.cancel(later.id, "no longer needed")

    # created -> started -> dead -> requeued
    dead = await enqueue_one(s, max_retries=0)
    jobs["dead"] = dead.id
    (c,) = await claim_exactly(s, 1)
    assert await s.fail_many([Failure(c.id, c.lease_token, "fatal", None)]) == [c.id]
    await s.requeue_dead(dead.id)
    (c,) = await claim_exactly(s, 1)  # started again, left running

    # created -> started -> scheduled (released for later) -> ... -> requeued (released now)
    rel = (await enqueue(s, make_job(queue="rel")))[0]
    jobs["released"] = rel.id
    (c,) = await claim_exactly(s, 1, ["rel"])
    await s.release_many([Release(c.id, c.lease_token, utcnow() + timedelta(seconds=0.05))])
    assert await wait_until(lambda: s.promote_due(), message="the release to come due") == 1
    (c,) = await claim_exactly(s, 1, ["rel"])
    await s.release_many([Release(c.id, c.lease_token)])

    # created -> started -> requeued (its lease expired and the reaper took it back)
    lost = (await enqueue(s, make_job(queue="lost")))[0]
    jobs["reaped"] = lost.id
    await claim_exactly(s, 1, ["lost"], lease_seconds=0.1)
    assert await wait_until(lambda: s.reap_expired(), message="the lease to expire")

    # a cron fire creates its job in the fire's transaction
    now = utcnow()
    await s.upsert_schedule(Schedule("tick", "* * * * *", "UTC", "t", next_run_at=now))
    fired = await s.fire_schedule("tick", now, now + timedelta(minutes=1), make_job("t"))
    assert fired is not None
    jobs["fired"] = fired.id
    return jobs


async def test_every_transition_writes_its_outbox_row(publishing: Store) -> None:
    jobs = await _every_transition(publishing)
    events = await _events(publishing)

    assert set(events) == set(jobs.values())
    assert _names(events[jobs["done"]]) == [
        "created", "started", "retrying", "(promoted)", "started", "completed"
    ]  # fmt: skip
    assert _names(events[jobs["cancelled"]]) == ["created", "cancelled"]
    assert _names(events[jobs["dead"]]) == ["created", "started", "dead", "requeued", "started"]
    assert _names(events[jobs["released"]]) == [
        "created", "started", "scheduled", "(promoted)", "started", "requeued"
    ]  # fmt: skip
    assert _names(events[jobs["reaped"]]) == ["created", "started", "requeued"]
    assert _names(events[jobs["fired"]]) == ["created"]

    # Each row holds the job as it was right after its transition.
    done = events[jobs["done"]]
    assert [r.job.status for r in done] == [
        JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.RETRYING, JobStatus.QUEUED,
        JobStatus.RUNNING, JobStatus.COMPLETED,
    ]  # fmt: skip
    assert [r.job.attempt for r in done] == [0, 1, 1, 1, 2, 2]
    assert done[2].job.last_error == "boom"
    assert done[0].job.payload == {"n": 1}
    assert done[-1].job == await publishing.get_job(jobs["done"])  # the store's job, exactly
    assert done[-1].job.result == {"ok": True}
    assert events[jobs["cancelled"]][0].job.status is JobStatus.SCHEDULED
    assert events[jobs["cancelled"]][1].from_status is JobStatus.SCHEDULED
    assert events[jobs["reaped"]][-1].job.last_error is not None

    # Rows are numbered in the order they were written: a job's transitions in order.
    seqs = [r.seq for rows in events.values() for r in rows]
    for rows in events.values():
        assert [r.seq for r in rows] == sorted(r.seq for r in rows)
    assert len(set(seqs)) == len(seqs)


async def test_a_completion_batch_records_only_the_completions_that_applied(
    publishing: Store,
) -> None:
    await enqueue(publishing, make_job(), make_job())
    a, b = await claim_exactly(publishing, 2)
    applied = await publishing.complete_many(
        [Completion(a.id, a.lease_token, 1), Completion(b.id, b.lease_token + 1, 2)]
    )
    assert applied == [a.id]
    events = await _events(publishing)
    assert _names(events[a.id]) == ["created", "started", "completed"]
    assert _names(events[b.id]) == ["created", "started"]


async def test_a_store_without_publishing_writes_no_outbox_row(
    store: Store, publishing: Store
) -> None:
    assert not store.publishes_events and publishing.publishes_events
    await _every_transition(store)
    assert await publishing.outbox_pending(100) == []


async def test_outbox_pending_pages_oldest_first_and_delete_removes(publishing: Store) -> None:
    made = await enqueue(publishing, *(make_job(payload={"i": i}) for i in range(5)))
    first = await publishing.outbox_pending(3)
    assert [r.job.id for r in first] == [j.id for j in made[:3]]
    await publishing.outbox_delete([r.seq for r in first])
    rest = await publishing.outbox_pending(10)
    assert [r.job.id for r in rest] == [j.id for j in made[3:]]
    assert all(r.seq > first[-1].seq for r in rest)
    await publishing.outbox_delete([r.seq for r in rest])
    await publishing.outbox_delete([])
    assert await publishing.outbox_pending(10) == []
    # Numbers are never handed out twice, even once the table is empty.
    (again,) = await enqueue(publishing, make_job())
    (row,) = await publishing.outbox_pending(10)
    assert row.seq > rest[-1].seq and row.job.id == again.id


async def test_outbox_next_deletes_the_last_round_and_reads_the_next(publishing: Store) -> None:
    made = await enqueue(publishing, *(make_job(payload={"i": i}) for i in range(5)))
    first = await publishing.outbox_next([], 3)
    assert [r.job.id for r in first] == [j.id for j in made[:3]]
    second = await publishing.outbox_next([r.seq for r in first], 3)
    assert [r.job.id for r in second] == [j.id for j in made[3:]]
    assert await publishing.outbox_pending(10) == second  # the first round is gone
    assert await publishing.outbox_next([r.seq for r in second], 3) == []
    assert await publishing.outbox_pending(10) == []


async def test_wait_for_outbox_wakes_on_ready_jobs_without_taking_a_workers_wake(
    publishing: Store, store: Store
) -> None:
    """The relay's wait ends when another store object commits a ready job, and a worker's
    wait on that queue still ends too: each has its own latch."""
    queue = f"q{uuid.uuid4().hex[:8]}"
    await publishing.wait_for_outbox(0.01)  # listening from here on
    await publishing.wait_for_jobs([queue], 0.01)
    await enqueue(store, make_job(queue=queue))
    t0 = time.monotonic()
    await publishing.wait_for_outbox(10)
    await publishing.wait_for_jobs([queue], 10)
    assert time.monotonic() - t0 < 5  # woken (or latched), not the 10 s timeouts
