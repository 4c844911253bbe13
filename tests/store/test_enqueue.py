from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from conveyor.domain.errors import InvalidInput, QueueFull
from conveyor.domain.job import JobStatus, NewJob
from conveyor.domain.records import Completion, QueueSettings
from conveyor.store import Store
from tests.helpers import (
    assert_dt_close,
    claim_exactly,
    counts,
    enqueue,
    enqueue_one,
    make_job,
    running_job,
    seconds_from_now,
    transitions,
    utcnow,
)


async def test_enqueue_applies_defaults(store: Store) -> None:
    before = utcnow()
    job = await enqueue_one(store, type="email.send")
    after = utcnow()

    assert job.id.version == 7
    assert job.type == "email.send"
    assert job.queue == "default"
    assert job.payload == {}
    assert job.priority == 0
    assert job.status == JobStatus.QUEUED
    assert job.attempt == 0
    assert job.max_retries == 3
    assert job.timeout == 300.0
    assert job.unique_key is None
    assert job.tags == []
    assert job.tenant is None
    assert job.result is None
    assert job.last_error is None
    assert job.worker_id is None
    assert job.lease_expires_at is None
    assert job.started_at is None
    assert job.finished_at is None
    slack = timedelta(seconds=1)  # PostgreSQL's clock decides; same host, small skew allowed
    assert before - slack <= job.created_at <= after + slack
    assert before - slack <= job.run_at <= after + slack
    assert job.updated_at >= job.created_at
    assert await store.get_job(job.id) == job


async def test_enqueue_keeps_every_given_field(store: Store) -> None:
    job_id = uuid.UUID("01900000-0000-7000-8000-000000000001")
    new = NewJob(
        type="report.build",
        payload={"x": 1},
        queue="reports",
        priority=7,
        max_retries=5,
        timeout=12.5,
        unique_key="report-1",
        tags=["a", "b"],
        tenant="acme",
        id=job_id,
    )
    (job,) = await enqueue(store, new)
    assert job.id == job_id
    assert (job.type, job.payload, job.queue, job.priority) == (
        "report.build",
        {"x": 1},
        "reports",
        7,
    )
    assert (job.max_retries, job.timeout, job.unique_key) == (5, 12.5, "report-1")
    assert sorted(job.tags) == ["a", "b"]
    assert job.tenant == "acme"
    assert await store.get_job(job_id) == job


async def test_times_are_aware_utc(store: Store) -> None:
    job = await enqueue_one(store)
    for t in (job.created_at, job.run_at, job.updated_at):
        assert t.tzinfo is not None and t.utcoffset() == timedelta(0)


async def test_run_at_decides_queued_or_scheduled(store: Store) -> None:
    future = seconds_from_now(3600).replace(microsecond=0)
    past = utcnow() - timedelta(hours=1)
    now_job, past_job, future_job = await enqueue(
        store, make_job(), make_job(run_at=past), make_job(run_at=future)
    )
    assert now_job.status == JobStatus.QUEUED
    assert past_job.status == JobStatus.QUEUED
    assert future_job.status == JobStatus.SCHEDULED
    assert_dt_close(future_job.run_at, future)
    assert (await store.get_job(future_job.id)).status == JobStatus.SCHEDULED


async def test_enqueue_writes_a_creation_event(store: Store) -> None:
    queued, scheduled = await enqueue(store, make_job(), make_job(run_at=seconds_from_now(3600)))
    (ev,) = await store.job_events(queued.id)
    assert (ev.from_status, ev.to_status, ev.attempt) == (None, JobStatus.QUEUED, 0)
    assert ev.job_id == queued.id
    assert transitions(await store.job_events(scheduled.id)) == [(None, JobStatus.SCHEDULED)]


async def test_results_come_back_in_input_order(store: Store) -> None:
    new = [make_job(payload={"i": i}, priority=i % 3, queue=f"q{i % 2}") for i in range(20)]
    results = await store.enqueue_many(new)
    assert [r.job.payload["i"] for r in results] == list(range(20))
    assert len({r.job.id for r in results}) == 20
    assert all(r.created for r in results)


async def test_an_id_already_taken_is_refused_alone_and_in_a_batch(store: Store) -> None:
    (job,) = await enqueue(store, make_job(id=uuid.uuid4()))
    for batch in ([make_job(id=job.id)], [make_job(), make_job(id=job.id)]):
        with pytest.raises(InvalidInput):
            await store.enqueue_many(batch)
    assert (await store.get_job(job.id)).type == job.type
    assert sum((await counts(store, job.queue)).values()) == 1


async def test_enqueue_nothing(store: Store) -> None:
    assert await store.enqueue_many([]) == []


# -- unique_key ---------------------------------------------------------------------------


async def test_unique_key_returns_the_live_job(store: Store) -> None:
    (first,) = await store.enqueue_many([make_job(unique_key="k", payload={"n": 1})])
    assert first.created
    (second,) = await store.enqueue_many([make_job(unique_key="k", payload={"n": 2})])
    assert not second.created
    assert second.job.id == first.job.id
    assert second.job.payload == {"n": 1}
    assert await counts(store) == {JobStatus.QUEUED: 1}


async def test_unique_key_still_dedupes_while_running(store: Store) -> None:
    job = await running_job(store, unique_key="k")
    (dup,) = await store.enqueue_many([make_job(unique_key="k")])
    assert not dup.created
    assert dup.job.id == job.id
    assert dup.job.status == JobStatus.RUNNING


