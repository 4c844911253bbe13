from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from conveyor import App
from conveyor.config import Settings


def fast_settings(url: str, **kw: object) -> Settings:
    """Short intervals so lifecycle tests finish in well under a second per step."""
    base = dict(
        store_url=url,
        poll_interval=0.05,
        heartbeat_interval=0.1,
        maintenance_interval=0.05,
        lease_seconds=5.0,
        scheduler_tick=0.05,
        shutdown_grace=5.0,
        retry_base=0.2,
    )
    base.update(kw)
    return Settings(**base)  # type: ignore[arg-type]


@pytest_asyncio.fixture
async def app(store_url: str) -> AsyncIterator[App]:
    a = App(settings=fast_settings(store_url))
    await a.open(migrate=True)
    try:
        yield a
    finally:
        await a.close()
