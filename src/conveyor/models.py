"""The job model: statuses, legal transitions and the retry policy. Pure: no I/O, no clocks read.

Stores and the worker consult this module instead of re-deciding rules, so a rule changes in
one place.
"""

from __future__ import annotations

import enum
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from conveyor.errors import IllegalTransition

JSON = dict[str, Any]


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


class Role(enum.StrEnum):
    """Who a principal is to the policy table (conveyor.security.policy)."""

    ADMIN = "admin"
    USER = "user"  # submits and reads the jobs of one tenant
    WORKER = "worker"  # the worker protocol only


DEFAULT_QUEUE = "default"
DEFAULT_MAX_RETRIES = 3
DEFAULT_TIMEOUT = 300.0


@dataclass(slots=True)
class NewJob:
    """A validated submission, ready for the store. `run_at` None means "now"."""

    type: str
    payload: JSON = field(default_factory=dict)
    queue: str = DEFAULT_QUEUE
    priority: int = 0
    run_at: datetime | None = None
    max_retries: int = DEFAULT_MAX_RETRIES
    timeout: float = DEFAULT_TIMEOUT
    unique_key: str | None = None
    tags: list[str] = field(default_factory=list)
    tenant: str | None = None
    id: uuid.UUID | None = None  # assigned by the service/store when None


@dataclass(slots=True)
class Job:
    id: uuid.UUID
    queue: str
    type: str
    payload: JSON
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
    worker_id: str | None
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


@dataclass(frozen=True, slots=True)
class Retry:
    at: datetime


@dataclass(frozen=True, slots=True)
class Dead:
    reason: str


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter on the upper half, capped.

    delay(n) = min(cap, base * factor**(n-1)), then a random point in [delay/2, delay]: the
    floor keeps retries from hammering a sick dependency, the jitter keeps a burst of failures
    from retrying in lockstep.
    """

    base: float = 1.0
    factor: float = 2.0
    cap: float = 3600.0
    jitter: bool = True

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        if attempt < 1:
            raise ValueError("attempt starts at 1")
        raw = min(self.cap, self.base * self.factor ** (attempt - 1))
        if not self.jitter:
            return raw
        r = (rng or random).random()
        return raw / 2 + r * raw / 2

    def decide(
        self,
        *,
        attempt: int,
        max_retries: int,
        now: datetime,
        retryable: bool = True,
        rng: random.Random | None = None,
    ) -> Retry | Dead:
        """What happens after attempt number `attempt` failed."""
        if not retryable:
            return Dead("non-retryable error")
        if attempt > max_retries:
            return Dead(f"retries exhausted after {attempt} attempts")
        return Retry(now + timedelta(seconds=self.delay(attempt, rng)))


class NonRetryable(Exception):
    """Raise from a handler (or wrap an error in it) to send the job straight to the DLQ."""
