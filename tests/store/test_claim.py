from __future__ import annotations

import asyncio
from datetime import timedelta

from conveyor.domain.job import JobStatus
from conveyor.domain.records import Completion, Failure, QueueSettings, Release
from conveyor.store import Store
from tests.helpers import (
    assert_dt_close,
    claim_exactly,
    enqueue,
    enqueue_one,
    make_job,
    seconds_from_now,
    sleep_until,
    utcnow,
)


async def test_claim_takes_a_queued_job_under_a_lease(store: Store) -> None:
    job = await enqueue_one(store)
    before = utcnow()
    (claimed,) = await store.claim("worker-a", ["default"], 10, 30.0)

    assert claimed.id == job.id
    assert claimed.status == JobStatus.RUNNING
    assert claimed.attempt == job.attempt + 1 == 1
    assert claimed.lease_token == job.lease_token + 1
    assert claimed.worker_id == "worker-a"
    assert claimed.started_at is not None
    assert claimed.lease_expires_at is not None
    slack = timedelta(seconds=1)
    assert before - slack <= claimed.started_at <= utcnow() + slack
    assert_dt_close(claimed.lease_expires_at, claimed.started_at + timedelta(seconds=30), tol=1.0)
    assert await store.get_job(job.id) == claimed


async def test_claimed_jobs_are_the_stored_jobs_whatever_they_went_through(store: Store) -> None:
    # Both drivers read back only the columns a claim did not set itself and fill in the rest
    # (`_claimed_job` in sqlite.py and postgres.py): every field must still be the stored one,
    # also for a retry (last_error kept), a job requeued from the DLQ and a fractional lease.
    full = make_job(
        payload={"k": [1, 2], "s": "é"}, priority=5, max_retries=1, timeout=12.5,
        unique_key="u-1", tags=["a", "b"], tenant="t1",
    )  # fmt: skip
    retried, dead = await enqueue(store, full, make_job(max_retries=0))
    first = await claim_exactly(store, 2)
    await store.fail_many(
        [
            Failure(j.id, j.lease_token, f"boom {j.id}", None if j.id == dead.id else utcnow())
            for j in first
        ]
    )
    assert await store.promote_due() == 1
    await store.requeue_dead(dead.id, {"edited": True})
    await enqueue(store, make_job(run_at=utcnow() - timedelta(seconds=5)))
    # A lease of 3,053,447.5 us: stored rounded to even (3,053,448); timedelta(seconds=) gave 447.
    claimed = await store.claim("worker-x", ["default"], 10, 3.0534475)
    assert len(claimed) == 3
    assert {j.id: j for j in claimed} == {
        j.id: j for j in await store.get_jobs([j.id for j in claimed])
    }
    by_id = {j.id: j for j in claimed}
    assert by_id[retried.id].last_error == f"boom {retried.id}"
    assert by_id[retried.id].attempt == 2
    assert by_id[dead.id].payload == {"edited": True}


async def test_each_claim_hands_out_a_new_lease_token(store: Store) -> None:
    job = await enqueue_one(store)
    (first,) = await claim_exactly(store, 1)
    assert await store.release_many([Release(first.id, first.lease_token)]) == [job.id]
    (second,) = await claim_exactly(store, 1)
    assert second.lease_token == first.lease_token + 1


async def test_claim_order_is_priority_then_run_at_then_id(store: Store) -> None:
    soon = seconds_from_now(0.3)
    later = soon + timedelta(milliseconds=200)
    # Enqueued in this order, so ids ascend a < b < c < d < e.
    await enqueue(
        store,
        make_job(payload={"n": "a"}, run_at=later),
        make_job(payload={"n": "b"}, run_at=soon),
        make_job(payload={"n": "c"}, run_at=soon),
        make_job(payload={"n": "d"}, run_at=later, priority=5),
        make_job(payload={"n": "e"}, run_at=later, priority=-1),
    )
    await sleep_until(later)
    assert await store.promote_due() == 5

    claimed = await claim_exactly(store, 5)
    # d: highest priority; b, c: earlier run_at, tie broken by id; a; e: lowest priority.
    assert [j.payload["n"] for j in claimed] == ["d", "b", "c", "a", "e"]


