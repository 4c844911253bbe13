"""The Kafka transport, worker side: a store whose `claim` takes ids from the dispatch topics.

The worker's consumer reads the topics of its queues in every priority band
(`kafka.jobs_topic`) as a member of the workers' consumer group, offsets committed by hand.
`claim` takes up to `limit` ids, highest band first (records the consumer already fetched, and
records buffered by the last wait), claims exactly those jobs in the store in one statement
(`Store.claim_ids`: fencing tokens, pause and concurrency limits as in `claim`), and only then
commits their offsets (in the background, without holding up the worker). An id the store
refuses is dropped: claimed already (a duplicate dispatch), cancelled, finished, or refused
for a paused or full queue, in which case the job stays queued in the store and comes back
through the store fallback below or the relay's re-dispatch. A worker that dies between claim
and commit leaves its records to the group's next owner of the partition, whose claim the
store refuses: nothing runs twice because of Kafka.

Pause is the consumer's: the partitions of paused queues (looked up in the store at most once
a second) are paused, so their records stay in Kafka until the queue resumes.

Fallbacks, so a job never waits on Kafka alone: while the consumer cannot be started `claim`
and `wait_for_jobs` are the store's own; after a wait that brought nothing (one poll interval
of silence) the next empty take asks the store, once. A worker of every queue (`*`) cannot
name its topics in advance and claims from the store. Every other method is the store's
(`__getattr__`), so this object is a Store to whoever holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from collections.abc import Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from conveyor.config import Settings
from conveyor.domain.job import ALL_QUEUES, Job
from conveyor.store.base import Store
from conveyor.transport import kafka
from conveyor.transport.base import StoreOverlay

log = structlog.get_logger("conveyor.transport")

# Records one wait may buffer; ids are small and the partitions are this worker's anyway.
WAIT_RECORDS = 500
REWIND_CHECK_TIMEOUT = 2.0  # the rewind check is skipped when the broker is this slow
PAUSE_CHECK = 1.0  # seconds between looks at which queues are paused
RETRY_START = (0.5, 10.0)  # after a failed consumer start, back off between these


def offsets_to_commit(records: Sequence[Any]) -> dict[Any, int]:
    """Per partition, the offset to commit after these records: one past the last. Records of
    a partition are taken in offset order, so the last one closes a contiguous prefix."""
    out: dict[Any, int] = {}
    for r in records:
        tp = (r.topic, r.partition)
        out[tp] = max(out.get(tp, 0), r.offset + 1)
    return out


class KafkaWorkerStore(StoreOverlay):
    def __init__(self, store: Store, settings: Settings) -> None:
        super().__init__(store)
        self._settings = settings
        self._prefix = settings.kafka_topic_prefix
        self._consumer: Any = None
        self._topics: dict[str, tuple[str, str]] = {}  # topic -> (queue, band)
        self._queues: set[str] = set()  # those the consumer reads
        self._buffer: dict[str, deque[Any]] = {band: deque() for band in kafka.BANDS}
        self._poll_store = True  # the first claim looks in the store too
        self._paused: set[str] = set()
        self._paused_at = float("-inf")
        self._retry_at = 0.0
        self._backoff = 0.0
        self._to_commit: dict[tuple[str, int], int] = {}
        self._committer: asyncio.Task[None] | None = None
        self.taken = 0  # ids taken from Kafka (tests and benchmarks read it)
        self.from_store = 0  # jobs claimed by the store fallback
        self.rewound = 0  # partitions read again from their start
        self._rewind_checked = float("-inf")

    # -- claim ----------------------------------------------------------------------------
    async def claim(
        self, worker_id: str, queues: Sequence[str], limit: int, lease_seconds: float
    ) -> list[Job]:
        if limit <= 0 or not queues:
            return []
        consumer = await self._ensure(queues)
        if consumer is None:
            return await self._store.claim(worker_id, queues, limit, lease_seconds)
        await self._apply_pauses(consumer)
        try:
            records = await self._take(consumer, limit)
        except KafkaError as exc:  # the broker's trouble is not the worker's: ask the store
            log.info("kafka fetch failed", error=f"{type(exc).__name__}: {exc}")
            records, self._poll_store = [], True
        if not records:
            if self._poll_store:
                jobs = await self._store.claim(worker_id, queues, limit, lease_seconds)
                # A full batch: more may wait that Kafka does not bring (a broker down or
                # restarted empty), so the next claim asks the store again.
                self._poll_store = len(jobs) >= limit
                self.from_store += len(jobs)
                if jobs:  # ready jobs Kafka did not bring: a log that started again?
                    await self._rewind_if_past_end(consumer)
                return jobs
            return []
        ids = list(dict.fromkeys(uuid.UUID(r.value.decode()) for r in records))
        self.taken += len(ids)
        try:
            jobs = await self._store.claim_ids(worker_id, ids, lease_seconds)
        except BaseException:
            # The claim may or may not have committed (the worker reclaims what did): the
            # records are read again, uncommitted, and the store decides.
            self._rewind_to(consumer, records)
            raise
        for tp, offset in offsets_to_commit(records).items():
            self._to_commit[tp] = max(self._to_commit.get(tp, 0), offset)
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_loop(consumer))
        return jobs

    def _rewind_to(self, consumer: Any, records: Sequence[Any]) -> None:
        first: dict[tuple[str, int], int] = {}
        for r in records:
            tp = (r.topic, r.partition)
            first[tp] = min(first.get(tp, r.offset), r.offset)
        for (topic, partition), offset in first.items():
            with contextlib.suppress(Exception):  # a partition no longer this worker's
                consumer.seek(TopicPartition(topic, partition), offset)
        for band, buffered in self._buffer.items():  # they follow the records in each log
            self._buffer[band] = deque(r for r in buffered if (r.topic, r.partition) not in first)

    async def _take(self, consumer: Any, limit: int) -> list[Any]:
        """Up to `limit` records, a higher band's before a lower one's: first those buffered,
        then those the consumer has fetched. Records of paused queues stay buffered."""
        taken: list[Any] = []
        for band in kafka.BANDS:
            want = limit - len(taken)
            if want <= 0:
                break
            buffered = self._buffer[band]
            kept: deque[Any] = deque()
            while buffered and want > 0:
                r = buffered.popleft()
                if self._topics[r.topic][0] in self._paused:
                    kept.append(r)
                else:
                    taken.append(r)
                    want -= 1
            kept.extend(buffered)
            self._buffer[band] = kept
            if want <= 0:
                break
            parts = [
                tp
                for tp in consumer.assignment()
                if self._topics.get(tp.topic, ("", ""))[1] == band
                and self._topics[tp.topic][0] not in self._paused
            ]
            if not parts:
                continue
            try:
                fetched = await consumer.getmany(*parts, timeout_ms=0, max_records=want)
            except KafkaError:
                if not taken:
                    raise
                return taken  # what is in hand gets claimed; the failed band waits its turn
            for rs in fetched.values():
                taken.extend(rs)
        return taken

    # -- waiting --------------------------------------------------------------------------
    async def wait_for_jobs(self, queues: Sequence[str], timeout: float) -> None:
        consumer = self._consumer if set(queues) == self._queues else None
        if consumer is None:
            await self._store.wait_for_jobs(queues, timeout)
            return
        paused = self._paused
        if any(self._topics[r.topic][0] not in paused for b in self._buffer.values() for r in b):
            return  # the next claim has records to take
        try:
            fetched = await consumer.getmany(
                timeout_ms=int(max(timeout, 0.01) * 1000), max_records=WAIT_RECORDS
            )
        except KafkaError as exc:
            log.info("kafka fetch failed", error=f"{type(exc).__name__}: {exc}")
            await self._store.wait_for_jobs(queues, timeout)
            self._poll_store = True
            return
        got = False
        for tp, rs in fetched.items():
            self._buffer[self._topics[tp.topic][1]].extend(rs)
            got = got or bool(rs)
        self._poll_store = not got

    # -- the consumer -----------------------------------------------------------------------
    async def _ensure(self, queues: Sequence[str]) -> Any:
        if self._consumer is not None:
            # One worker, one set of queues: another set (not something a worker does) is
            # served by the store.
            return self._consumer if set(queues) == self._queues else None
        if ALL_QUEUES in queues or time.monotonic() < self._retry_at:
            return None
        topics = {
            kafka.jobs_topic(self._prefix, q, band): (q, band)
            for q in dict.fromkeys(queues)
            for band in kafka.BANDS
        }
        s = self._settings
        consumer = AIOKafkaConsumer(
            **kafka.client_options(s),
            group_id=s.kafka_group or f"{self._prefix}.workers",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(s.kafka_session_timeout * 1000),
            heartbeat_interval_ms=int(s.kafka_heartbeat_interval * 1000),
            fetch_max_wait_ms=int(s.kafka_fetch_max_wait * 1000),
        )
        try:
            await kafka.ensure_topics(s, sorted(topics))
            await consumer.start()
            consumer.subscribe(sorted(topics), listener=_DropRevoked(self))
        except Exception as exc:
            with contextlib.suppress(Exception):
                await consumer.stop()
            self._backoff = min(RETRY_START[1], max(RETRY_START[0], self._backoff * 2))
            self._retry_at = time.monotonic() + self._backoff
            log.warning(
                "kafka consumer did not start; claiming from the store meanwhile",
                error=f"{type(exc).__name__}: {exc}",
            )
            return None
        self._backoff = 0.0
        self._queues = set(queues)
        self._topics = topics
        self._consumer = consumer
        return consumer

    @property
    def assignment(self) -> set[Any]:
        """The partitions this worker's consumer owns now (empty before it joined)."""
        return set(self._consumer.assignment()) if self._consumer is not None else set()

    async def _rewind_if_past_end(self, consumer: Any) -> None:
        """A broker that lost its log (it came back empty) may answer a fetch past the end with
        nothing instead of "offset out of range", so the consumer would wait at its old position
        for ever: a partition whose position is past its end is read again from the start (at
        most once a second; what it re-reads the store refuses or runs once)."""
        now = time.monotonic()
        if now - self._rewind_checked < PAUSE_CHECK:
            return
        self._rewind_checked = now
        assigned = list(consumer.assignment())
        if not assigned:
            return
        try:
            async with asyncio.timeout(REWIND_CHECK_TIMEOUT):
                ends = await consumer.end_offsets(assigned)
                for tp in assigned:
                    if await consumer.position(tp) > ends.get(tp, 0):
                        consumer.seek(tp, 0)
                        self.rewound += 1
        except Exception as exc:
            log.info("kafka offsets not checked", error=f"{type(exc).__name__}: {exc}")

    def drop(self, partitions: Any) -> None:
        """Partitions revoked in a rebalance: their buffered records are the next owner's."""
        gone = {(tp.topic, tp.partition) for tp in partitions}
        for band, records in self._buffer.items():
            self._buffer[band] = deque(r for r in records if (r.topic, r.partition) not in gone)

    async def _apply_pauses(self, consumer: Any) -> None:
        now = time.monotonic()
        if now - self._paused_at >= PAUSE_CHECK:
            self._paused_at = now
            self._paused = {q.name for q in await self._store.list_queue_settings() if q.paused}
        assigned = consumer.assignment()
        pause = [tp for tp in assigned if self._topics[tp.topic][0] in self._paused]
        resume = [tp for tp in consumer.paused() if self._topics[tp.topic][0] not in self._paused]
        if pause:
            consumer.pause(*pause)
        if resume:
            consumer.resume(*resume)

    async def _commit_loop(self, consumer: Any) -> None:
        """Commit what was claimed, batched: one commit carries every claim made meanwhile. A
        failed commit (a rebalance took the partition) only means the records come again."""
        while self._to_commit:
            batch, self._to_commit = self._to_commit, {}
            offsets = {TopicPartition(*tp): OffsetAndMetadata(o, "") for tp, o in batch.items()}
            try:
                await consumer.commit(offsets)
            except Exception as exc:
                log.info("kafka offset commit failed", error=f"{type(exc).__name__}: {exc}")

    async def deregister_worker(self, worker_id: str) -> None:
        """A stopping worker commits what it claimed and leaves the group."""
        await self.close()
        await self._store.deregister_worker(worker_id)

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        # Apart: a commit stuck on a broker that is down (wait_for cancels it) must not keep
        # the consumer running and in the group until its session times out.
        if self._committer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._committer, self._settings.kafka_request_timeout)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(consumer.stop(), self._settings.kafka_request_timeout)


class _DropRevoked(ConsumerRebalanceListener):  # type: ignore[misc]
    """Drops a revoked partition's buffered records."""

    def __init__(self, owner: KafkaWorkerStore) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self._owner.drop(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None
