"""Leader election for the scheduler. Holders live in separate store instances, as separate
scheduler processes would (on PostgreSQL an advisory lock is per connection)."""

from __future__ import annotations

import pytest

from conveyor.store import Store, open_store
from tests.helpers import wait_until


async def test_only_one_holder_leads(store: Store, store_factory) -> None:
    other = await store_factory()
    assert await store.try_lead("scheduler", "a", ttl=30) is True
    assert await other.try_lead("scheduler", "b", ttl=30) is False


async def test_try_lead_is_idempotent(store: Store, store_factory) -> None:
    other = await store_factory()
    for _ in range(3):
        assert await store.try_lead("scheduler", "a", ttl=30) is True
        assert await other.try_lead("scheduler", "b", ttl=30) is False


async def test_names_are_independent(store: Store, store_factory) -> None:
    other = await store_factory()
    assert await store.try_lead("scheduler", "a", ttl=30) is True
    assert await other.try_lead("reaper", "b", ttl=30) is True


async def test_resign_lets_the_other_lead(store: Store, store_factory) -> None:
    other = await store_factory()
    assert await store.try_lead("scheduler", "a", ttl=30)
    await store.resign("scheduler", "a")
    assert await other.try_lead("scheduler", "b", ttl=30) is True
    assert await store.try_lead("scheduler", "a", ttl=30) is False


async def test_resign_by_a_non_leader_changes_nothing(store: Store, store_factory) -> None:
    other = await store_factory()
    assert await store.try_lead("scheduler", "a", ttl=30)
    await other.resign("scheduler", "b")
    assert await other.try_lead("scheduler", "b", ttl=30) is False
    assert await store.try_lead("scheduler", "a", ttl=30) is True


async def test_sqlite_lease_expires_after_ttl(store: Store, store_factory, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("SQLite-only: PostgreSQL leadership is an advisory lock tied to a connection")
    other = await store_factory()
    assert await store.try_lead("scheduler", "a", ttl=0.3)
    assert await other.try_lead("scheduler", "b", ttl=0.3) is False
    await wait_until(
        lambda: other.try_lead("scheduler", "b", ttl=30), timeout=5, message="the lease to expire"
    )
    assert await store.try_lead("scheduler", "a", ttl=30) is False


async def test_postgres_leadership_ends_with_the_connection(
    store: Store, store_url: str, backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("PostgreSQL-only: SQLite leadership is a lease row that expires")
    leader = open_store(store_url)
    await leader.connect()
    try:
        assert await leader.try_lead("scheduler", "a", ttl=30)
        assert await store.try_lead("scheduler", "b", ttl=30) is False
    finally:
        await leader.close()
    await wait_until(
        lambda: store.try_lead("scheduler", "b", ttl=30), timeout=5, message="the lock to go"
    )
