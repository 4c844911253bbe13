"""Batched outcomes and heartbeats lock their rows in id order on PostgreSQL, so two batches of
one worker that share jobs (a heartbeat and a completion in flight at once) cannot deadlock.
SQLite has one writer at a time and no row locks: nothing to order there."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from conveyor.domain.records import Completion, Failure, Lease, Release
from conveyor.store import Store, open_store
from conveyor.store.postgres import PostgresStore
from tests.helpers import claim_exactly, enqueue, make_job, wait_until

pytestmark = pytest.mark.postgres

Call = Callable[[Store, list[tuple]], Awaitable[list]]
CALLS: dict[str, Call] = {
    "complete": lambda s, held: s.complete_many([Completion(i, t, None) for i, t in held]),
    "fail": lambda s, held: s.fail_many([Failure(i, t, "boom", None) for i, t in held]),
    "release": lambda s, held: s.release_many([Release(i, t) for i, t in held]),
    "heartbeat": lambda s, held: s.heartbeat("w1", [Lease(i, t) for i, t in held], 30),
}


@pytest.mark.parametrize("call", sorted(CALLS))
async def test_batched_writes_lock_rows_in_id_order(pg_url: str, call: str) -> None:
    store = open_store(pg_url)
    await store.connect()
    try:
        await store.migrate()
        assert isinstance(store, PostgresStore)
        # A table of some size, as in production: the plan then looks each id up in the
        # order given (a nested loop over the input); a tiny table is read whole instead.
        await enqueue(store, *[make_job() for _ in range(3000)])
        low, high = sorted(await claim_exactly(store, 2), key=lambda j: j.id)
        async with store.pool.acquire() as blocker, store.pool.acquire() as probe:
            block = blocker.transaction()
            await block.start()
            await blocker.execute("SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE", high.id)
            # Handed over highest id first; still the lowest is locked first.
            held = [(high.id, high.lease_token), (low.id, low.lease_token)]
            writing = asyncio.create_task(CALLS[call](store, held))

            async def low_is_locked() -> bool:
                try:
                    await probe.execute(
                        "SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE NOWAIT", low.id
                    )
                except asyncpg.LockNotAvailableError:
                    return True
                return False

            try:
                await wait_until(low_is_locked, message="the lower id locked while waiting")
            finally:
                await block.rollback()
            assert sorted(await writing) == [low.id, high.id]
    finally:
        await store.close()
