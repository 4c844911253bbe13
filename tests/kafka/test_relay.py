"""The outbox relay on a real broker (Tansu): every committed event reaches a consumer of the
events topic at least once and in order per job, dead jobs also reach the dead topic, and a
broker killed and restarted empty loses nothing that the store had not seen acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest_asyncio
from aiokafka import AIOKafkaConsumer

from conveyor.config import Settings
from conveyor.domain.records import Completion, Failure
from conveyor.scheduler.scheduler import Scheduler
from conveyor.store import Store, open_store
from conveyor.transport import kafka as topics
from conveyor.transport.relay import Relay, relaying
from conveyor.wire import job_out, json_default
from tests.helpers import enqueue, make_job, wait_until
from tests.kafka.broker import Tansu


def relay_settings(store_url: str, broker: Tansu, prefix: str) -> Settings:
    return Settings(
        store_url=store_url,
        kafka_bootstrap=broker.bootstrap,
        kafka_topic_prefix=prefix,
        kafka_request_timeout=3.0,
        relay_interval=0.02,
        leader_ttl=3.0,
    )


class Collector:
    """A consumer of some topics, from their beginning, with no group: what a subscriber sees."""

    def __init__(self, settings: Settings, *names: str) -> None:
        self.names = [topics.topic(settings, n) for n in names]
        self.seen: dict[str, list[dict[str, Any]]] = {name: [] for name in self.names}
        self._consumer = AIOKafkaConsumer(
            *self.names,
            bootstrap_servers=settings.kafka_bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            metadata_max_age_ms=500,  # find a topic created again after a broker restart soon
            request_timeout_ms=3000,
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Collector:
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._consumer.stop()

    async def _run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=100)
            for tp, records in batches.items():
                self.seen[tp.topic].extend(orjson.loads(r.value) for r in records)

    async def reread(self) -> None:
        """From the beginning again: a restarted memory-only broker starts its logs at offset 0
        and Tansu answers a fetch past the end with nothing rather than "out of range", so a
        consumer would wait at its old offsets."""
        await self._consumer.seek_to_beginning()

    def by_job(self, name: str) -> dict[str, list[dict[str, Any]]]:
        """Each job's events as first seen (duplicates by event id dropped), in arrival order."""
        out: dict[str, list[dict[str, Any]]] = {}
        ids: set[str] = set()
        for event in self.seen[name]:
            if event["id"] not in ids:
                ids.add(event["id"])
                out.setdefault(event["subject"], []).append(event)
        return out


@pytest_asyncio.fixture
async def publishing(store_url: str, store: Store) -> AsyncIterator[Store]:
    s = open_store(store_url, publish_events=True)
    await s.connect()
    try:
        yield s
    finally:
        await s.close()


async def run_jobs(store: Store, n: int, queue: str) -> dict[str, list[str]]:
    """n jobs through the store: even ones complete, odd ones fail for good. Returns the
    event types each job must produce, by job id."""
    jobs = await enqueue(
        store, *(make_job(queue=queue, payload={"i": i}, max_retries=0) for i in range(n))
    )
    index = {j.id: i for i, j in enumerate(jobs)}
    left = n
    while left:
        claimed = await store.claim("w1", [queue], 50, 30.0)
        assert claimed, "jobs left but nothing to claim"
        done = [
            Completion(j.id, j.lease_token, {"i": index[j.id]})
            for j in claimed
            if index[j.id] % 2 == 0
        ]
        failed = [Failure(j.id, j.lease_token, "boom", None) for j in claimed if index[j.id] % 2]
        await store.complete_many(done)
        await store.fail_many(failed)
        left -= len(claimed)
    ends = ("completed", "dead")
    return {
        str(j.id): [f"conveyor.job.{t}" for t in ("created", "started", ends[index[j.id] % 2])]
        for j in jobs
    }


def assert_every_event_in_order(
    collector: Collector, settings: Settings, expected: dict[str, list[str]]
) -> None:
    got = collector.by_job(topics.topic(settings, topics.EVENTS))
    assert {job: [e["type"] for e in got.get(job, [])] for job in expected} == expected
    for events in got.values():
        seqs = [int(e["id"].rsplit(".", 1)[1]) for e in events]
        assert seqs == sorted(seqs), "a job's events arrived out of order"


def complete_for(collector: Collector, settings: Settings, expected: dict[str, list[str]]) -> Any:
    name = topics.topic(settings, topics.EVENTS)

    def check() -> bool:
        got = collector.by_job(name)
        return all(len(got.get(job, [])) >= len(types) for job, types in expected.items())

    return check


