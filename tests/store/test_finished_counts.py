"""count_finished: the dashboard's throughput history, read from the store (so it survives a
restart) at no cost to the hot path: it reads the finished_at every finish already stamps."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from conveyor.domain.job import Job, JobStatus
from conveyor.store import Store, open_store
from conveyor.store.postgres import PostgresStore
from conveyor.store.postgres import Q as PG
from tests.helpers import completed_job, dead_job, enqueue_one, running_job, utcnow, wait_until


def bucketed(jobs: list[Job], width: int) -> Counter[tuple[datetime, JobStatus]]:
    out: Counter[tuple[datetime, JobStatus]] = Counter()
    for j in jobs:
        assert j.finished_at is not None
        start = int(j.finished_at.timestamp()) // width * width
        out[(datetime.fromtimestamp(start, UTC), j.status)] += 1
    return out


async def test_count_finished_per_status_and_bucket(store: Store) -> None:
    before = utcnow() - timedelta(seconds=1)
    early = await completed_job(store)
    assert early.finished_at is not None
    cutoff = early.finished_at + timedelta(microseconds=1)
    await wait_until(lambda: utcnow() > cutoff, timeout=5)
    later = [
        await completed_job(store),
        await completed_job(store),
        await dead_job(store),
        await store.cancel((await enqueue_one(store)).id),
    ]
    await enqueue_one(store, queue="other")  # live jobs are not counted
    await running_job(store)

    for width in (1, 60, 3600):
        got = await store.count_finished(before, width)
        assert Counter({(c.at, c.status): c.count for c in got}) == bucketed([early, *later], width)
        assert all(c.at.tzinfo is not None and c.at.timestamp() % width == 0 for c in got)

    # `since` is inclusive, and what finished before it is left out.
    got = await store.count_finished(cutoff, 60)
    assert sum(c.count for c in got) == len(later)
    assert await store.count_finished(utcnow() + timedelta(seconds=1), 60) == []


async def test_count_finished_forgets_what_retention_pruned(store: Store) -> None:
    done = await completed_job(store)
    assert done.finished_at is not None
    since = done.finished_at - timedelta(seconds=1)
    assert sum(c.count for c in await store.count_finished(since, 60)) == 1
    await store.prune_finished(JobStatus.COMPLETED, done.finished_at + timedelta(microseconds=1))
    assert await store.count_finished(since, 60) == []


@pytest.mark.postgres
async def test_count_finished_is_an_index_scan_on_postgres(pg_url: str) -> None:
    """The SQLite plan is checked with the other partial-index users (test_schema_parity)."""
    store = open_store(pg_url)
    assert isinstance(store, PostgresStore)
    await store.connect()
    try:
        await store.migrate()
        async with store.pool.acquire() as conn:
            await conn.execute("SET enable_seqscan = off")
            rows = await conn.fetch(f"EXPLAIN {PG.count_finished}", utcnow(), 60)
    finally:
        await store.close()
    plan = "\n".join(r[0] for r in rows)
    assert "jobs_prune_idx" in plan, plan
