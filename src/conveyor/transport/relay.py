"""The outbox relay: publishes what the store recorded to Kafka, then deletes it.

At least once: a row is deleted only after the broker acknowledged every event of its round,
so a relay that dies, or a broker that fails, leaves the rows to be published again (consumers
dedupe by event id). A job's events keep their order: rows are read oldest first, sent in that
order with the job id as key (one partition per job), and a failed round is sent again whole
from its first row.

On the Kafka transport (`Settings.transport == "kafka"`) the relay is also how ready jobs reach
workers: a row whose job is queued (created ready, promoted, released, reaped, requeued) is
also sent to the job's dispatch topic (`kafka.jobs_topic`, by queue and priority band), its id
as key and value, in the same round. Promotion rows are dispatches only, not events. The
leading relay also re-dispatches, about once a second, the queued, due jobs (per queue, the
oldest `transport_sweep_limit` in claim order) that have waited longer than
`kafka_redispatch_after` and were not re-dispatched within that time: their message was lost (a
broker that came back empty, a record skipped for a paused or full queue). A duplicate costs a
refused claim, nothing more.

Latency: an idle relay waits on the store's wake-ups (`Store.wait_for_outbox`: PostgreSQL's
NOTIFY, SQLite's wake sockets), the ones that wake workers, so a commit that made jobs ready
in any process is read within a round trip, and `relay_interval` is only the fallback poll
(and how soon rows that wake nobody, the events of starts and outcomes, go out when nothing
else comes). In a round the dispatches are handed to the producer before the events, and
a round's rows are deleted by the next round's read (`Store.outbox_next`, one round trip),
which leaves them out: a row is still deleted only after the broker acknowledged its round,
and a relay that stops deletes what it published.

Any process may run a relay (the scheduler, and `server`/`dev`, which may run without one);
one leads, through the store's leadership (name "relay"), so several relays do not publish
every event several times over.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from conveyor import metrics
from conveyor.config import Settings
from conveyor.domain.events import is_promotion
from conveyor.domain.job import JobStatus
from conveyor.domain.records import ReadyJob
from conveyor.store.base import Store
from conveyor.transport import kafka
from conveyor.transport.base import swept_queues
from conveyor.transport.events import HEADERS, cloud_event, encode, source_for

log = structlog.get_logger("conveyor.relay")

LEADERSHIP = "relay"
# After a failed round (broker or store unreachable), wait this long, doubling up to the cap.
BACKOFF = (0.2, 5.0)
REDISPATCH_EVERY = 1.0  # seconds between the leader's looks for lost dispatches

# The relays running in this process: the Kafka transport starts none when one runs already
# (the scheduler's, the server's), and wakes them after a submit commits.
_RUNNING: list[Relay] = []


def running_relay(settings: Settings) -> Relay | None:
    """A relay of this process that dispatches for the same Kafka and topics, if one runs."""
    for relay in _RUNNING:
        s = relay.settings
        if relay.dispatches and (s.kafka_bootstrap, s.kafka_topic_prefix) == (
            settings.kafka_bootstrap,
            settings.kafka_topic_prefix,
        ):
            return relay
    return None


def wake_relays() -> None:
    """Something was just committed for the relays: look now rather than after the interval
    (a relay that does not lead only checks its leadership)."""
    for relay in _RUNNING:
        relay.wake()


class Relay:
    def __init__(self, store: Store, settings: Settings, *, holder: str | None = None) -> None:
        self.store = store
        self.settings = settings
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.events_topic = kafka.topic(settings, kafka.EVENTS)
        self.dead_topic = kafka.topic(settings, kafka.DEAD)
        self.source = source_for(settings.kafka_topic_prefix)
        self.dispatches = settings.transport == "kafka"
        self.dispatched = 0
        self.redispatched = 0
        self.last_error: str | None = None
        self._redispatch_at = 0.0
        self._recent: dict[uuid.UUID, float] = {}  # re-dispatched: when (monotonic)
        self.is_leader = False
        self.published = 0
        self.failed_rounds = 0
        self._producer: Any = None
        self._topics_ready = False
        self._jobs_topics: set[str] = set()  # dispatch topics known to exist
        self._refused_topics: set[str] = set()  # ... and refused (looked at again after a failure)
        self._stopping = asyncio.Event()
        self._woken = asyncio.Event()  # set by stop() and wake()
        self._lead_checked = float("-inf")
        self._done: list[int] = []  # published, acknowledged, deleted by the next read

    def stop(self) -> None:
        self._stopping.set()
        self._woken.set()

    def wake(self) -> None:
        self._woken.set()

    async def run(self) -> None:
        log.info("relay started", holder=self.holder, topic=self.events_topic)
        backoff = BACKOFF[0]
        _RUNNING.append(self)
        try:
            while not self._stopping.is_set():
                wait, failed = self.settings.relay_interval, False
                try:
                    if await self._leads():
                        sent = await self.relay_once()
                        if self.dispatches and time.monotonic() >= self._redispatch_at:
                            await self.redispatch_once()
                            self._redispatch_at = time.monotonic() + REDISPATCH_EVERY
                        backoff = BACKOFF[0]
                        self.last_error = None
                        if sent >= self.settings.relay_batch:
                            continue  # more waiting: no pause
                except Exception as exc:
                    self.failed_rounds += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.warning("relay round failed", error=f"{type(exc).__name__}: {exc}")
                    # The producer reconnects by itself; the topics are looked at again, as a
                    # broker that came back empty has none.
                    self._topics_ready = False
                    self._jobs_topics.clear()
                    self._refused_topics.clear()
                    wait, backoff, failed = backoff, min(backoff * 2, BACKOFF[1]), True
                # After a failure only stop() cuts the backoff short: a wake per submit must
                # not hammer a broker that is down.
                if failed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), wait)
                else:
                    await self._idle(wait)
                self._woken.clear()
        finally:
            _RUNNING.remove(self)
            await self._flush_done()
            await self._drop_producer()
            if self.is_leader:
                with contextlib.suppress(Exception):
                    await self.store.resign(LEADERSHIP, self.holder)
            log.info("relay stopped", holder=self.holder, published=self.published)

    async def _idle(self, timeout: float) -> None:
        """Until wake(), stop(), the store's wake-up (when leading), or `timeout`."""
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._woken.wait())]
        if self.is_leader:
            waits.append(asyncio.ensure_future(self.store.wait_for_outbox(timeout)))
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            for w in waits:
                with contextlib.suppress(BaseException):
                    await w  # its outcome retrieved (a store wait never raises, but)

    async def _flush_done(self) -> None:
        """Delete the last round's rows now rather than with the next read (stopping, or no
        longer leading); failing that, the next leader publishes them again."""
        done, self._done = self._done, []
        if done:
            try:
                await self.store.outbox_delete(done)
            except Exception as exc:
                log.warning("relay could not delete published rows", error=f"{exc!r}")

    async def _leads(self) -> bool:
        """Leadership, looked at a few times per lease rather than every round."""
        now = time.monotonic()
        ttl = self.settings.leader_ttl
        if now - self._lead_checked >= min(1.0, ttl / 3):
            was = self.is_leader
            self.is_leader = await self.store.try_lead(LEADERSHIP, self.holder, ttl)
            self._lead_checked = now
            if self.is_leader != was:
                log.info("relay leadership changed", leader=self.is_leader, holder=self.holder)
                if not self.is_leader:
                    await self._flush_done()
                    await self._drop_producer()
        return self.is_leader

    async def relay_once(self) -> int:
        """Publish one round (up to relay_batch rows, oldest first) and delete it; the number
        of rows published."""
        # Deletes the last round's rows (acknowledged) in the same round trip; a failure here
        # keeps them for the next try.
        rows = await self.store.outbox_next(self._done, self.settings.relay_batch)
        self._done = []
        if not rows:
            return 0
        producer = await self._ensure_producer()
        dispatch = [r.job for r in rows if self.dispatches and r.job.status is JobStatus.QUEUED]
        batches = _Batches(producer)
        # Dispatches first, so the producer sends them before the round's events (other
        # topics: a job's events keep their order among themselves).
        dispatched = await self._add_dispatches(batches, dispatch)
        for row in rows:
            job = row.job
            if not is_promotion(row.from_status, job.status):
                key = str(job.id).encode()
                value = encode(cloud_event(row, self.source))
                await batches.add(self.events_topic, key, value)
                if job.status is JobStatus.DEAD:
                    await batches.add(self.dead_topic, key, value)
        await self._await_acks(await batches.send_all())  # a failure leaves every row
        self._done = [r.seq for r in rows]  # deleted by the next round's read
        self.published += len(rows)
        self.dispatched += dispatched
        metrics.EVENTS_PUBLISHED.inc(len(rows))
        if dispatched:
            metrics.TRANSPORT_DISPATCHED.labels("outbox").inc(dispatched)
        return len(rows)

    async def redispatch_once(self) -> int:
        """Send again the ids of jobs queued in the store for longer than
        kafka_redispatch_after (see the module's docstring); the number sent."""
        settings = self.settings
        after = settings.kafka_redispatch_after
        mono = time.monotonic()
        self._recent = {k: t for k, t in self._recent.items() if mono - t < after}
        cutoff = datetime.now(UTC) - timedelta(seconds=after)
        stale: list[ReadyJob] = []
        for queue, paused in await swept_queues(self.store):
            if paused:
                continue
            for j in await self.store.ready_jobs(queue, settings.transport_sweep_limit):
                # Ready since before the cutoff (updated_at: a job just reaped or released
                # keeps its old run_at, and its outbox row is dispatching it right now).
                if max(j.run_at, j.updated_at) <= cutoff and j.id not in self._recent:
                    stale.append(j)
        if not stale:
            return 0
        batches = _Batches(await self._ensure_producer())
        sent = await self._add_dispatches(batches, stale)
        await self._await_acks(await batches.send_all())
        for j in stale:
            self._recent[j.id] = mono
        self.redispatched += sent
        metrics.TRANSPORT_DISPATCHED.labels("sweep").inc(sent)
        return sent

    async def _await_acks(self, acks: list[asyncio.Future[Any]]) -> None:
        # Not gather: a timeout must not cancel the acks, which the producer still resolves.
        done, waiting = await asyncio.wait(acks, timeout=2 * self.settings.kafka_request_timeout)
        if waiting:
            raise TimeoutError(f"{len(waiting)} of {len(acks)} messages not acknowledged in time")
        failures = [exc for ack in done if (exc := ack.exception()) is not None]
        if failures:  # one fails the round (each failure retrieved, once)
            raise failures[0]

    async def _add_dispatches(self, batches: _Batches, jobs: Sequence[Any]) -> int:
        """Each job's id to its band's dispatch topic, creating the topics not seen yet; the
        number added. A job whose topic the broker refuses to create (ACLs, a creation policy)
        is left out, with a warning per topic, rather than failing every round after it: it
        stays queued in the store, where a worker's store fallback claims it."""
        prefix = self.settings.kafka_topic_prefix
        topics = [kafka.jobs_topic(prefix, j.queue, kafka.band_of(j.priority)) for j in jobs]
        unknown = set(topics) - self._jobs_topics - self._refused_topics
        if unknown:
            refused = await kafka.ensure_topics(self.settings, sorted(unknown))
            for name, reason in refused.items():
                log.warning("dispatch topic refused by the broker", topic=name, reason=reason)
            self._refused_topics |= refused.keys()
            self._jobs_topics |= unknown - refused.keys()
        added = 0
        for job, name in zip(jobs, topics, strict=True):
            if name in self._jobs_topics:
                key = str(job.id).encode()
                await batches.add(name, key, key)
                added += 1
        return added

    async def _ensure_producer(self) -> Any:
        if not self._topics_ready:
            # Before sending: a broker that came back empty has no topics, and a producer would
            # wait for their metadata until its timeout.
            refused = await kafka.ensure_topics(self.settings, (self.events_topic, self.dead_topic))
            if refused:  # nothing can be published: the round fails, the rows wait
                raise RuntimeError(f"the broker refused Conveyor's topics: {refused}")
            self._topics_ready = True
        if self._producer is None:
            from aiokafka import AIOKafkaProducer

            producer = AIOKafkaProducer(
                **kafka.client_options(self.settings),
                acks="all",
                # Tansu (tests, dev) supports neither idempotence nor transactions; ordering
                # holds without them (one in-flight batch per partition, rounds resent whole).
                enable_idempotence=False,
                partitioner=kafka.partition_of,
                # A round hands over whole batches: lingering would only delay them.
                linger_ms=0,
                max_batch_size=1024 * 1024,  # room for an event of MAX_EVENT_BYTES
            )
            await producer.start()
            self._producer = producer
        return self._producer

    async def _drop_producer(self) -> None:
        """Stop the producer. It flushes first, which never ends while the broker is away (it
        retries forever): bounded, as whatever it still held is in the outbox anyway."""
        producer, self._producer = self._producer, None
        self._topics_ready = False
        self._jobs_topics.clear()
        self._refused_topics.clear()
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), self.settings.kafka_request_timeout)
            except Exception as exc:
                log.warning("relay producer did not stop cleanly", error=f"{type(exc).__name__}")