async def test_every_committed_event_reaches_the_events_topic_in_order(
    publishing: Store, store_url: str, kafka: Tansu
) -> None:
    settings = relay_settings(store_url, kafka, f"t{uuid.uuid4().hex[:8]}")
    await topics.ensure_topics(
        settings, [topics.topic(settings, topics.EVENTS), topics.topic(settings, topics.DEAD)]
    )
    async with Collector(settings, topics.EVENTS, topics.DEAD) as collector:
        async with relaying(publishing, settings) as relay:
            assert relay is not None
            expected = await run_jobs(publishing, 200, "default")
            await wait_until(
                complete_for(collector, settings, expected), timeout=20, message="every event"
            )
        assert_every_event_in_order(collector, settings, expected)
        assert await publishing.outbox_pending(10) == []  # all acknowledged, all deleted

        # The event: CloudEvents attributes, and the job as the API shows it.
        job_id = next(iter(expected))
        last = collector.by_job(topics.topic(settings, topics.EVENTS))[job_id][-1]
        api_job = orjson.loads(
            orjson.dumps(job_out(await publishing.get_job(uuid.UUID(job_id))), default=json_default)
        )
        assert last["data"] == api_job
        assert (last["specversion"], last["subject"], last["source"]) == (
            "1.0", job_id, f"/{settings.kafka_topic_prefix}/jobs"
        )  # fmt: skip
        assert last["time"] == api_job["updated_at"]

        # The dead topic: every job that ended dead, once each (at least), and nothing else.
        dead = collector.by_job(topics.topic(settings, topics.DEAD))
        assert set(dead) == {job for job, types in expected.items() if types[-1].endswith("dead")}
        assert all([e["type"] for e in events] == ["conveyor.job.dead"] for events in dead.values())


async def test_broker_killed_and_restarted_empty_loses_no_unsent_event(
    sqlite_url: str, own_broker: Tansu
) -> None:
    """The broker dies with the relay running and jobs moving, and comes back empty: the relay
    fails its rounds, keeps the rows, and publishes them all once the broker is back.

    It is killed once the consumer has read what was published before: with memory storage, a
    message the broker acknowledged and nobody read yet dies with it, which a real (replicated,
    durable) Kafka does not do and no outbox can make up for."""
    settings = relay_settings(sqlite_url, own_broker, "conveyor")
    store = open_store(sqlite_url, publish_events=True)
    await store.connect()
    await store.migrate()
    relay = Relay(store, settings)
    relay_task = asyncio.create_task(relay.run())
    try:
        await topics.ensure_topics(settings, [topics.topic(settings, topics.EVENTS)])
        async with Collector(settings, topics.EVENTS) as collector:
            before = await run_jobs(store, 100, "default")
            await wait_until(
                complete_for(collector, settings, before), timeout=20, message="the first events"
            )

            own_broker.kill()  # mid-run: the relay is up, jobs keep moving
            failed = relay.failed_rounds
            during = await run_jobs(store, 100, "default")
            await wait_until(
                lambda: relay.failed_rounds >= failed + 2, timeout=15, message="failed rounds"
            )
            # Nothing reached the dead broker: the store keeps every event of these jobs.
            pending = await store.outbox_pending(10_000)
            assert {str(r.job.id) for r in pending} == set(during)
            assert len(pending) == sum(len(t) for t in during.values())

            own_broker.start()  # same port, empty: no topics, no messages
            await collector.reread()
            await wait_until(
                complete_for(collector, settings, during),
                timeout=25,
                message="the events published while the broker was down",
            )
            assert_every_event_in_order(collector, settings, {**before, **during})

            async def deleted() -> bool:  # a round's rows go with the next round's read
                return await store.outbox_pending(10) == []

            await wait_until(deleted, timeout=5, message="the published rows deleted")
    finally:
        relay.stop()
        await relay_task
        await store.close()


async def test_the_scheduler_runs_the_relay(sqlite_url: str, kafka: Tansu) -> None:
    settings = relay_settings(sqlite_url, kafka, f"t{uuid.uuid4().hex[:8]}")
    store = open_store(sqlite_url, publish_events=settings.publishes_events)
    await store.connect()
    await store.migrate()
    scheduler = Scheduler(store, settings)
    task = asyncio.create_task(scheduler.run())
    try:
        await topics.ensure_topics(settings, [topics.topic(settings, topics.EVENTS)])
        async with Collector(settings, topics.EVENTS) as collector:
            (job,) = await enqueue(store, make_job())
            expected = {str(job.id): ["conveyor.job.created"]}
            await wait_until(complete_for(collector, settings, expected), timeout=15)
    finally:
        scheduler.stop()
        await task
        await store.close()
