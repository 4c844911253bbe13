"""The Redis transport on a real Redis: dispatch order, take/claim/ack, wake-ups without
polling, recovery of a dead worker's taken ids, Redis down at start-up, mixed transports."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from conveyor import App, JobStatus
from conveyor.api import create_app
from conveyor.config import Settings
from conveyor.runtime.probes import probe_app
from conveyor.store import Store
from conveyor.transport.redis.keys import QueueKeys, member_id
from conveyor.transport.redis.transport import RedisTransport
from tests.api.conftest import admin_headers, api_settings
from tests.conftest import DEAD_REDIS_URL
from tests.e2e.conftest import fast_settings
from tests.helpers import running, wait_until
from tests.transport.conftest import RedisServer


def transport_of(app: App) -> RedisTransport:
    assert isinstance(app.transport, RedisTransport)
    return app.transport


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def completed(app: App, n: int) -> bool:
    counts = await app.store.count_by_queue_status()
    return sum(c.get(JobStatus.COMPLETED, 0) for c in counts.values()) >= n


async def test_dispatch_orders_ids_and_a_claim_takes_and_acknowledges_them(
    redis_app: App, redis_server: RedisServer
) -> None:
    lags = sample("conveyor_transport_dispatch_lag_seconds_count")
    dispatched = sample("conveyor_transport_dispatched_total", via="enqueue")
    low = await redis_app.enqueue("t", {}, priority=0)
    high = await redis_app.enqueue("t", {}, priority=5)
    later = await redis_app.enqueue("t", {}, priority=0)
    keys = QueueKeys.of(redis_app.settings.transport_key_prefix, "default")
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        ready = [member_id(m) for m in await client.zrange(keys.ready, 0, -1)]
        assert ready == [high.id, low.id, later.id]
        assert sample("conveyor_transport_dispatched_total", via="enqueue") == dispatched + 3
        assert sample("conveyor_transport_dispatch_lag_seconds_count") == lags + 3

        store = transport_of(redis_app).worker_store(redis_app.store)
        claimed = await store.claim("w", ["default"], 2, 30.0)
        assert [j.id for j in claimed] == [high.id, low.id]
        assert all(j.status == JobStatus.RUNNING and j.worker_id == "w" for j in claimed)

        async def taken_ahead() -> bool:  # a full batch: the next is taken meanwhile
            return await client.zcard(keys.ready) == 0

        await wait_until(taken_ahead, timeout=5, message="the next batch taken")
        assert await client.zcard(keys.processing) == 3  # until acknowledged...

        await redis_app.service.cancel(later.id)  # nothing to do in Redis:
        assert await store.claim("w", ["default"], 2, 30.0) == []  # the store refuses it
        processing = {member_id(m) for m in await client.zrange(keys.processing, 0, -1)}
        assert processing == {high.id, low.id, later.id}
        await store.wait_for_jobs(["default"], 0.01)  # ...by the worker about to wait
        assert await client.zcard(keys.ready) == await client.zcard(keys.processing) == 0
    finally:
        await client.aclose()


async def test_an_idle_worker_wakes_on_submit_without_polling(
    store_url: str, redis_server: RedisServer
) -> None:
    app = App(
        settings=fast_settings(
            store_url, transport="redis", redis_url=redis_server.url, poll_interval=30.0
        )
    )
    await app.open(migrate=True)
    started: list[float] = []

    @app.job("t")
    async def t(payload: dict[str, Any]) -> None:
        started.append(time.monotonic())

    client = aioredis.Redis.from_url(redis_server.url)
    try:
        async with running(app.worker(maintenance=False)):

            async def blocked() -> bool:  # the worker waits in BLPOP on its queue's wake list
                return "cmd=blpop" in str(await client.execute_command("CLIENT", "LIST"))

            await wait_until(blocked, timeout=10, message="worker to block on Redis")
            for n in range(1, 4):
                submitted = time.monotonic()
                await app.enqueue("t", {})
                await wait_until(lambda: len(started) >= n, timeout=5)  # noqa: B023
                # A poll would take 30 s: the wake-up is Redis's.
                assert started[-1] - submitted < 1.0
                await wait_until(blocked, timeout=10, message="worker to block again")
        # Stopped: its last claims acknowledged, nothing is left for the recovery.
        keys = QueueKeys.of(app.settings.transport_key_prefix, "default")
        assert await client.zcard(keys.processing) == 0
    finally:
        await client.aclose()
        await app.close()


TAKER = """
import asyncio, os, signal, sys
from conveyor.config import Settings
from conveyor.transport.redis.transport import RedisTransport

