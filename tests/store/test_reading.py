from __future__ import annotations

import uuid

import pytest

from conveyor.domain.errors import JobNotFound
from conveyor.domain.job import Job, JobStatus
from conveyor.domain.records import Completion, Failure, JobFilter
from conveyor.store import Store
from tests.helpers import (
    claim_exactly,
    enqueue,
    enqueue_one,
    make_job,
    running_job,
    seconds_from_now,
)


async def test_get_job_unknown(store: Store) -> None:
    with pytest.raises(JobNotFound):
        await store.get_job(uuid.uuid4())


async def test_get_jobs_returns_those_that_exist(store: Store) -> None:
    a, b, _c = await enqueue(store, make_job(), make_job(), make_job())
    jobs = await store.get_jobs([b.id, uuid.uuid4(), a.id])
    assert sorted(j.id for j in jobs) == sorted([a.id, b.id])
    assert await store.get_jobs([]) == []


async def _walk(store: Store, flt: JobFilter, limit: int) -> list[list[Job]]:
    pages: list[list[Job]] = []
    cursor = None
    while True:
        page = await store.list_jobs(flt, limit=limit, cursor=cursor)
        assert len(page.jobs) <= limit
        pages.append(page.jobs)
        if page.next_cursor is None:
            return pages
        assert page.next_cursor == page.jobs[-1].id
        cursor = page.next_cursor
        assert len(pages) < 100, "pagination does not end"


async def test_keyset_pagination_walks_every_job_once_newest_first(store: Store) -> None:
    jobs: list[Job] = []
    for i in range(23):  # separate calls: distinct creation times
        jobs += await enqueue(store, make_job(payload={"i": i}))

    pages = await _walk(store, JobFilter(), limit=5)
    ids = [j.id for page in pages for j in page]
    assert len(ids) == len(set(ids)) == 23
    assert set(ids) == {j.id for j in jobs}
    assert ids == sorted(ids, reverse=True)
    assert ids == [j.id for j in reversed(jobs)]  # ids are UUIDv7: creation order
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]


async def test_last_full_page_has_no_cursor(store: Store) -> None:
    await enqueue(store, *[make_job() for _ in range(4)])
    page = await store.list_jobs(JobFilter(), limit=4)
    assert len(page.jobs) == 4
    assert page.next_cursor is None


async def test_pagination_with_a_filter(store: Store) -> None:
    wanted = await enqueue(store, *[make_job(queue="a") for _ in range(7)])
    await enqueue(store, *[make_job(queue="b") for _ in range(7)])
    pages = await _walk(store, JobFilter(queue="a"), limit=3)
    ids = [j.id for page in pages for j in page]
    assert sorted(ids, reverse=True) == ids
    assert set(ids) == {j.id for j in wanted}
    assert len(ids) == 7


async def test_cursor_returns_older_jobs_only(store: Store) -> None:
    jobs = await enqueue(store, *[make_job() for _ in range(5)])
    middle = sorted(j.id for j in jobs)[2]
    page = await store.list_jobs(JobFilter(), limit=50, cursor=middle)
    assert [j.id for j in page.jobs] == sorted((j.id for j in jobs if j.id < middle), reverse=True)
    assert page.next_cursor is None


async def _ids(store: Store, flt: JobFilter) -> set[uuid.UUID]:
    return {j.id for j in (await store.list_jobs(flt, limit=1000)).jobs}


