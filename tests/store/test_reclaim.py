"""reclaim: a worker whose claim failed on the way back takes its orphaned jobs again (issue 19
#2). Run against both stores."""

from __future__ import annotations

from datetime import timedelta

from conveyor.domain.job import JobStatus
from conveyor.domain.records import Completion, Release
from conveyor.store import Store
from tests.helpers import assert_dt_close, claim_exactly, enqueue, make_job, utcnow


async def test_reclaim_re_leases_the_jobs_a_worker_does_not_hold(store: Store) -> None:
    await enqueue(store, *[make_job(priority=p) for p in (3, 2, 1)], make_job(queue="other"))
    held, lost_a, lost_b = await claim_exactly(store, 3, worker_id="w1", lease_seconds=5)
    (elsewhere,) = await claim_exactly(store, 1, ["other"], worker_id="w2")

    before = utcnow()
    got = await store.reclaim("w1", [held.id], 60)

    assert [j.id for j in got] == [lost_a.id, lost_b.id]  # claim order
    for old, new in zip((lost_a, lost_b), got, strict=True):
        assert new.status == JobStatus.RUNNING
        assert new.worker_id == "w1"
        assert new.attempt == old.attempt == 1  # the claim's attempt, not a second one
        assert new.lease_token == old.lease_token + 1
        assert_dt_close(new.lease_expires_at, before + timedelta(seconds=60), tol=2.0)
        assert await store.get_job(old.id) == new
    # The held job and the other worker's job are untouched.
    assert await store.get_job(held.id) == held
    assert await store.get_job(elsewhere.id) == elsewhere


async def test_reclaim_fences_out_the_lost_lease_token(store: Store) -> None:
    await enqueue(store, make_job())
    (lost,) = await claim_exactly(store, 1, worker_id="w1")
    (mine,) = await store.reclaim("w1", [], 30)

    # Whoever quotes the claim's token (a server handing back an abandoned fetch) changes nothing.
    assert await store.release_many([Release(lost.id, lost.lease_token)]) == []
    assert await store.complete_many([Completion(lost.id, lost.lease_token)]) == []
    assert await store.complete_many([Completion(mine.id, mine.lease_token, "ok")]) == [mine.id]
    done = await store.get_job(mine.id)
    assert (done.status, done.attempt) == (JobStatus.COMPLETED, 1)


async def test_reclaim_repeats_safely_and_ignores_finished_jobs(store: Store) -> None:
    await enqueue(store, make_job(), make_job())
    first, second = await claim_exactly(store, 2, worker_id="w1")
    assert await store.complete_many([Completion(first.id, first.lease_token)]) == [first.id]

    (once,) = await store.reclaim("w1", [], 30)
    (again,) = await store.reclaim("w1", [], 30)  # its answer was lost too: ask again

    assert once.id == again.id == second.id
    assert again.lease_token == once.lease_token + 1
    assert await store.reclaim("nobody", [], 30) == []
    # Handing the reclaimed job back does not charge the attempt its claim counted.
    assert await store.release_many([Release(again.id, again.lease_token)]) == [again.id]
    back = await store.get_job(again.id)
    assert (back.status, back.attempt) == (JobStatus.QUEUED, 0)
