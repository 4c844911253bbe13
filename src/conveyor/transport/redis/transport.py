"""The Redis transport, service side: dispatch ready ids after the commit, sweep what Redis lost.

Dispatch adds each ready job's member (see `keys`) to its queue's ready set and wakes one
waiting worker, one script call per queue. The sweep, run with the housekeeping (scheduler,
or a worker with maintenance), does per queue that workers serve or that has settings:

1. recovery: members whose claim deadline passed go from processing back to ready (their
   worker died, or lost Redis, between taking them and acknowledging its claim);
2. re-dispatch: the queue's oldest `transport_sweep_limit` queued, due jobs in the store
   (claim order) are offered again; the script adds only those neither ready nor being
   claimed. This is what brings in promoted delayed and retrying jobs, reaped and released
   jobs, and everything a flushed, failed-over or restarted Redis forgot. Paused queues are
   skipped (their jobs would only be refused) and picked up on the first sweep after resume,
   and so is a queue whose ready set already holds `transport_sweep_limit` ids (re-offering
   a full batch every tick would cost Redis and the store for nothing while workers are busy).

The queues swept: those of the workers registered in the store (a dead one's row stays until
it is pruned), those with settings, and `default`. A job offered twice is harmless: the
store's claim takes it once and refuses the other id.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from typing import cast

from conveyor import metrics
from conveyor.config import Settings
from conveyor.domain.errors import ConfigError
from conveyor.domain.job import Job, JobStatus
from conveyor.store.base import Store
from conveyor.transport.base import HeldIds, swept_queues
from conveyor.transport.redis.batch import DispatchBatcher
from conveyor.transport.redis.keys import QueueKeys, member
from conveyor.transport.redis.link import CALL_TIMEOUT, RedisError, RedisLink
from conveyor.transport.redis.worker_store import RedisWorkerStore

PING_TIMEOUT = 1.0


class RedisTransport:
    name = "redis"

    def __init__(self, settings: Settings) -> None:
        if not settings.redis_url:
            raise ConfigError(
                "CONVEYOR_TRANSPORT=redis needs CONVEYOR_REDIS_URL (redis://host:port/db)",
                field="redis_url",
            )
        self.settings = settings
        self.link = RedisLink(settings.redis_url)
        self.deadline_ms = int(settings.redis_claim_deadline * 1000)
        self._keys: dict[str, QueueKeys] = {}
        self._batcher = DispatchBatcher(self._send)

    def keys(self, queue: str) -> QueueKeys:
        k = self._keys.get(queue)
        if k is None:
            k = self._keys[queue] = QueueKeys.of(self.settings.transport_key_prefix, queue)
        return k

    async def dispatch(self, jobs: Sequence[Job]) -> None:
        if not self.link.available():
            return  # the sweep dispatches them once Redis answers
        by_queue: dict[str, list[str]] = {}
        for job in jobs:
            if job.status is JobStatus.QUEUED:
                by_queue.setdefault(job.queue, []).append(member(job.id, job.priority, job.run_at))
        if not by_queue:
            return
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                await self._batcher.add(by_queue)
        except (RedisError, TimeoutError) as exc:
            self.link.failed(exc)
            return
        self.link.ok()
        now = datetime.now(UTC)
        for job in jobs:
            if job.status is JobStatus.QUEUED:
                metrics.TRANSPORT_DISPATCH_LAG.observe(max(0.0, (now - job.run_at).total_seconds()))
        metrics.TRANSPORT_DISPATCHED.labels("enqueue").inc(sum(map(len, by_queue.values())))

    async def _send(self, queue: str, members: list[str]) -> object:
        return await self.link.dispatch(
            keys=self.keys(queue).all(), args=members, client=self.link.dispatcher
        )

    async def sweep(self, store: Store) -> None:
        if not self.link.available():
            return
        limit = self.settings.transport_sweep_limit
        for queue, paused in await swept_queues(store):
            keys = self.keys(queue)
            try:
                recovered, ready, processing = await self.link.recover(
                    keys=keys.all(), args=[limit]
                )
            except RedisError as exc:
                self.link.failed(exc)
                return
            metrics.TRANSPORT_RECOVERED.inc(recovered)
            metrics.TRANSPORT_SIZE.labels(queue, "ready").set(ready)
            metrics.TRANSPORT_SIZE.labels(queue, "processing").set(processing)
            if paused or ready >= limit:
                # Paused: its jobs would only be refused. A full batch already waiting in
                # Redis keeps the workers busy; what Redis misses is offered once it drains.
                continue
            due = await store.ready_jobs(queue, limit)
            if not due:
                continue
            try:
                added = await self.link.dispatch(
                    keys=keys.all(), args=[member(j.id, j.priority, j.run_at) for j in due]
                )
            except RedisError as exc:
                self.link.failed(exc)
                return
            if added:
                metrics.TRANSPORT_DISPATCHED.labels("sweep").inc(added)
                now = datetime.now(UTC)
                # The oldest re-dispatched job's wait says how late the sweep found it.
                metrics.TRANSPORT_DISPATCH_LAG.observe(
                    max(0.0, (now - min(j.run_at for j in due)).total_seconds())
                )
        self.link.ok()

    def worker_store(self, store: Store) -> Store:
        return RedisWorkerStore(store, self.link, self.keys, self.deadline_ms)

    async def problem(self) -> str | None:
        started = time.monotonic()
        try:
            async with asyncio.timeout(PING_TIMEOUT):
                await cast("Awaitable[bool]", self.link.client.ping())
        except (RedisError, TimeoutError) as exc:
            self.link.failed(exc)
            return f"redis unreachable ({time.monotonic() - started:.1f}s): {self.link.last_error}"
        self.link.ok()
        return None

    async def held(self, queues: Sequence[str]) -> dict[str, HeldIds] | None:
        """Both set sizes of every queue, in one round trip (a pipeline, not a transaction:
        each queue's keys have a Cluster slot of their own)."""
        if not self.link.available() or not queues:
            return None
        names = list(dict.fromkeys(queues))
        try:
            async with asyncio.timeout(PING_TIMEOUT):
                async with self.link.client.pipeline(transaction=False) as pipe:
                    for queue in names:
                        keys = self.keys(queue)
                        pipe.zcard(keys.ready)
                        pipe.zcard(keys.processing)
                    sizes = await pipe.execute()
        except (RedisError, TimeoutError) as exc:
            self.link.failed(exc)
            return None
        self.link.ok()
        return {q: HeldIds(int(sizes[2 * i]), int(sizes[2 * i + 1])) for i, q in enumerate(names)}

    async def close(self) -> None:
        await self.link.close()
