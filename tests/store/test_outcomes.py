"""What a worker reports back: complete, fail, release, heartbeat, and the fencing rule that
a stale lease token (reaped lease, cancelled job) changes nothing."""

from __future__ import annotations

from datetime import timedelta

from conveyor.domain.job import JobStatus
from conveyor.domain.records import Completion, Failure, Lease, Release, WorkerInfo
from conveyor.store import Store
from tests.helpers import (
    assert_dt_close,
    claim_exactly,
    enqueue,
    enqueue_one,
    make_job,
    running_job,
    seconds_from_now,
    sleep_until,
    utcnow,
    wait_until,
)

# -- complete -----------------------------------------------------------------------------


async def test_complete_records_result_and_finish_time(store: Store) -> None:
    job = await running_job(store)
    applied = await store.complete_many([Completion(job.id, job.lease_token, {"ok": True})])
    assert applied == [job.id]

    done = await store.get_job(job.id)
    assert done.status == JobStatus.COMPLETED
    assert done.result == {"ok": True}
    assert done.finished_at is not None
    assert done.started_at is not None
    assert done.finished_at >= done.started_at
    assert done.attempt == 1


async def test_complete_many_applies_only_matching_leases(store: Store) -> None:
    await enqueue(store, *[make_job() for _ in range(3)])
    a, b, c = await claim_exactly(store, 3)
    applied = await store.complete_many(
        [
            Completion(a.id, a.lease_token, 1),
            Completion(b.id, b.lease_token + 1, 2),  # wrong token
            Completion(c.id, c.lease_token, 3),
        ]
    )
    assert sorted(applied) == sorted([a.id, c.id])
    assert (await store.get_job(b.id)).status == JobStatus.RUNNING
    assert (await store.get_job(c.id)).result == 3


async def test_complete_twice_applies_once(store: Store) -> None:
    job = await running_job(store)
    assert await store.complete_many([Completion(job.id, job.lease_token, "first")]) == [job.id]
    assert await store.complete_many([Completion(job.id, job.lease_token, "second")]) == []
    assert (await store.get_job(job.id)).result == "first"


async def test_complete_of_a_queued_job_does_nothing(store: Store) -> None:
    job = await enqueue_one(store)
    assert await store.complete_many([Completion(job.id, job.lease_token + 1)]) == []
    assert (await store.get_job(job.id)).status == JobStatus.QUEUED


async def test_empty_batches_are_fine(store: Store) -> None:
    assert await store.complete_many([]) == []
    assert await store.fail_many([]) == []
    assert await store.release_many([]) == []
    assert await store.heartbeat("w1", [], 30) == []


# -- fail ---------------------------------------------------------------------------------


async def test_fail_with_retry_at_goes_retrying(store: Store) -> None:
    job = await running_job(store)
    retry_at = seconds_from_now(60).replace(microsecond=0)
    applied = await store.fail_many([Failure(job.id, job.lease_token, "Traceback: boom", retry_at)])
    assert applied == [job.id]

    failed = await store.get_job(job.id)
    assert failed.status == JobStatus.RETRYING
    assert_dt_close(failed.run_at, retry_at)
    assert failed.last_error == "Traceback: boom"
    assert failed.lease_expires_at is None
    assert failed.finished_at is None
    assert failed.attempt == 1
    # retrying is not claimable before its time
    assert await store.claim("w1", ["default"], 10, 30) == []


async def test_fail_without_retry_goes_dead(store: Store) -> None:
    job = await running_job(store)
    assert await store.fail_many([Failure(job.id, job.lease_token, "fatal", None)]) == [job.id]
    dead = await store.get_job(job.id)
    assert dead.status == JobStatus.DEAD
    assert dead.last_error == "fatal"
    assert dead.finished_at is not None
    assert dead.lease_expires_at is None


async def test_fail_many_mixes_retry_and_dead(store: Store) -> None:
    await enqueue(store, make_job(), make_job())
    a, b = await claim_exactly(store, 2)
    applied = await store.fail_many(
        [
            Failure(a.id, a.lease_token, "e1", seconds_from_now(60)),
            Failure(b.id, b.lease_token, "e2", None),
        ]
    )
    assert sorted(applied) == sorted([a.id, b.id])
    assert (await store.get_job(a.id)).status == JobStatus.RETRYING
    assert (await store.get_job(b.id)).status == JobStatus.DEAD


async def test_retried_job_runs_again_as_next_attempt(store: Store) -> None:
    job = await running_job(store)
    retry_at = utcnow() - timedelta(seconds=1)
    await store.fail_many([Failure(job.id, job.lease_token, "e", retry_at)])
    assert await store.promote_due() == 1
    (again,) = await claim_exactly(store, 1)
    assert again.id == job.id
    assert again.attempt == 2
    assert again.lease_token == job.lease_token + 1


# -- promote_due --------------------------------------------------------------------------


async def test_promote_due_moves_only_due_jobs(store: Store) -> None:
    soon = seconds_from_now(0.3)
    due_scheduled, future_scheduled, _, _ = await enqueue(
        store,
        make_job(run_at=soon),
        make_job(run_at=seconds_from_now(3600)),
        make_job(),
        make_job(),
    )
    a, b = await claim_exactly(store, 2)
    await store.fail_many(
        [
            Failure(a.id, a.lease_token, "e", utcnow() - timedelta(seconds=1)),  # due
            Failure(b.id, b.lease_token, "e", seconds_from_now(3600)),  # not due
        ]
    )
    await sleep_until(soon)

    assert await store.promote_due() == 2
    status = {
        j.id: j.status
        for j in await store.get_jobs([due_scheduled.id, future_scheduled.id, a.id, b.id])
    }
    assert status == {
        due_scheduled.id: JobStatus.QUEUED,
        future_scheduled.id: JobStatus.SCHEDULED,
        a.id: JobStatus.QUEUED,
        b.id: JobStatus.RETRYING,
    }
    assert await store.promote_due() == 0


