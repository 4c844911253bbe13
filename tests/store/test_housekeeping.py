from __future__ import annotations

from datetime import timedelta

import pytest

from conveyor.domain.errors import JobNotFound
from conveyor.domain.job import JobStatus
from conveyor.store import Store
from tests.helpers import completed_job, counts, dead_job, enqueue_one, utcnow, wait_until


async def test_prune_finished_deletes_only_that_status_before_the_cutoff(store: Store) -> None:
    old_done = await completed_job(store)
    old_dead = await dead_job(store)
    old_cancelled = await store.cancel((await enqueue_one(store)).id)
    assert old_done.finished_at is not None
    cutoff = max(old_done.finished_at, old_dead.finished_at, old_cancelled.finished_at)
    cutoff += timedelta(microseconds=1)
    # finish another job strictly after the cutoff (same clock as the store's)
    await wait_until(lambda: utcnow() > cutoff, timeout=5)
    new_done = await completed_job(store)
    assert new_done.finished_at is not None and new_done.finished_at >= cutoff
    live = await enqueue_one(store)

    assert await store.prune_finished(JobStatus.COMPLETED, cutoff) == 1
    with pytest.raises(JobNotFound):
        await store.get_job(old_done.id)
    with pytest.raises(JobNotFound):
        await store.job_events(old_done.id)
    survivors = await store.get_jobs([new_done.id, old_dead.id, old_cancelled.id, live.id])
    assert len(survivors) == 4
    assert len(await store.job_events(new_done.id)) == 3

    assert await store.prune_finished(JobStatus.CANCELLED, cutoff) == 1
    assert await store.prune_finished(JobStatus.DEAD, cutoff) == 1
    assert await counts(store) == {JobStatus.COMPLETED: 1, JobStatus.QUEUED: 1}


async def test_prune_finished_before_everything_deletes_nothing(store: Store) -> None:
    done = await completed_job(store)
    assert await store.prune_finished(JobStatus.COMPLETED, utcnow() - timedelta(hours=1)) == 0
    assert (await store.get_job(done.id)).status == JobStatus.COMPLETED