async def main() -> None:
    t = RedisTransport(Settings(transport="redis", redis_url=sys.argv[1]))
    keys = t.keys("default")
    taken = await t.link.take(keys=keys.all(), args=[1000, 1500])
    print(len(taken), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # dies between taking and claiming

asyncio.run(main())
"""


async def test_ids_a_killed_worker_took_run_after_their_deadline(
    redis_app: App, redis_server: RedisServer
) -> None:
    runs: Counter[int] = Counter()

    @redis_app.job("t")
    async def t(payload: dict[str, Any]) -> None:
        runs[payload["i"]] += 1

    await redis_app.enqueue_many([redis_app.new_job("t", {"i": i}) for i in range(50)])
    taker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", TAKER, redis_server.url, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(taker.communicate(), 30)
    assert taker.returncode == -signal.SIGKILL
    assert out.strip() == b"50"
    keys = QueueKeys.of(redis_app.settings.transport_key_prefix, "default")
    transport = transport_of(redis_app)
    client = aioredis.Redis.from_url(redis_server.url)
    recovered_before = sample("conveyor_transport_recovered_total")
    try:
        assert await client.zcard(keys.processing) == 50
        await transport.sweep(redis_app.store)  # before the deadline: left alone
        assert await client.zcard(keys.ready) == 0
        assert await client.zcard(keys.processing) == 50
        size = "conveyor_transport_ids"
        assert sample(size, queue="default", set="processing") == 50
        assert sample(size, queue="default", set="ready") == 0
        assert sample("conveyor_transport_recovered_total") == recovered_before

        async def recovered() -> bool:
            await transport.sweep(redis_app.store)
            return await client.zcard(keys.ready) == 50

        await wait_until(recovered, timeout=5, message="taken ids back in ready")
        assert await client.zcard(keys.processing) == 0
        assert sample("conveyor_transport_recovered_total") == recovered_before + 50
        assert sample(size, queue="default", set="ready") == 50
        assert sample(size, queue="default", set="processing") == 0
    finally:
        await client.aclose()
    async with running(redis_app.worker(concurrency=10)):
        await wait_until(lambda: len(runs) == 50, timeout=10, message="all 50 jobs to run")
    assert set(runs.values()) == {1}


async def test_redis_down_at_start_up_workers_still_run_jobs(store_url: str) -> None:
    app = App(settings=fast_settings(store_url, transport="redis", redis_url=DEAD_REDIS_URL))
    await app.open(migrate=True)
    runs: Counter[int] = Counter()

    @app.job("t")
    async def t(payload: dict[str, Any]) -> None:
        runs[payload["i"]] += 1

    try:
        await app.enqueue_many([app.new_job("t", {"i": i}) for i in range(20)])  # submits work
        async with running(app.worker(concurrency=5)):
            await wait_until(lambda: len(runs) == 20, timeout=10, message="jobs to run")
            await app.enqueue("t", {"i": 20})
            await wait_until(lambda: len(runs) == 21, timeout=10, message="a later job to run")
        assert set(runs.values()) == {1}

        async def ready() -> str | None:
            return None

        # Readiness: Redis is a degraded dependency, not a failure.
        probes = httpx.ASGITransport(probe_app(ready, ready, app.transport.problem))
        async with httpx.AsyncClient(transport=probes, base_url="http://probe") as http:
            answer = await http.get("/readyz")
        assert answer.status_code == 200
        assert answer.json()["status"] == "degraded"
        assert "redis unreachable" in answer.json()["detail"]
        assert sample("conveyor_transport_up", transport="redis") == 0
    finally:
        await app.close()


@contextlib.asynccontextmanager
async def api_client(settings: Settings, store: Store) -> AsyncIterator[httpx.AsyncClient]:
    """The API on `store` (owned by the caller) with `settings`, called as an admin."""
    api_app = create_app(settings, store=store)
    async with (
        api_app.router.lifespan_context(api_app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=api_app),
            base_url="http://t",
            headers=admin_headers(settings),
        ) as api,
    ):
        yield api


async def queues_seen(api: httpx.AsyncClient) -> dict[str, Any]:
    """{queue: its "transport" field} from /v1/queues, checked against the dashboard's."""
    listed = await api.get("/v1/queues")
    overview = await api.get("/v1/dashboard/overview")
    assert listed.status_code == overview.status_code == 200, (listed.text, overview.text)
    out = {q["name"]: q["transport"] for q in listed.json()["queues"]}
    assert {q["name"]: q["transport"] for q in overview.json()["queues"]} == out
    return out


async def test_queues_endpoint_shows_each_queues_ids_in_redis(
    redis_app: App, redis_server: RedisServer
) -> None:
    await redis_app.enqueue_many([redis_app.new_job("t", {}) for _ in range(2)])
    worker_store = transport_of(redis_app).worker_store(redis_app.store)
    assert len(await worker_store.claim("w", ["default"], 5, 30)) == 2  # processing: not acked
    await redis_app.enqueue_many([redis_app.new_job("t", {}) for _ in range(3)])
    await redis_app.enqueue("t", {}, queue="other")
    ours = redis_app.settings
    on_redis = api_settings(
        ours.store_url,
        transport="redis",
        redis_url=ours.redis_url,
        transport_key_prefix=ours.transport_key_prefix,
    )
    async with api_client(on_redis, redis_app.store) as api:
        assert (await api.get("/v1/dashboard/overview")).json()["transport"] == "redis"
        assert await queues_seen(api) == {
            "default": {"ready": 3, "processing": 2},
            "other": {"ready": 1, "processing": 0},
        }
        redis_server.kill()  # the counts go, the page stays
        assert await queues_seen(api) == {"default": None, "other": None}

    async with api_client(api_settings(ours.store_url), redis_app.store) as api:
        assert (await api.get("/v1/dashboard/overview")).json()["transport"] == "store"
        assert await queues_seen(api) == {"default": None, "other": None}


async def test_workers_on_either_transport_run_each_others_jobs(
    pg_url: str, redis_server: RedisServer
) -> None:
    on_redis = App(settings=fast_settings(pg_url, transport="redis", redis_url=redis_server.url))
    on_store = App(settings=fast_settings(pg_url))
    await on_redis.open(migrate=True)
    await on_store.open()
    runs: Counter[str] = Counter()
    for app in (on_redis, on_store):

        @app.job("t")
        async def t(payload: dict[str, Any]) -> None:
            runs[payload["by"]] += 1

    try:
        async with running(on_store.worker(maintenance=False)):
            await on_redis.enqueue_many([on_redis.new_job("t", {"by": "redis"})] * 1)
            await wait_until(lambda: runs["redis"] == 1, timeout=10)
        # No sweep runs (maintenance off): the Redis worker finds the store's jobs by its
        # idle look at the store.
        async with running(on_redis.worker(maintenance=False)):
            await on_store.enqueue("t", {"by": "store"})
            await wait_until(lambda: runs["store"] == 1, timeout=10)
    finally:
        await on_store.close()
        await on_redis.close()
