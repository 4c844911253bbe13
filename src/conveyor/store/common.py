"""What both store drivers decide the same way, written once: a batch's ids and its duplicate
unique keys, the queue-full refusal, what a lost lease becomes. Dialect-free and I/O-free; a
driver calls these and keeps only its SQL and its connection handling.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from conveyor.domain.errors import QueueFull
from conveyor.domain.ids import new_job_id
from conveyor.domain.job import JobStatus, NewJob
from conveyor.domain.records import Enqueued
from conveyor.domain.retry import retries_exhausted


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """A submission batch as the driver inserts it: every job with an id, and a job whose
    unique_key repeats an earlier one in the same batch folded into that earlier one."""

    ids: list[uuid.UUID]  # per input job
    to_insert: list[int]  # input positions the driver writes
    dup_of: dict[int, int]  # input position -> the earlier position with the same key

    def results(self, inserted: Sequence[Enqueued]) -> list[Enqueued]:
        """Input-order results from the driver's results for `to_insert` (same order)."""
        out: list[Enqueued | None] = [None] * len(self.ids)
        for i, res in zip(self.to_insert, inserted, strict=True):
            out[i] = res
        for i, first in self.dup_of.items():
            original = out[first]
            assert original is not None
            out[i] = Enqueued(original.job, created=False)
        return [r for r in out if r is not None]


def plan_batch(jobs: Sequence[NewJob]) -> BatchPlan:
    ids = [j.id if j.id is not None else new_job_id() for j in jobs]
    first_by_key: dict[str, int] = {}
    dup_of: dict[int, int] = {}
    to_insert: list[int] = []
    for i, job in enumerate(jobs):
        if job.unique_key is not None:
            first = first_by_key.get(job.unique_key)
            if first is not None:
                dup_of[i] = first
                continue
            first_by_key[job.unique_key] = i
        to_insert.append(i)
    return BatchPlan(ids, to_insert, dup_of)


def queue_full(names: Sequence[str]) -> QueueFull:
    """The refusal when a batch would take queues past their max_depth (nothing is written)."""
    return QueueFull(f"queue depth limit reached: {', '.join(sorted(set(names)))}")


def lost_lease_status(attempt: int, max_retries: int) -> JobStatus:
    """A reaped job's lost attempt stays counted: back to queued, or dead when it was the last."""
    return JobStatus.DEAD if retries_exhausted(attempt, max_retries) else JobStatus.QUEUED


def lost_lease_message(worker_id: str | None) -> str:
    return f"lease expired (worker {worker_id or 'unknown'})"
