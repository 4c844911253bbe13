"""WorkerStore: the part of the Store a worker uses.

The executor depends on this narrower protocol, not on `Store`, so that the same Worker runs
against a store directly or against a Conveyor server over gRPC
(`conveyor.grpc.remote.RemoteWorkerStore`), which can offer the worker protocol and nothing
else. Every `Store` satisfies it structurally.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol

from conveyor.domain.job import JSON, Job
from conveyor.domain.records import Completion, Failure, Lease, Release, WorkerInfo


class WorkerStore(Protocol):
    async def claim(
        self, worker_id: str, queues: Sequence[str], limit: int, lease_seconds: float
    ) -> list[Job]: ...

    async def complete_many(self, completions: Sequence[Completion]) -> list[uuid.UUID]: ...

    async def fail_many(self, failures: Sequence[Failure]) -> list[uuid.UUID]: ...

    async def release_many(self, releases: Sequence[Release]) -> list[uuid.UUID]: ...

    async def heartbeat(
        self, worker_id: str, leases: Sequence[Lease], lease_seconds: float
    ) -> list[uuid.UUID]: ...

    async def reclaim(
        self, worker_id: str, held: Sequence[uuid.UUID], lease_seconds: float
    ) -> list[Job]: ...

    async def wait_for_jobs(self, queues: Sequence[str], timeout: float) -> None: ...

    async def register_worker(self, info: WorkerInfo) -> None: ...

    async def touch_worker(
        self, worker_id: str, running: int, meta: JSON | None = None
    ) -> None: ...

    async def deregister_worker(self, worker_id: str) -> None: ...