async def test_claim_order_with_equal_run_at_follows_id(store: Store) -> None:
    jobs = await enqueue(store, *[make_job(payload={"i": i}) for i in range(10)])
    claimed = await claim_exactly(store, 10)
    # one batch: same run_at (or increasing), so id order = input order
    assert [j.id for j in claimed] == sorted(j.id for j in jobs)


async def test_claim_respects_limit(store: Store) -> None:
    await enqueue(store, *[make_job() for _ in range(5)])
    assert len(await store.claim("w", ["default"], 2, 30)) == 2
    assert len(await store.claim("w", ["default"], 2, 30)) == 2
    assert len(await store.claim("w", ["default"], 2, 30)) == 1
    assert await store.claim("w", ["default"], 2, 30) == []


async def test_claim_skips_scheduled_and_running_jobs(store: Store) -> None:
    await enqueue(store, make_job(run_at=seconds_from_now(3600)))
    ready = await enqueue_one(store)
    (claimed,) = await store.claim("w", ["default"], 10, 30)
    assert claimed.id == ready.id
    assert await store.claim("w", ["default"], 10, 30) == []


async def test_claim_only_from_the_given_queues(store: Store) -> None:
    a, b, _c = await enqueue(store, make_job(queue="a"), make_job(queue="b"), make_job(queue="c"))
    claimed = await store.claim("w", ["a", "b"], 10, 30)
    assert {j.id for j in claimed} == {a.id, b.id}
    assert await store.claim("w", ["a", "b"], 10, 30) == []


async def test_claim_skips_paused_queues(store: Store) -> None:
    job = await enqueue_one(store, queue="p")
    other = await enqueue_one(store, queue="open")
    await store.set_queue_settings(QueueSettings(name="p", paused=True))

    claimed = await store.claim("w", ["p", "open"], 10, 30)
    assert [j.id for j in claimed] == [other.id]
    assert (await store.get_job(job.id)).status == JobStatus.QUEUED

    await store.set_queue_settings(QueueSettings(name="p", paused=False))
    assert [j.id for j in await store.claim("w", ["p"], 10, 30)] == [job.id]


async def test_claim_respects_queue_concurrency(store: Store) -> None:
    await store.set_queue_settings(QueueSettings(name="limited", concurrency=2))
    await enqueue(store, *[make_job(queue="limited") for _ in range(5)])
    free = await enqueue_one(store, queue="free")

    first = await store.claim("w1", ["limited", "free"], 10, 30)
    assert len([j for j in first if j.queue == "limited"]) == 2
    assert free.id in {j.id for j in first}
    # the limit is global: another worker gets nothing while two are running
    assert await store.claim("w2", ["limited"], 10, 30) == []

    done = next(j for j in first if j.queue == "limited")
    assert await store.complete_many([Completion(done.id, done.lease_token)]) == [done.id]
    assert len(await store.claim("w2", ["limited"], 10, 30)) == 1
    assert await store.claim("w2", ["limited"], 10, 30) == []


async def test_two_concurrent_claimers_never_share_a_job(store: Store, store_factory) -> None:
    jobs = await enqueue(store, *[make_job() for _ in range(60)])
    other = await store_factory()

    claimed: list = []
    while True:
        a, b = await asyncio.gather(
            store.claim("wa", ["default"], 20, 30), other.claim("wb", ["default"], 20, 30)
        )
        assert not {j.id for j in a} & {j.id for j in b}
        if not a and not b:
            break
        claimed += a + b

    ids = [j.id for j in claimed]
    assert len(ids) == len(set(ids)) == 60
    assert set(ids) == {j.id for j in jobs}
    assert all(j.attempt == 1 for j in await store.get_jobs(ids))


async def test_claim_with_no_queued_jobs_returns_nothing(store: Store) -> None:
    assert await store.claim("w", ["default"], 10, 30) == []
