"""The records every floor passes around: what a worker reports, what a store returns, the
rows behind queues, workers, schedules, users and tokens. Pure data, no I/O.

Split from the Store protocol (conveyor.store.base) so that doors, the worker and the client
side can name them without importing the store.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from conveyor.domain.job import JSON, Job, JobStatus


@dataclass(frozen=True, slots=True)
class Lease:
    """Proof that a worker holds a job: the fencing token handed out by its claim."""

    job_id: uuid.UUID
    lease_token: int


@dataclass(frozen=True, slots=True)
class Completion:
    job_id: uuid.UUID
    lease_token: int
    result: Any = None
    # `result` as JSON, when the worker already encoded it (to check the store can keep it):
    # stores and the gRPC client send these bytes rather than encode the result again.
    result_json: bytes | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed attempt. `retry_at` set: status -> retrying with run_at = retry_at.
    `retry_at` None: status -> dead (the DLQ). `error` goes to last_error (with traceback)."""

    job_id: uuid.UUID
    lease_token: int
    error: str
    retry_at: datetime | None


@dataclass(frozen=True, slots=True)
class Release:
    """Hand a running job back without charging the attempt (graceful shutdown, open breaker).
    status -> queued (run_at None) or scheduled (run_at set); attempt is decremented by one."""

    job_id: uuid.UUID
    lease_token: int
    run_at: datetime | None = None
    reason: str = "released"


@dataclass(frozen=True, slots=True)
class Enqueued:
    job: Job
    created: bool  # False: an existing live job with the same unique_key was returned


@dataclass(frozen=True, slots=True)
class ReadyJob:
    """A queued, due job as a transport orders it (priority desc, run_at, id)."""

    id: uuid.UUID
    queue: str
    priority: int
    run_at: datetime
    # When the job last changed (became queued, for a queued job: created, promoted, reaped,
    # released, requeued): how long it has been ready, whatever its run_at says.
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class JobEvent:
    id: int
    job_id: uuid.UUID
    at: datetime
    from_status: JobStatus | None  # None for the creation event
    to_status: JobStatus
    attempt: int
    worker_id: str | None
    message: str | None


@dataclass(frozen=True, slots=True)
class FinishedCount:
    """`count` jobs reached `status` (a terminal one) in the time bucket that starts at `at`."""

    at: datetime
    status: JobStatus
    count: int


@dataclass(frozen=True, slots=True)
class JobFilter:
    queue: str | None = None
    status: JobStatus | None = None
    type: str | None = None
    tag: str | None = None  # job has this tag
    tenant: str | None = None
    created_after: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive


@dataclass(frozen=True, slots=True)
class JobPage:
    """Newest first (id descending; ids are UUIDv7 so this is creation order).
    `next_cursor` is the last id of this page, None when there is no further page."""

    jobs: list[Job]
    next_cursor: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class ReapedJob:
    job_id: uuid.UUID
    worker_id: str | None
    attempt: int
    new_status: JobStatus  # queued, or dead when the lost attempt was the last allowed


@dataclass(slots=True)
class QueueSettings:
    name: str
    paused: bool = False
    max_depth: int | None = None  # queued+scheduled+retrying jobs allowed; None = unlimited
    concurrency: int | None = None  # running jobs allowed across all workers; None = unlimited


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    id: str
    hostname: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: datetime
    last_seen_at: datetime
    running: int = 0
    meta: JSON = field(default_factory=dict)


@dataclass(slots=True)
class Schedule:
    """A cron schedule. `next_run_at` is the next fire time (UTC); the scheduler fires it with a
    compare-and-set on next_run_at, so one fire time yields exactly one job."""

    name: str
    cron: str
    timezone: str
    type: str
    payload: JSON = field(default_factory=dict)
    queue: str = "default"
    priority: int = 0
    max_retries: int = 3
    timeout: float = 300.0
    enabled: bool = True
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Role(enum.StrEnum):
    """Who a principal is to the policy table (conveyor.security.policy)."""

    ADMIN = "admin"
    USER = "user"  # submits and reads the jobs of one tenant
    WORKER = "worker"  # the worker protocol only


@dataclass(slots=True)
class User:
    """An account that logs in with a password. `tenant` confines a USER to one tenant's jobs;
    `disabled` stops logins and refreshes (access tokens already out expire on their own)."""

    username: str
    role: Role
    password_hash: str
    tenant: str | None = None
    disabled: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(slots=True)
class ApiToken:
    """The row behind a long-lived API token: the token itself is a JWT whose `jti` is this
    row's key, and is never stored. Revoked when `revoked_at` is set."""

    jti: str
    name: str
    role: Role
    expires_at: datetime
    tenant: str | None = None
    created_by: str | None = None
    created_at: datetime | None = None
    revoked_at: datetime | None = None
