"""The Kafka transport on a real broker (Tansu): ready jobs reach workers through the dispatch
topics, a high-priority job overtakes a backlog, and a broker killed and restarted empty
mid-run costs latency only: every job completes, the relay re-dispatches what the broker lost,
and every event committed after it came back reaches a consumer of the events topic, in order.
The store x transport grid of the job semantics is in tests/e2e (TRANSPORTS)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from conveyor import App, JobStatus, NewJob
from conveyor.transport import kafka as topics
from conveyor.transport.kafka_transport import KafkaTransport
from conveyor.transport.kafka_worker import KafkaWorkerStore
from conveyor.worker.executor import Worker
from tests.e2e.conftest import fast_settings, kafka_settings
from tests.helpers import opened, running, wait_until
from tests.kafka.broker import Tansu
from tests.kafka.test_relay import Collector


def kafka_app(store_url: str, broker: Tansu, **kw: Any) -> App:
    """Leases of 30 s (these runs count attempts; a loaded host must not expire one) and a
    poll interval of 0.5 s, so the store fallback (after a silent wait) rarely steps in."""
    base: dict[str, Any] = {"lease_seconds": 30.0, "poll_interval": 0.5}
    base.update(kafka_settings(broker.bootstrap, kafka_request_timeout=3.0, **kw))
    return App(settings=fast_settings(store_url, **base))


@pytest_asyncio.fixture
async def app(pg_url: str, kafka: Tansu) -> AsyncIterator[App]:
    async with opened(kafka_app(pg_url, kafka)) as a:
        yield a


def kafka_store(worker: Worker) -> KafkaWorkerStore:
    store = worker.store
    assert isinstance(store, KafkaWorkerStore)
    return store


async def joined(worker: Worker) -> None:
    """The worker's consumer owns partitions (it joined the group)."""
    ws = kafka_store(worker)
    await wait_until(lambda: bool(ws.assignment), timeout=20, message="the consumer to join")


async def completed(app: App, n: int, queue: str = "default") -> bool:
    c = await app.store.count_by_queue_status()
    return c.get(queue, {}).get(JobStatus.COMPLETED, 0) >= n


async def outbox_empty(app: App) -> bool:
    return not await app.store.outbox_pending(1)


def jobs(type: str, first: int, n: int, priority: int = 0) -> list[NewJob]:
    return [NewJob(type, {"i": first + i}, priority=priority) for i in range(n)]


async def test_jobs_reach_the_worker_through_kafka(app: App) -> None:
    ran: list[str] = []

    @app.job("k.count")
    async def count(payload: dict[str, Any]) -> None:
        ran.append(payload["i"])

    worker = app.worker(concurrency=20)
    async with running(worker):
        await joined(worker)
        await app.enqueue_many(jobs("k.count", 0, 300))
        await wait_until(lambda: completed(app, 300), timeout=30, message="every job")
    ws = kafka_store(worker)
    assert sorted(ran) == list(range(300))  # each once
    # Through Kafka, not the store: the fallback claims at most one batch per silent wait.
    assert ws.taken >= 300 - ws.from_store
    assert ws.from_store < 100
    transport = app.transport
    assert isinstance(transport, KafkaTransport) and transport.relay is not None
    assert transport.relay.dispatched >= 300


async def test_a_high_priority_job_overtakes_a_backlog(app: App) -> None:
    started: list[int] = []

    @app.job("k.p")
    async def p(payload: dict[str, Any]) -> None:
        started.append(payload.get("priority", -1))
        await asyncio.sleep(0.005)

    worker = app.worker(concurrency=1)
    async with running(worker):
        await joined(worker)
        await app.enqueue_many(jobs("k.p", 0, 300, priority=-1))
        await wait_until(lambda: len(started) >= 5, timeout=20, message="the backlog to start")
        await app.enqueue("k.p", {"priority": 5}, priority=5)
        await wait_until(lambda: 5 in started, timeout=20, message="the urgent job")
        at = started.index(5)
        low_left = 300 - sum(1 for x in started if x == -1)
        assert low_left > 100, f"ran after {at} backlog jobs: it waited for the backlog"


async def test_broker_restarted_empty_mid_run_loses_nothing(pg_url: str, own_broker: Tansu) -> None:
    """Killed with jobs in flight and restarted empty (memory storage: no topics, no offsets,
    no messages): jobs keep completing meanwhile (the store fallback), the relay publishes what
    piled up in the outbox and re-dispatches what the broker lost, and every job completes once.

    Events: with memory storage a message the broker acknowledged and nobody read yet dies with
    it (a replicated Kafka does not do that, and no outbox can make up for it), so the events
    checked whole are those of the jobs submitted after the kill."""
    app = kafka_app(pg_url, own_broker, kafka_redispatch_after=1.0)
    await app.open(migrate=True)
    ran: list[int] = []

    @app.job("k.r")
    async def r(payload: dict[str, Any]) -> None:
        ran.append(payload["i"])
        await asyncio.sleep(0.002)

    settings = app.settings
    await topics.ensure_topics(settings, [topics.topic(settings, topics.EVENTS)])
    try:
        async with Collector(settings, topics.EVENTS) as collector:
            worker = app.worker(concurrency=10)
            async with running(worker):
                await joined(worker)
                before = await app.enqueue_many(jobs("k.r", 0, 600))
                await wait_until(lambda: completed(app, 100), timeout=30, message="a start")

                own_broker.kill()
                transport = app.transport
                assert isinstance(transport, KafkaTransport) and transport.relay is not None
                relay = transport.relay
                failed = relay.failed_rounds
                during = await app.enqueue_many(jobs("k.r", 600, 200))
                await wait_until(
                    lambda: relay.failed_rounds >= failed + 2, timeout=20, message="failed rounds"
                )
                own_broker.start()  # same port, empty
                await collector.reread()
                sent = relay.redispatched
                after = await app.enqueue_many(jobs("k.r", 800, 200))
                await wait_until(lambda: completed(app, 1000), timeout=60, message="every job")
                await wait_until(lambda: outbox_empty(app), timeout=20, message="outbox drained")

            assert sorted(ran) == list(range(1000))  # every job, once
            every = [*before, *during, *after]
            stored = await app.store.get_jobs([j.id for j in every])
            assert {j.status for j in stored} == {JobStatus.COMPLETED}
            assert {j.attempt for j in stored} == {1}
            assert relay.redispatched > sent or kafka_store(worker).rewound > 0

            expected = {
                str(j.id): [
                    "conveyor.job.created",
                    "conveyor.job.started",
                    "conveyor.job.completed",
                ]
                for j in [*during, *after]
            }
            name = topics.topic(settings, topics.EVENTS)

            def all_events() -> bool:
                got = collector.by_job(name)
                return all(len(got.get(job, [])) >= 3 for job in expected)

            await wait_until(all_events, timeout=30, message="every event after the kill")
            got = collector.by_job(name)
            assert {job: [e["type"] for e in got[job]] for job in expected} == expected
            for events in got.values():
                seqs = [int(e["id"].rsplit(".", 1)[1]) for e in events]
                assert seqs == sorted(seqs), "a job's events arrived out of order"
    finally:
        await app.close()
