from __future__ import annotations

from conveyor.domain.job import JobStatus
from conveyor.store import Store
from tests.helpers import claim_exactly, enqueue, make_job, running_job, sleep_until, wait_until


async def test_reap_requeues_expired_leases_and_counts_the_attempt(store: Store) -> None:
    job = await running_job(store, worker_id="lost", lease_seconds=0.2)
    reaped = await wait_until(store.reap_expired, timeout=5, message="an expired lease")

    assert len(reaped) == 1
    r = reaped[0]
    assert (r.job_id, r.worker_id, r.attempt, r.new_status) == (
        job.id,
        "lost",
        1,
        JobStatus.QUEUED,
    )
    after = await store.get_job(job.id)
    assert after.status == JobStatus.QUEUED
    assert after.attempt == 1  # the lost attempt stays counted
    assert after.last_error is not None and "lease" in after.last_error.lower()
    assert after.lease_expires_at is None

    (again,) = await claim_exactly(store, 1)
    assert again.attempt == 2


async def test_reap_sends_the_last_attempt_to_dead(store: Store) -> None:
    job = await running_job(store, max_retries=0, lease_seconds=0.2)
    (r,) = await wait_until(store.reap_expired, timeout=5, message="an expired lease")
    assert (r.job_id, r.new_status) == (job.id, JobStatus.DEAD)
    dead = await store.get_job(job.id)
    assert dead.status == JobStatus.DEAD
    assert dead.finished_at is not None
    assert dead.last_error is not None and "lease" in dead.last_error.lower()


async def test_reap_dead_after_retries_exhausted(store: Store) -> None:
    """attempt > max_retries decides: with max_retries=1, the second lost attempt is the last."""
    job = await running_job(store, max_retries=1, lease_seconds=0.2)
    (r1,) = await wait_until(store.reap_expired, timeout=5, message="first expiry")
    assert r1.new_status == JobStatus.QUEUED
    (again,) = await claim_exactly(store, 1, lease_seconds=0.2)
    assert again.attempt == 2
    (r2,) = await wait_until(store.reap_expired, timeout=5, message="second expiry")
    assert (r2.job_id, r2.attempt, r2.new_status) == (job.id, 2, JobStatus.DEAD)


async def test_reap_leaves_live_leases_alone(store: Store) -> None:
    await enqueue(store, make_job(), make_job())
    (short,) = await claim_exactly(store, 1, lease_seconds=0.2)
    (long,) = await claim_exactly(store, 1, lease_seconds=600)
    await sleep_until(short.lease_expires_at)

    reaped = await wait_until(store.reap_expired, timeout=5, message="the short lease")
    assert [r.job_id for r in reaped] == [short.id]
    still = await store.get_job(long.id)
    assert (still.status, still.lease_token, still.worker_id) == (
        JobStatus.RUNNING,
        long.lease_token,
        "w1",
    )
    assert await store.reap_expired() == []


async def test_reap_respects_limit(store: Store) -> None:
    await enqueue(store, *[make_job() for _ in range(3)])
    jobs = await claim_exactly(store, 3, lease_seconds=0.2)
    await sleep_until(max(j.lease_expires_at for j in jobs))
    first = await wait_until(lambda: store.reap_expired(limit=2), timeout=5, message="expiry")
    assert len(first) == 2
    assert len(await store.reap_expired(limit=2)) == 1
