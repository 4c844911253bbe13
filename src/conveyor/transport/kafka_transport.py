"""The Kafka transport, service side: nothing to send after a commit, a relay to run.

What reaches Kafka goes through the outbox: every transition that leaves a job queued
(created ready, promoted, released, reaped, requeued) writes its outbox row in its own
transaction, and the relay (`relay.Relay`) sends the job's id to its dispatch topic, by queue
and priority band (`kafka.jobs_topic`), before deleting the row. So `dispatch` has nothing to
do but wake this process's relay, and `sweep`, run with every process's housekeeping, makes
sure a relay runs in that process (one leads among all relays, through the store); the leader
also re-dispatches jobs queued in the store for longer than `kafka_redispatch_after` (a lost
message: a broker that came back empty), so losing Kafka costs latency, never a job.
The worker side is `kafka_worker`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import structlog

from conveyor.config import Settings
from conveyor.domain.errors import ConfigError
from conveyor.domain.job import Job
from conveyor.store.base import Store
from conveyor.transport.base import HeldIds
from conveyor.transport.kafka_worker import KafkaWorkerStore
from conveyor.transport.relay import Relay, running_relay, wake_relays

log = structlog.get_logger("conveyor.transport.kafka")


class KafkaTransport:
    name = "kafka"

    def __init__(self, settings: Settings) -> None:
        if not settings.kafka_bootstrap:
            raise ConfigError(
                "CONVEYOR_TRANSPORT=kafka needs CONVEYOR_KAFKA_BOOTSTRAP (host:port[,...])",
                field="kafka_bootstrap",
            )
        self.settings = settings
        self.relay: Relay | None = None
        self._relay_task: asyncio.Task[None] | None = None
        self._workers: list[KafkaWorkerStore] = []

    async def dispatch(self, jobs: Sequence[Job]) -> None:
        """The outbox row written with the change is the dispatch; a relay of this process
        looks at once (one in another process finds it after its interval)."""
        wake_relays()

    async def sweep(self, store: Store) -> None:
        task = self._relay_task
        if task is not None and not task.done():
            return
        if task is not None and not task.cancelled() and task.exception() is not None:
            log.error("relay stopped by an error", error=repr(task.exception()))
        self._relay_task = None  # ended: close() must not stop a relay this one adopts
        # The scheduler's or the server's relay, if this process runs one: one is enough.
        other = running_relay(self.settings)
        if other is not None:
            self.relay = other
            return
        self.relay = Relay(store, self.settings)
        self._relay_task = asyncio.create_task(self.relay.run(), name="conveyor-relay")

    def worker_store(self, store: Store) -> Store:
        ws = KafkaWorkerStore(store, self.settings)
        self._workers.append(ws)
        return ws

    async def problem(self) -> str | None:
        relay = self.relay
        if relay is not None and relay.last_error is not None:
            return f"kafka: {relay.last_error}"
        return None

    async def held(self, queues: Sequence[str]) -> dict[str, HeldIds] | None:
        """None: what waits in a topic is the consumer group's lag, which Kafka's own tools
        show per partition; the store's queued counts say the same per queue."""
        return None

    async def close(self) -> None:
        if self.relay is not None and self._relay_task is not None:
            self.relay.stop()
            with contextlib.suppress(Exception):
                await self._relay_task
        self._relay_task = None
        for ws in self._workers:
            await ws.close()
        self._workers.clear()
