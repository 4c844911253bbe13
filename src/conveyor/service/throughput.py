"""The dashboard's throughput history: jobs finished per minute over the last hour, read from
the store, so a restarted server shows the hour before it started.

The counts come from the finished_at that every finish stamps anyway (Store.count_finished),
so the hot path writes nothing for them. Closed minutes are kept in memory between calls: a
dashboard refreshing every 2 s re-reads only the minute in progress and the one before it (a
finish stamped just before a minute closed may commit just after), not the whole hour.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from conveyor.domain.job import JobStatus
from conveyor.store.base import Store

BUCKETS = 60
BUCKET_SECONDS = 60


@dataclass(frozen=True, slots=True)
class ThroughputPoint:
    at: datetime  # the bucket's start
    completed: int
    dead: int


def bucket_start(at: datetime, width: int) -> datetime:
    return datetime.fromtimestamp(int(at.timestamp()) // width * width, UTC)


def points(
    counts: Mapping[datetime, Mapping[JobStatus, int]], first: datetime, buckets: int, width: int
) -> list[ThroughputPoint]:
    """`buckets` consecutive points from `first`, oldest first, zeros where nothing finished."""
    out = []
    for i in range(buckets):
        at = first + timedelta(seconds=i * width)
        by_status = counts.get(at, {})
        out.append(
            ThroughputPoint(
                at, by_status.get(JobStatus.COMPLETED, 0), by_status.get(JobStatus.DEAD, 0)
            )
        )
    return out


class ThroughputHistory:
    """One per service; safe to call concurrently (a race only re-reads the same minutes)."""

    def __init__(self, store: Store, *, buckets: int = BUCKETS, width: int = BUCKET_SECONDS):
        self.store = store
        self.buckets = buckets
        self.width = width
        self._counts: dict[datetime, dict[JobStatus, int]] = {}
        self._reread_from: datetime | None = None

    async def read(self, now: datetime) -> list[ThroughputPoint]:
        current = bucket_start(now, self.width)
        first = current - timedelta(seconds=(self.buckets - 1) * self.width)
        since = first if self._reread_from is None else max(first, self._reread_from)
        fresh: dict[datetime, dict[JobStatus, int]] = {}
        for c in await self.store.count_finished(since, self.width):
            fresh.setdefault(c.at, {})[c.status] = c.count
        kept = {at: n for at, n in self._counts.items() if first <= at < since}
        self._counts = kept | fresh
        self._reread_from = current - timedelta(seconds=self.width)
        return points(self._counts, first, self.buckets, self.width)
