from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from conveyor import App
from conveyor.config import Settings
from tests.helpers import opened
from tests.kafka.conftest import kafka  # noqa: F401 (the session's broker, for the kafka cell)

# Modules whose behaviour depends on how jobs reach workers run under every transport:
# `pytestmark = TRANSPORTS` (the `app` fixture then runs once per transport).
TRANSPORTS = pytest.mark.parametrize("transport", ["store", "redis", "kafka"], indirect=True)


def kafka_settings(bootstrap: str, **kw: object) -> dict[str, Any]:
    """The Kafka transport on `bootstrap`, under topics and a consumer group of its own, with
    the short group timings the tests need (joins take seconds otherwise)."""
    return {
        "transport": "kafka",
        "kafka_bootstrap": bootstrap,
        "kafka_topic_prefix": f"t{uuid.uuid4().hex[:12]}",
        "kafka_session_timeout": 1.0,
        "kafka_heartbeat_interval": 0.3,
        "kafka_redispatch_after": 2.0,
        **kw,
    }


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
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, Any]]:
    """Settings of the transport under test ("store" unless parametrised): the Redis one uses
    the local Redis under a key prefix of its own, deleted afterwards; the Kafka one the
    session's broker under a topic prefix of its own."""
    kind = getattr(request, "param", "store")
    if kind == "store":
        yield {}
        return
    if kind == "kafka":
        yield kafka_settings(request.getfixturevalue("kafka").bootstrap)
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"conveyor-test-{uuid.uuid4().hex[:12]}"
    yield {"transport": "redis", "redis_url": url, "transport_key_prefix": prefix}
    client = aioredis.Redis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest_asyncio.fixture
async def app(store_url: str, transport: dict[str, Any]) -> AsyncIterator[App]:
    async with opened(App(settings=fast_settings(store_url, **transport))) as a:
        yield a
