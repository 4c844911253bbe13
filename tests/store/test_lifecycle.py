from __future__ import annotations

import asyncio

import pytest

from conveyor.domain.errors import InvalidInput
from conveyor.store import Store, open_store


async def test_ping(store: Store) -> None:
    await store.ping()


async def test_migrate_is_idempotent(store: Store) -> None:
    assert await store.migrate() == []


async def test_concurrent_migrations_apply_each_once(store_url: str) -> None:
    stores = [open_store(store_url) for _ in range(3)]
    for s in stores:
        await s.connect()
    try:
        applied = await asyncio.gather(*[s.migrate() for s in stores])
        names = [name for batch in applied for name in batch]
        assert names, "a fresh store applies its migrations"
        assert len(names) == len(set(names))
        assert await stores[0].migrate() == []
        await stores[1].ping()
    finally:
        for s in stores:
            await s.close()


def test_open_store_rejects_unknown_urls() -> None:
    with pytest.raises(InvalidInput):
        open_store("mysql://localhost/db")
