"""The dashboard's throughput history (conveyor.service.throughput): the bucket layout alone,
then the reader on both real stores, closed minutes served from memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from conveyor.domain.job import JobStatus
from conveyor.service.throughput import ThroughputHistory, ThroughputPoint, bucket_start, points
from conveyor.store import Store
from tests.helpers import completed_job, dead_job, utcnow

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_points_fill_every_bucket_oldest_first() -> None:
    counts = {
        T0 + timedelta(minutes=1): {JobStatus.COMPLETED: 3, JobStatus.CANCELLED: 9},
        T0 + timedelta(minutes=2): {JobStatus.DEAD: 2},
        T0 + timedelta(minutes=7): {JobStatus.COMPLETED: 5},  # outside the window
    }
    assert points(counts, T0, 3, 60) == [
        ThroughputPoint(T0, 0, 0),
        ThroughputPoint(T0 + timedelta(minutes=1), 3, 0),
        ThroughputPoint(T0 + timedelta(minutes=2), 0, 2),
    ]


def test_bucket_start_aligns_to_the_epoch() -> None:
    assert bucket_start(T0 + timedelta(seconds=59, microseconds=999), 60) == T0
    assert bucket_start(T0 + timedelta(seconds=60), 60) == T0 + timedelta(minutes=1)


async def test_history_reads_the_store_and_keeps_closed_minutes(store: Store) -> None:
    await completed_job(store)
    await dead_job(store)
    now = utcnow()
    history = ThroughputHistory(store)
    got = await history.read(now)
    assert len(got) == 60 and got[-1].at == bucket_start(now, 60)
    assert (sum(p.completed for p in got), sum(p.dead for p in got)) == (1, 1)

    # A job finishing now shows on the next read: the current minute is always re-read.
    await completed_job(store)
    assert sum(p.completed for p in await history.read(utcnow())) == 2

    # Minutes before the previous one are closed: they come from memory, so jobs retention
    # pruned since still count, where a fresh reader finds none.
    assert sum(p.completed for p in await history.read(now + timedelta(minutes=2))) == 2
    await store.prune_finished(JobStatus.COMPLETED, utcnow() + timedelta(seconds=1))
    later = now + timedelta(minutes=3)
    assert sum(p.completed for p in await history.read(later)) == 2
    assert sum(p.completed for p in await ThroughputHistory(store).read(later)) == 0

    # An hour on, they have left the window.
    assert sum(p.completed for p in await history.read(later + timedelta(hours=1))) == 0