async def test_filters(store: Store) -> None:
    email, sms, tagged, other_tenant = await enqueue(
        store,
        make_job("email.send", queue="mail", tenant="acme", tags=["urgent", "eu"]),
        make_job("sms.send", queue="mail", tenant="acme"),
        make_job("email.send", queue="bulk", tags=["eu"]),
        make_job("report", queue="bulk", tenant="globex", run_at=seconds_from_now(3600)),
    )
    running = await running_job(store, type="email.send", queue="other")

    assert await _ids(store, JobFilter()) == {
        email.id,
        sms.id,
        tagged.id,
        other_tenant.id,
        running.id,
    }
    assert await _ids(store, JobFilter(queue="mail")) == {email.id, sms.id}
    assert await _ids(store, JobFilter(type="email.send")) == {email.id, tagged.id, running.id}
    assert await _ids(store, JobFilter(tag="eu")) == {email.id, tagged.id}
    assert await _ids(store, JobFilter(tag="urgent")) == {email.id}
    assert await _ids(store, JobFilter(tag="e")) == set()  # a tag, not a substring
    assert await _ids(store, JobFilter(tenant="acme")) == {email.id, sms.id}
    assert await _ids(store, JobFilter(status=JobStatus.SCHEDULED)) == {other_tenant.id}
    assert await _ids(store, JobFilter(status=JobStatus.RUNNING)) == {running.id}
    assert await _ids(store, JobFilter(queue="bulk", type="email.send", tag="eu")) == {tagged.id}
    assert await _ids(store, JobFilter(queue="nope")) == set()


async def test_created_range_filter(store: Store) -> None:
    jobs: list[Job] = []
    for _ in range(6):  # separate transactions: distinct created_at
        jobs.append(await enqueue_one(store))
    cut_lo, cut_hi = jobs[1].created_at, jobs[4].created_at
    assert cut_lo < cut_hi

    after = await _ids(store, JobFilter(created_after=cut_lo))
    assert after == {j.id for j in jobs if j.created_at >= cut_lo}  # inclusive
    assert jobs[1].id in after
    before = await _ids(store, JobFilter(created_before=cut_hi))
    assert before == {j.id for j in jobs if j.created_at < cut_hi}  # exclusive
    assert jobs[4].id not in before
    both = await _ids(store, JobFilter(created_after=cut_lo, created_before=cut_hi))
    assert both == {j.id for j in jobs if cut_lo <= j.created_at < cut_hi}


async def test_count_by_queue_status(store: Store) -> None:
    assert await store.count_by_queue_status() == {}
    await enqueue(
        store,
        make_job(queue="a"),
        make_job(queue="a"),
        make_job(queue="a", run_at=seconds_from_now(3600)),
        make_job(queue="b"),
        make_job(queue="b"),
    )
    await claim_exactly(store, 1, ["b"])
    raw = await store.count_by_queue_status()
    got = {q: {JobStatus(s): n for s, n in by.items() if n} for q, by in raw.items()}
    assert got == {
        "a": {JobStatus.QUEUED: 2, JobStatus.SCHEDULED: 1},
        "b": {JobStatus.QUEUED: 1, JobStatus.RUNNING: 1},
    }


async def test_count_by_queue_status_counts_every_status(store: Store) -> None:
    # SQLite counts queued, running and the other jobs through three different indexes
    # (migration 0007): every status, in two queues, must still add up.
    await enqueue(store, *[make_job(queue=q) for q in ("x", "y") for _ in range(5)])
    await enqueue(store, make_job(queue="y", run_at=seconds_from_now(3600)))
    for q in ("x", "y"):
        done, retrying, dead, _running, cancelled = await claim_exactly(store, 5, [q])
        assert await store.complete_many([Completion(done.id, done.lease_token, None)])
        await store.fail_many(
            [
                Failure(retrying.id, retrying.lease_token, "again", seconds_from_now(3600)),
                Failure(dead.id, dead.lease_token, "fatal", None),
            ]
        )
        await store.cancel(cancelled.id)
    (queued,) = await enqueue(store, make_job(queue="x"))
    raw = await store.count_by_queue_status()
    got = {q: {JobStatus(s): n for s, n in by.items() if n} for q, by in raw.items()}
    each = {
        JobStatus.COMPLETED: 1,
        JobStatus.RETRYING: 1,
        JobStatus.DEAD: 1,
        JobStatus.RUNNING: 1,
        JobStatus.CANCELLED: 1,
    }
    assert got == {"x": {**each, JobStatus.QUEUED: 1}, "y": {**each, JobStatus.SCHEDULED: 1}}
    assert queued.status == JobStatus.QUEUED
