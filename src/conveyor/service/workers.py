"""The worker protocol as a use case, for workers that reach the store through a server.

A direct worker calls the store itself; a remote one (over gRPC) gets the same operations
here, with the checks a server owes an untrusted caller: names and bounds validated, batches
capped. Lease fencing needs nothing extra: every outcome and heartbeat is a guarded update on
(id, lease_token), so a caller can only ever touch the jobs its own claims handed out.

`fetch` long-polls: when nothing is ready it waits on the store's wake-up signal
(LISTEN/NOTIFY on PostgreSQL) and claims again, so an idle remote worker costs one call per
`wait_seconds`, and a job submitted meanwhile starts within milliseconds.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Sequence

from conveyor.config import Settings
from conveyor.domain.errors import InvalidInput
from conveyor.domain.job import ALL_QUEUES, JSON, Job
from conveyor.domain.limits import MAX_BATCH, NAME_RE
from conveyor.domain.records import Completion, Failure, Lease, Release, WorkerInfo
from conveyor.store.base import Store

MAX_WAIT = 30.0
MAX_LEASE = 86_400.0
MAX_QUEUES = 100
MAX_WORKER_ID = 200
MAX_HELD = 10_000  # a worker's concurrency limit


def _worker_id(value: str) -> str:
    if not 0 < len(value) <= MAX_WORKER_ID:
        raise InvalidInput(f"worker_id must be 1-{MAX_WORKER_ID} characters", field="worker_id")
    return value


def _queues(values: Sequence[str]) -> list[str]:
    if list(values) == [ALL_QUEUES]:
        return [ALL_QUEUES]
    if not 0 < len(values) <= MAX_QUEUES:
        raise InvalidInput(
            f"queues must list 1-{MAX_QUEUES} queues, or be [{ALL_QUEUES!r}] for all of them",
            field="queues",
        )
    for q in values:
        if not NAME_RE.match(q):
            raise InvalidInput(f"queue name {q!r} is not valid", field="queues")
    return list(values)


def _seconds(value: float, field: str, lo: float, hi: float, *, open_lo: bool = False) -> float:
    ok = math.isfinite(value) and (lo < value if open_lo else lo <= value) and value <= hi
    if not ok:
        raise InvalidInput(
            f"{field} must be in {'(' if open_lo else '['}{lo:g}, {hi:g}]", field=field
        )
    return value


def _batch(items: Sequence[object], field: str) -> None:
    if len(items) > MAX_BATCH:
        raise InvalidInput(f"at most {MAX_BATCH} {field} per call", field=field)


class WorkerGateway:
    def __init__(self, store: Store, settings: Settings | None = None) -> None:
        self.store = store
        self.settings = settings or Settings()
        # Set when the server shuts down: parked long-polls answer (empty) within one slice.
        self.closing = False

    async def register(self, info: WorkerInfo) -> None:
        _worker_id(info.id)
        _queues(info.queues)
        if not 0 < info.concurrency <= 10_000:
            raise InvalidInput("concurrency must be in [1, 10000]", field="concurrency")
        await self.store.register_worker(info)

    async def deregister(self, worker_id: str) -> None:
        await self.store.deregister_worker(_worker_id(worker_id))

    async def fetch(
        self,
        worker_id: str,
        queues: Sequence[str],
        max_jobs: int,
        lease_seconds: float,
        wait_seconds: float,
    ) -> list[Job]:
        _worker_id(worker_id)
        wanted = _queues(queues)
        if not 0 < max_jobs <= MAX_BATCH:
            raise InvalidInput(f"max_jobs must be in [1, {MAX_BATCH}]", field="max_jobs")
        lease = _seconds(lease_seconds, "lease_seconds", 0, MAX_LEASE, open_lo=True)
        wait = _seconds(wait_seconds, "wait_seconds", 0, MAX_WAIT)
        jobs = await self._claim(worker_id, wanted, max_jobs, lease)
        deadline = time.monotonic() + wait
        # Wake-ups can be missed (another claimer took the jobs, a NOTIFY was lost): wait in
        # slices of the poll interval and claim again, like a direct worker's fetch loop.
        while not jobs and not self.closing:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await self.store.wait_for_jobs(wanted, min(remaining, self.settings.poll_interval))
            jobs = await self._claim(worker_id, wanted, max_jobs, lease)
        return jobs

    async def _claim(
        self, worker_id: str, queues: list[str], limit: int, lease: float
    ) -> list[Job]:
        """A claim that a cancelled caller (a worker that hung up) cannot strand: it runs to
        the end, and its jobs are handed back without charging their attempt."""
        task = asyncio.ensure_future(self.store.claim(worker_id, queues, limit, lease))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            jobs = await task
            await self.hand_back(jobs)
            raise

    async def reclaim(
        self, worker_id: str, held: Sequence[uuid.UUID], lease_seconds: float
    ) -> list[Job]:
        """A worker's Fetch failed on the way back: its orphaned jobs, re-leased (Store.reclaim).
        `held` is at most one entry per slot of the largest worker."""
        _worker_id(worker_id)
        if len(held) > MAX_HELD:
            raise InvalidInput(f"held lists at most {MAX_HELD} job ids", field="held")
        lease = _seconds(lease_seconds, "lease_seconds", 0, MAX_LEASE, open_lo=True)
        return await self.store.reclaim(worker_id, held, lease)

    async def hand_back(self, jobs: Sequence[Job]) -> None:
        """Return claimed jobs whose caller went away before receiving them."""
        if jobs:
            await self.store.release_many(
                [Release(j.id, j.lease_token, reason="fetch abandoned") for j in jobs]
            )

    async def complete(self, completions: Sequence[Completion]) -> list[uuid.UUID]:
        _batch(completions, "completions")
        return await self.store.complete_many(completions) if completions else []

    async def fail(self, failures: Sequence[Failure]) -> list[uuid.UUID]:
        _batch(failures, "failures")
        return await self.store.fail_many(failures) if failures else []

    async def release(self, releases: Sequence[Release]) -> list[uuid.UUID]:
        _batch(releases, "releases")
        return await self.store.release_many(releases) if releases else []

    async def heartbeat(
        self,
        worker_id: str,
        leases: Sequence[Lease],
        lease_seconds: float,
        status: tuple[int, JSON | None] | None = None,
    ) -> list[uuid.UUID]:
        """Extend the leases; with `status` (running count, meta) also refresh the worker row."""
        _worker_id(worker_id)
        _batch(leases, "leases")
        held: list[uuid.UUID] = []
        if leases:
            lease = _seconds(lease_seconds, "lease_seconds", 0, MAX_LEASE, open_lo=True)
            held = await self.store.heartbeat(worker_id, leases, lease)
        if status is not None:
            running, meta = status
            await self.store.touch_worker(worker_id, max(0, running), meta)
        return held
