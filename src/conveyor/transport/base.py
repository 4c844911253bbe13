"""The transport seam: how a ready job's id reaches a worker, with the store the truth.

A transport has two sides, chosen together by `Settings.transport` (see `open_transport`):

* the service side, `Transport.dispatch`: "these jobs were just committed as ready", called
  after the enqueue commits, and `Transport.sweep`, run with the housekeeping, which puts back
  what the transport lost (a dead worker's taken ids, a flushed Redis) and dispatches jobs
  that became ready in the store without passing through `dispatch` (promoted delayed and
  retrying jobs, reaped leases, released and requeued jobs, submits made while it was down);
* the worker side, `Transport.worker_store`: the store a worker runs on, whose `claim` and
  `wait_for_jobs` take ids from the transport and claim exactly those in the store
  (`Store.claim_ids`), falling back to the store's own `claim` whenever the transport cannot
  answer. Every other call goes to the store unchanged.

Neither side may lose a job by failing: the store decides who runs a job, a transport only
shortens the way to it. So `dispatch` and `sweep` never raise for the transport's own outage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from conveyor.domain.job import ALL_QUEUES, DEFAULT_QUEUE, Job
from conveyor.store.base import Store


@dataclass(frozen=True, slots=True)
class HeldIds:
    """One queue's ids in a transport: `ready` to take, and `processing`, taken by a worker
    whose store claim is not acknowledged yet (a dead worker's stay there until the sweep
    puts them back). Shown next to the store's counts, they say whether jobs reach workers."""

    ready: int
    processing: int


async def swept_queues(store: Store) -> list[tuple[str, bool]]:
    """The queues a transport's sweep looks at, by name, each with whether it is paused: every
    queue a registered worker names, every queue with settings, and the default. Not "*": a
    worker on every queue claims from the store."""
    settings = {q.name: q for q in await store.list_queue_settings()}
    names = {q for w in await store.list_workers() for q in w.queues}
    names = (names | set(settings) | {DEFAULT_QUEUE}) - {ALL_QUEUES}
    return [(n, n in settings and settings[n].paused) for n in sorted(names)]


class StoreOverlay:
    """Base of a transport's worker store: `claim` and `wait_for_jobs` are the transport's
    (a subclass defines them), every other call is the store's own."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class Transport(Protocol):
    name: str

    async def dispatch(self, jobs: Sequence[Job]) -> None:
        """Jobs just committed; the queued ones among them are ready now."""

    async def sweep(self, store: Store) -> None:
        """Recover and re-dispatch what the transport lost (bounded; run with maintenance)."""

    def worker_store(self, store: Store) -> Store:
        """The store a worker of this process runs on."""

    async def problem(self) -> str | None:
        """None when the transport works; else why not. A transport's outage degrades
        latency, not service: readiness reports it without failing."""

    async def held(self, queues: Sequence[str]) -> dict[str, HeldIds] | None:
        """Per queue, the ids the transport holds now; None if it holds none (the store's)
        or cannot say right now (Redis down): never raises for its own outage."""

    async def close(self) -> None: ...


class StoreTransport:
    """The default: workers claim straight from the store; nothing to dispatch or sweep."""

    name = "store"

    async def dispatch(self, jobs: Sequence[Job]) -> None:
        return None

    async def sweep(self, store: Store) -> None:
        return None

    def worker_store(self, store: Store) -> Store:
        return store

    async def problem(self) -> str | None:
        return None

    async def held(self, queues: Sequence[str]) -> dict[str, HeldIds] | None:
        return None

    async def close(self) -> None:
        return None