async def test_promote_due_respects_limit(store: Store) -> None:
    soon = seconds_from_now(0.2)
    await enqueue(store, *[make_job(run_at=soon) for _ in range(5)])
    await sleep_until(soon)
    assert await store.promote_due(limit=3) == 3
    assert await store.promote_due(limit=3) == 2
    assert len(await store.claim("w", ["default"], 10, 30)) == 5


# -- release ------------------------------------------------------------------------------


async def test_release_requeues_without_charging_the_attempt(store: Store) -> None:
    job = await running_job(store)
    assert job.attempt == 1
    assert await store.release_many([Release(job.id, job.lease_token)]) == [job.id]

    released = await store.get_job(job.id)
    assert released.status == JobStatus.QUEUED
    assert released.attempt == 0
    assert released.lease_expires_at is None

    (again,) = await claim_exactly(store, 1)
    assert again.attempt == 1


async def test_release_with_run_at_schedules(store: Store) -> None:
    job = await running_job(store)
    run_at = seconds_from_now(3600).replace(microsecond=0)
    applied = await store.release_many([Release(job.id, job.lease_token, run_at, "breaker open")])
    assert applied == [job.id]
    released = await store.get_job(job.id)
    assert released.status == JobStatus.SCHEDULED
    assert_dt_close(released.run_at, run_at)
    assert released.attempt == 0
    assert await store.claim("w1", ["default"], 10, 30) == []


# -- heartbeat ----------------------------------------------------------------------------


async def test_heartbeat_extends_the_lease(store: Store) -> None:
    job = await running_job(store, lease_seconds=5)
    held = await store.heartbeat("w1", [Lease(job.id, job.lease_token)], 600)
    assert held == [job.id]
    extended = await store.get_job(job.id)
    assert extended.lease_expires_at is not None
    assert extended.lease_expires_at > utcnow() + timedelta(seconds=500)
    assert extended.status == JobStatus.RUNNING


async def test_heartbeat_touches_the_worker(store: Store) -> None:
    now = utcnow()
    info = WorkerInfo("w1", "host", 1, ["default"], 4, started_at=now, last_seen_at=now)
    await store.register_worker(info)
    (before,) = await store.list_workers()
    job = await running_job(store, worker_id="w1")

    async def touched() -> bool:
        await store.heartbeat("w1", [Lease(job.id, job.lease_token)], 30)
        (worker,) = await store.list_workers()
        return worker.last_seen_at > before.last_seen_at

    await wait_until(touched, timeout=5, message="heartbeat to advance last_seen_at")


async def test_heartbeat_returns_only_held_leases(store: Store) -> None:
    await enqueue(store, make_job(), make_job())
    a, b = await claim_exactly(store, 2)
    held = await store.heartbeat(
        "w1", [Lease(a.id, a.lease_token), Lease(b.id, b.lease_token + 5)], 30
    )
    assert held == [a.id]


# -- fencing ------------------------------------------------------------------------------


async def _reaped_and_reclaimed(store: Store):
    """A job whose first lease was reaped and which was claimed again: (stale, current)."""
    stale = await running_job(store, worker_id="old", lease_seconds=0.2)
    await wait_until(store.reap_expired, timeout=5, message="the lease to be reaped")
    (current,) = await claim_exactly(store, 1, worker_id="new")
    assert current.id == stale.id
    assert current.lease_token != stale.lease_token
    return stale, current


async def test_stale_lease_cannot_complete(store: Store) -> None:
    stale, current = await _reaped_and_reclaimed(store)
    assert await store.complete_many([Completion(stale.id, stale.lease_token, "late")]) == []
    job = await store.get_job(stale.id)
    assert job.status == JobStatus.RUNNING
    assert (job.worker_id, job.lease_token, job.result) == ("new", current.lease_token, None)
    # the current holder still can
    assert await store.complete_many([Completion(current.id, current.lease_token, "ok")]) == [
        current.id
    ]


async def test_stale_lease_cannot_fail(store: Store) -> None:
    stale, current = await _reaped_and_reclaimed(store)
    assert await store.fail_many([Failure(stale.id, stale.lease_token, "late", None)]) == []
    job = await store.get_job(stale.id)
    assert (job.status, job.lease_token) == (JobStatus.RUNNING, current.lease_token)


async def test_stale_lease_cannot_release(store: Store) -> None:
    stale, current = await _reaped_and_reclaimed(store)
    assert await store.release_many([Release(stale.id, stale.lease_token)]) == []
    job = await store.get_job(stale.id)
    assert (job.status, job.attempt) == (JobStatus.RUNNING, current.attempt)


async def test_stale_lease_cannot_heartbeat(store: Store) -> None:
    stale, current = await _reaped_and_reclaimed(store)
    assert await store.heartbeat("old", [Lease(stale.id, stale.lease_token)], 600) == []
    job = await store.get_job(stale.id)
    assert job.lease_expires_at == current.lease_expires_at


async def test_cancelled_running_job_is_fenced(store: Store) -> None:
    job = await running_job(store)
    await store.cancel(job.id)
    assert await store.heartbeat("w1", [Lease(job.id, job.lease_token)], 30) == []
    assert await store.complete_many([Completion(job.id, job.lease_token, "x")]) == []
    assert await store.fail_many([Failure(job.id, job.lease_token, "x", None)]) == []
    assert await store.release_many([Release(job.id, job.lease_token)]) == []
    after = await store.get_job(job.id)
    assert after.status == JobStatus.CANCELLED
    assert after.result is None
