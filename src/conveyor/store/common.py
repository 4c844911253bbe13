"""What both store drivers decide the same way, written once: a batch's ids and its duplicate
unique keys, the queue-full refusal, what a lost lease becomes, a job's history from its rows.
Dialect-free and I/O-free; a driver calls these and keeps only its SQL and its connection
handling.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from conveyor.domain.errors import QueueFull
from conveyor.domain.ids import new_job_id
from conveyor.domain.job import Job, JobStatus, NewJob
from conveyor.domain.records import Enqueued, JobEvent
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


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A job_events row as written since migration 0005. Creation, claims and completion are
    not stored: the job row holds them (created_at; started_at, worker_id and attempt while it
    runs and once completed; finished_at). Any other transition out of `running` carries its
    attempt's `started_at`, from which the claim that began the attempt is rebuilt. A job that
    succeeds first time so writes no event row instead of three. Rows written before 0005
    (creation, claim and completion rows, no started_at) read back unchanged."""

    at: datetime
    from_status: JobStatus | None
    to_status: JobStatus
    attempt: int
    worker_id: str | None
    message: str | None
    started_at: datetime | None


def audit_trail(job: Job, rows: Sequence[StoredEvent]) -> list[JobEvent]:
    """The job's full history, oldest first, from its stored rows (in write order) and its row.

    Event ids number the job's history from 1: they are stable, as history only grows at
    the end (a running attempt's claim keeps its place once the attempt's outcome is stored).
    """
    events: list[JobEvent] = []

    def add(
        at: datetime,
        from_status: JobStatus | None,
        to_status: JobStatus,
        attempt: int,
        worker_id: str | None = None,
        message: str | None = None,
    ) -> None:
        events.append(
            JobEvent(
                len(events) + 1, job.id, at, from_status, to_status, attempt, worker_id, message
            )
        )

    if not rows or rows[0].from_status is not None:
        # Only claims and completions change a job's status without a row, so the first stored
        # transition (or, with none, the job's status now, unless it was ever claimed) starts
        # from the status the job was created in.
        if rows:
            created = JobStatus.QUEUED if rows[0].started_at else rows[0].from_status
        else:
            created = JobStatus.QUEUED if job.started_at is not None else job.status
        assert created is not None
        add(job.created_at, None, created, 0)
    for r in rows:
        if r.started_at is not None:
            add(r.started_at, JobStatus.QUEUED, JobStatus.RUNNING, r.attempt, r.worker_id)
        add(r.at, r.from_status, r.to_status, r.attempt, r.worker_id, r.message)
    # The attempt under way, or the one that completed the job, is in the job row alone.
    last = events[-1]
    if (
        job.status is JobStatus.RUNNING
        and job.started_at is not None
        and (last.to_status is not JobStatus.RUNNING or last.attempt != job.attempt)
    ):
        add(job.started_at, JobStatus.QUEUED, JobStatus.RUNNING, job.attempt, job.worker_id)
    elif job.status is JobStatus.COMPLETED and last.to_status is not JobStatus.COMPLETED:
        assert job.started_at is not None and job.finished_at is not None
        if last.to_status is not JobStatus.RUNNING:  # a claim row written before 0005 stays
            add(job.started_at, JobStatus.QUEUED, JobStatus.RUNNING, job.attempt, job.worker_id)
        add(job.finished_at, JobStatus.RUNNING, JobStatus.COMPLETED, job.attempt, job.worker_id)
    return events
