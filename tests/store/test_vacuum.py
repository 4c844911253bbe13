"""Store.vacuum: dead row versions are given back when the database's own vacuum lags.

PostgreSQL here runs with autovacuum off, as a lagging production server would: vacuum() must
VACUUM once the dead rows pass its threshold (lowered here), in the background, and not before.
"""

from __future__ import annotations

import asyncpg

from conveyor.domain.records import Completion
from conveyor.store import Store
from conveyor.store.postgres import PostgresStore
from tests.helpers import claim_exactly, enqueue_one, wait_until


async def test_vacuum_is_cheap_and_safe_with_nothing_to_do(store: Store) -> None:
    await store.vacuum()
    await store.vacuum()


async def _vacuum_count(store: PostgresStore) -> int:
    conn = await asyncpg.connect(store.dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT vacuum_count FROM pg_stat_user_tables"
                " WHERE schemaname = $1 AND relname = 'jobs'",
                store.schema,
            )
        )
    finally:
        await conn.close()


async def test_postgres_vacuums_past_the_threshold(pg_url: str) -> None:
    work = PostgresStore(pg_url)
    await work.connect()
    try:
        await work.migrate()
        for _ in range(15):  # each job leaves two dead versions (claim, completion)
            await enqueue_one(work)
        claimed = await claim_exactly(work, 15)
        await work.complete_many([Completion(j.id, j.lease_token) for j in claimed])
    finally:
        await work.close()  # its backends exit, which publishes their statistics at once

    store = PostgresStore(pg_url)
    await store.connect()
    try:
        before = await _vacuum_count(store)
        store.vacuum_dead_rows = 1_000
        await store.vacuum()
        assert store._vacuum is None  # 30 dead rows: under the threshold, nothing started
        store.vacuum_dead_rows = 20
        store._vacuum_look_at = float("-inf")  # looks are rate-limited; this test looks now
        await store.vacuum()

        async def vacuumed() -> bool:
            return await _vacuum_count(store) > before

        await wait_until(vacuumed, timeout=15, message="the background VACUUM of jobs")
    finally:
        await store.close()
