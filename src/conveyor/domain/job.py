"""The job model: statuses and their legal transitions, the submission and the stored job.

Pure: no I/O, no clocks read. Stores, the service and the worker consult this module instead
of re-deciding rules, so a rule changes in one place.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from conveyor.domain.errors import IllegalTransition

JSON = dict[str, Any]
# A payload is any JSON value (object, array, string, number, boolean, null).
Payload = Any


class JobStatus(enum.StrEnum):
    SCHEDULED = "scheduled"  # waiting for run_at
    QUEUED = "queued"  # ready; a worker may claim it
    RUNNING = "running"  # claimed under a lease
    RETRYING = "retrying"  # failed, waiting for its backoff to pass
    COMPLETED = "completed"
    DEAD = "dead"  # retries exhausted or non-retryable: the dead-letter queue
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.DEAD, JobStatus.CANCELLED})
WAITING = frozenset({JobStatus.SCHEDULED, JobStatus.RETRYING})

_S = JobStatus
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    _S.SCHEDULED: frozenset({_S.QUEUED, _S.CANCELLED}),
    _S.QUEUED: frozenset({_S.RUNNING, _S.CANCELLED}),
    # running -> queued: lease reaped, or handed back on shutdown. running -> scheduled: handed
    # back with a delay (an open circuit breaker defers the job without charging an attempt).
    _S.RUNNING: frozenset(
        {_S.COMPLETED, _S.RETRYING, _S.DEAD, _S.QUEUED, _S.SCHEDULED, _S.CANCELLED}
    ),
    _S.RETRYING: frozenset({_S.QUEUED, _S.CANCELLED}),
    _S.COMPLETED: frozenset(),
    # dead -> queued: requeue from the DLQ (optionally with an edited payload).
    _S.DEAD: frozenset({_S.QUEUED}),
    _S.CANCELLED: frozenset(),
}


def can_transition(src: JobStatus, dst: JobStatus) -> bool:
    return dst in TRANSITIONS[src]


def ensure_transition(src: JobStatus, dst: JobStatus) -> None:
    if not can_transition(src, dst):
        raise IllegalTransition(f"a {src.value} job cannot become {dst.value}")


DEFAULT_QUEUE = "default"
# A worker's queue list of exactly [ALL_QUEUES] consumes every queue, including queues created
# after it started (`conveyor dev` does by default). Not a valid queue name, so never a queue.
ALL_QUEUES = "*"
DEFAULT_MAX_RETRIES = 3
DEFAULT_TIMEOUT = 300.0


@dataclass(slots=True)
class NewJob:
    """A validated submission, ready for the store. `run_at` None means "now"."""

    type: str
    payload: Payload = field(default_factory=dict)
    queue: str = DEFAULT_QUEUE
    priority: int = 0
    run_at: datetime | None = None
    max_retries: int = DEFAULT_MAX_RETRIES
    timeout: float = DEFAULT_TIMEOUT
    unique_key: str | None = None
    tags: list[str] = field(default_factory=list)
    tenant: str | None = None
    id: uuid.UUID | None = None  # assigned by the service/store when None
    # The payload's JSON, set by JobService.validate: stores write these bytes rather than
    # encode the payload again. None (a record built by hand) means "encode `payload`".
    payload_json: bytes | None = None


@dataclass(slots=True)
class Job:
    id: uuid.UUID
    queue: str
    type: str
    payload: Payload
    priority: int
    status: JobStatus
    run_at: datetime
    attempt: int
    max_retries: int
    timeout: float
    unique_key: str | None
    tags: list[str]
    tenant: str | None
    result: Any
    last_error: str | None
    worker_id: str | None  # while running: the lease holder; once completed: who ran it
    lease_expires_at: datetime | None
    lease_token: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime

    @property
    def attempts_left(self) -> int:
        """Retries still allowed after the current attempt (attempt counts the running one)."""
        return max(0, self.max_retries + 1 - self.attempt)