async def test_unique_key_still_dedupes_while_scheduled(store: Store) -> None:
    (job,) = await enqueue(store, make_job(unique_key="k", run_at=seconds_from_now(3600)))
    (dup,) = await store.enqueue_many([make_job(unique_key="k")])
    assert (dup.created, dup.job.id) == (False, job.id)


async def test_unique_key_free_again_after_completion(store: Store) -> None:
    job = await running_job(store, unique_key="k")
    assert await store.complete_many([Completion(job.id, job.lease_token)]) == [job.id]
    (again,) = await store.enqueue_many([make_job(unique_key="k")])
    assert again.created
    assert again.job.id != job.id
    assert again.job.status == JobStatus.QUEUED


async def test_unique_key_free_again_after_cancel(store: Store) -> None:
    job = await enqueue_one(store, unique_key="k")
    await store.cancel(job.id)
    (again,) = await store.enqueue_many([make_job(unique_key="k")])
    assert again.created
    assert again.job.id != job.id


async def test_unique_key_duplicates_inside_one_batch(store: Store) -> None:
    results = await store.enqueue_many(
        [make_job(unique_key="k", payload={"n": 0}), make_job(unique_key="k"), make_job()]
    )
    assert [r.created for r in results] == [True, False, True]
    assert results[1].job.id == results[0].job.id
    assert results[1].job.payload == {"n": 0}
    assert await counts(store) == {JobStatus.QUEUED: 2}
    assert len(await store.job_events(results[0].job.id)) == 1


async def test_different_unique_keys_do_not_collide(store: Store) -> None:
    results = await store.enqueue_many([make_job(unique_key="a"), make_job(unique_key="b")])
    assert all(r.created for r in results)
    assert results[0].job.id != results[1].job.id


# -- max_depth ----------------------------------------------------------------------------


async def test_queue_full_rejects_the_whole_batch(store: Store) -> None:
    await store.set_queue_settings(QueueSettings(name="small", max_depth=3))
    await enqueue(store, make_job(queue="small"), make_job(queue="small"))
    before = await store.count_by_queue_status()

    with pytest.raises(QueueFull):
        # "other" has no limit, but the batch is all-or-nothing: nothing of it is written.
        await store.enqueue_many(
            [make_job(queue="other"), make_job(queue="small"), make_job(queue="small")]
        )

    assert await store.count_by_queue_status() == before
    assert await counts(store, "other") == {}


async def test_queue_full_counts_waiting_jobs_but_not_running_ones(store: Store) -> None:
    await store.set_queue_settings(QueueSettings(name="small", max_depth=3))
    await enqueue(
        store,
        make_job(queue="small"),
        make_job(queue="small", run_at=seconds_from_now(3600)),  # scheduled counts
        make_job(queue="small"),
    )  # exactly at the limit is allowed
    with pytest.raises(QueueFull):
        await store.enqueue_many([make_job(queue="small")])

    await claim_exactly(store, 1, ["small"])  # running jobs do not count towards depth
    (job,) = await enqueue(store, make_job(queue="small"))
    assert job.status == JobStatus.QUEUED
    assert await counts(store, "small") == {
        JobStatus.QUEUED: 2,
        JobStatus.SCHEDULED: 1,
        JobStatus.RUNNING: 1,
    }


async def test_a_duplicate_submit_is_not_refused_by_a_queue_over_its_limit(
    store: Store,
) -> None:
    """A submit whose job already exists (its unique_key is live) adds nothing to the queue, so
    the queue's depth limit does not refuse it, even over the limit (lowered since, or
    overshot by concurrent submits): a client retrying a submit that succeeded gets the job,
    not a 429, on both stores."""
    await store.set_queue_settings(QueueSettings(name="small", max_depth=2))
    (kept,) = await enqueue(store, make_job(queue="small", unique_key="k"))
    await enqueue(store, make_job(queue="small"))
    await store.set_queue_settings(QueueSettings(name="small", max_depth=1))  # 2 > 1 now

    for submit in (
        [make_job(queue="small", unique_key="k")],  # one job (enqueue_one)
        [make_job(queue="small", unique_key="k"), make_job(queue="other")],
    ):
        results = await store.enqueue_many(submit)
        assert (results[0].created, results[0].job.id) == (False, kept.id)
    with pytest.raises(QueueFull):  # a new job is still refused
        await store.enqueue_many([make_job(queue="small", unique_key="k2")])
    assert await counts(store, "small") == {JobStatus.QUEUED: 2}


async def test_enqueue_recovers_when_its_connection_dies(store: Store, backend: str) -> None:
    if backend != "postgres":
        pytest.skip("PostgreSQL-only: the enqueue path keeps one pooled connection")
    from conveyor.domain.errors import StoreUnavailable
    from conveyor.store.postgres import PostgresStore

    assert isinstance(store, PostgresStore)
    await enqueue_one(store, type="before")
    async with store.enqueue_conn.acquire() as conn:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
    assert await store.pool.fetchval("SELECT pg_terminate_backend($1)", pid)
    outcomes = []
    for _ in range(2):  # the call that finds the dead socket may fail; the next must not
        try:
            outcomes.append((await enqueue_one(store, type="after")).type)
        except StoreUnavailable:
            outcomes.append("unavailable")
    assert outcomes[-1] == "after"
    async with store.enqueue_conn.acquire() as conn:
        assert await conn.fetchval("SELECT pg_backend_pid()") != pid