class _Batches:
    """A round's messages in one producer batch per partition (as many as fill it), built
    here and handed over whole: a send() per message, with its own future, was most of the
    relay's time. Batches of one partition are submitted in order, so a job's events stay in
    order."""

    def __init__(self, producer: Any) -> None:
        self._producer = producer
        self._partitions: dict[str, list[int]] = {}
        self._open: dict[tuple[str, int], Any] = {}
        self._acks: list[asyncio.Future[Any]] = []

    async def add(self, topic: str, key: bytes, value: bytes) -> None:
        partitions = self._partitions.get(topic)
        if partitions is None:
            partitions = self._partitions[topic] = sorted(
                await self._producer.partitions_for(topic)
            )
        where = (topic, kafka.partition_of(key, partitions, partitions))
        batch = self._open.get(where)
        if batch is None:
            batch = self._open[where] = self._producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None, headers=HEADERS) is None:
            await self._submit(where, batch)  # full: on its way, and a new one for the rest
            batch = self._open[where] = self._producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None, headers=HEADERS) is None:
                raise ValueError(f"an event of {len(value)} bytes exceeds the batch size")

    async def send_all(self) -> list[asyncio.Future[Any]]:
        for where, batch in self._open.items():
            await self._submit(where, batch)
        self._open.clear()
        return self._acks

    async def _submit(self, where: tuple[str, int], batch: Any) -> None:
        topic, partition = where
        self._acks.append(await self._producer.send_batch(batch, topic, partition=partition))


@contextlib.asynccontextmanager
async def relaying(store: Store, settings: Settings) -> AsyncIterator[Relay | None]:
    """A relay running beside the caller while it is inside, when events are published
    (nothing otherwise): the scheduler, and `server`, which may run without one."""
    if not settings.publishes_events:
        yield None
        return
    relay = Relay(store, settings)
    task = asyncio.create_task(relay.run(), name="conveyor-relay")
    try:
        yield relay
    finally:
        relay.stop()
        await task
