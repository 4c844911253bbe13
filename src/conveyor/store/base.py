"""The Store protocol: everything Conveyor persists goes through it.

Both backends (SQLite, PostgreSQL) implement it and pass one shared test suite
(tests/store/). Contract rules every implementation keeps:

* Every status change is recorded in the same transaction, so `job_events` returns the whole
  history: one `job_events` row per transition, except creation, claims and completion, which
  the job row holds (a later transition out of `running` carries its attempt's start; see
  store.common.audit_trail).
* A store opened with `publish_events` also writes an outbox row (conveyor.domain.events) for
  every lifecycle transition, in the same transaction; one without writes none.
* Guarded updates: completing, failing, releasing and heart-beating match (id, lease_token,
  status='running'); a caller whose lease was reaped or whose job was cancelled changes
  nothing and is told so through the returned ids.
* Batch operations take one round trip (or one transaction) for the whole batch.
* Times are timezone-aware UTC datetimes. The store's clock decides "now" for claims,
  leases and promotions (PostgreSQL: the server's now(); SQLite: the process clock).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from conveyor.domain.events import OutboxRow
from conveyor.domain.job import JSON, Job, JobStatus, NewJob, Payload
from conveyor.domain.records import (
    ApiToken,
    Completion,
    Enqueued,
    Failure,
    FinishedCount,
    JobEvent,
    JobFilter,
    JobPage,
    Lease,
    QueueSettings,
    ReadyJob,
    ReapedJob,
    Release,
    Schedule,
    User,
    WorkerInfo,
)


class Store(Protocol):
    url: str
    publishes_events: bool

    # -- lifecycle -------------------------------------------------------------------
    async def connect(self) -> None:
        """Open pools/connections. Does not migrate."""

    async def close(self) -> None: ...

    async def migrate(self) -> list[str]:
        """Apply pending numbered migrations (idempotent, safe to run concurrently).
        Returns the names applied now."""

    async def pending_migrations(self) -> list[str]:
        """Migrations not applied yet (all of them on a store never migrated); writes nothing
        and, for SQLite, creates no file."""

    async def ping(self) -> None:
        """Raise StoreUnavailable if the store cannot answer."""

    # -- submitting ------------------------------------------------------------------
    async def enqueue_many(self, jobs: Sequence[NewJob]) -> list[Enqueued]:
        """Insert jobs in one transaction; results in input order.

        A job whose run_at is None or <= now is `queued` (run_at = now), otherwise `scheduled`.
        unique_key: when a non-terminal job with the same key exists (or an earlier job in the
        same batch has it), that job is returned with created=False and nothing is inserted
        for it. Writes a creation event per new job. PostgreSQL sends at most one NOTIFY per
        distinct queue that received ready jobs. All or nothing.
        Raises QueueFull (and writes nothing) if a queue's max_depth would be exceeded.
        """

    # -- reading ---------------------------------------------------------------------
    async def get_job(self, job_id: uuid.UUID) -> Job:
        """Raises JobNotFound."""

    async def get_jobs(self, job_ids: Sequence[uuid.UUID]) -> list[Job]:
        """The jobs that exist, in no particular order."""

    async def list_jobs(
        self, flt: JobFilter, *, limit: int = 50, cursor: uuid.UUID | None = None
    ) -> JobPage:
        """Keyset pagination, newest first: with a cursor, jobs with id < cursor."""

    async def job_events(self, job_id: uuid.UUID) -> list[JobEvent]:
        """Oldest first. Raises JobNotFound if the job does not exist."""

    async def count_by_queue_status(self) -> dict[str, dict[JobStatus, int]]:
        """{queue: {status: n}} for every queue that has jobs; zero counts may be omitted."""

    async def count_finished(self, since: datetime, bucket_seconds: int) -> list[FinishedCount]:
        """Jobs finished at or after `since`, per terminal status and `bucket_seconds`-wide
        bucket (aligned to the epoch); empty buckets are omitted. The dashboard's throughput
        history: a range scan of the retention index over the jobs retention has kept, so it
        costs nothing when a job finishes (finished_at is stamped anyway)."""

    # -- the worker protocol -----------------------------------------------------------
    async def claim(
        self, worker_id: str, queues: Sequence[str], limit: int, lease_seconds: float
    ) -> list[Job]:
        """Atomically take up to `limit` queued jobs from `queues` (skipping paused queues and
        respecting each queue's `concurrency` limit), ordered by priority desc, run_at, id.
        Each becomes running: attempt += 1, lease_token += 1, worker_id set,
        lease_expires_at = now + lease_seconds, started_at = now. Never hands one job to two
        claimers. Returns the jobs as they are after the claim. `queues` of [ALL_QUEUES]:
        from every queue."""

    async def claim_ids(
        self, worker_id: str, job_ids: Sequence[uuid.UUID], lease_seconds: float
    ) -> list[Job]:
        """`claim`, restricted to exactly these jobs (a transport handed their ids to the
        worker): those of them that are queued and due, in a queue that is not paused and
        within its `concurrency` limit, become running as in `claim` (fresh lease_token).
        Any other id (cancelled, claimed by someone else, finished, unknown, a duplicate) is
        skipped. One statement; the jobs come back in claim order."""

    async def ready_jobs(self, queue: str, limit: int) -> list[ReadyJob]:
        """Up to `limit` queued, due jobs of `queue`, in claim order: what a transport
        re-dispatches when it may have lost them."""

    async def complete_many(self, completions: Sequence[Completion]) -> list[uuid.UUID]:
        """running -> completed with result and finished_at. Returns the ids that applied."""

    async def fail_many(self, failures: Sequence[Failure]) -> list[uuid.UUID]:
        """running -> retrying (retry_at) or dead. Lease cleared. Returns the ids that applied."""

    async def release_many(self, releases: Sequence[Release]) -> list[uuid.UUID]:
        """running -> queued/scheduled without charging the attempt. Returns ids that applied."""

    async def heartbeat(
        self, worker_id: str, leases: Sequence[Lease], lease_seconds: float
    ) -> list[uuid.UUID]:
        """Extend the leases (lease_expires_at = now + lease_seconds) in one statement and touch
        the worker's last_seen_at. Returns the ids still held: a missing id means the job was
        cancelled or reaped and the worker should stop running it."""

    async def reclaim(
        self, worker_id: str, held: Sequence[uuid.UUID], lease_seconds: float
    ) -> list[Job]:
        """After a claim that failed on the way back (the store may have committed it): the
        jobs running under `worker_id` other than those in `held`, each re-leased with a fresh
        lease_token (the old one is fenced out) and lease_expires_at = now + lease_seconds,
        attempt unchanged, in claim order. Worker ids are unique per worker process, so these
        are exactly the jobs of claims whose answer was lost. Safe to repeat."""

    async def reap_expired(self, limit: int = 1000) -> list[ReapedJob]:
        """running jobs whose lease expired: the lost attempt stays counted and is recorded as
        last_error; back to queued, or dead when no retries are left (attempt > max_retries)."""

    async def promote_due(self, limit: int = 1000) -> int:
        """scheduled/retrying jobs with run_at <= now -> queued (one NOTIFY per queue on
        PostgreSQL). Returns how many moved."""

    async def wait_for_jobs(self, queues: Sequence[str], timeout: float) -> None:
        """Return when jobs may have become ready in one of `queues` (PostgreSQL: LISTEN/NOTIFY;
        SQLite: an in-process signal, and a datagram on the wake sockets beside the database file
        from other processes; polling at `timeout` stays the fallback), or after `timeout`."""

    # -- operator actions --------------------------------------------------------------
    async def cancel(self, job_id: uuid.UUID, reason: str = "cancelled") -> Job:
        """Any non-terminal status -> cancelled. A running job's lease stops matching, so its
        worker's heartbeat learns of it. Raises JobNotFound / IllegalTransition."""

    async def requeue_dead(self, job_id: uuid.UUID, payload: Payload = None) -> Job:
        """dead -> queued with attempt reset to 0 and, if given, a new payload.
        Raises JobNotFound / IllegalTransition."""

    async def discard_dead(self, job_ids: Sequence[uuid.UUID]) -> int:
        """Delete dead jobs (and their events). Ids that are not dead are left alone."""

    # -- queues ----------------------------------------------------------------------
    async def get_queue_settings(self, name: str) -> QueueSettings:
        """Defaults when the queue has no row."""

    async def set_queue_settings(self, settings: QueueSettings) -> QueueSettings: ...

    async def list_queue_settings(self) -> list[QueueSettings]: ...

    # -- workers ---------------------------------------------------------------------
    async def register_worker(self, info: WorkerInfo) -> None:
        """Insert or replace the worker row."""

    async def touch_worker(self, worker_id: str, running: int, meta: JSON | None = None) -> None:
        """Refresh last_seen_at and the running count; `meta`, when given, replaces the row's
        meta (the worker publishes its circuit breakers' state there)."""

    async def deregister_worker(self, worker_id: str) -> None: ...

    async def list_workers(self) -> list[WorkerInfo]: ...

    async def prune_workers(self, seen_before: datetime) -> int: ...

    # -- schedules -------------------------------------------------------------------
    async def upsert_schedule(self, schedule: Schedule) -> Schedule: ...

    async def create_schedule(self, schedule: Schedule) -> Schedule:
        """Insert a new schedule; AlreadyExists (nothing written) when the name is taken."""

    async def get_schedule(self, name: str) -> Schedule:
        """Raises ScheduleNotFound."""

    async def list_schedules(self) -> list[Schedule]: ...

    async def delete_schedule(self, name: str) -> None:
        """Raises ScheduleNotFound."""

    async def due_schedules(self, now: datetime) -> list[Schedule]:
        """Enabled schedules with next_run_at <= now."""

    async def fire_schedule(
        self, name: str, fire_at: datetime, next_run_at: datetime, job: NewJob
    ) -> Job | None:
        """In one transaction: compare-and-set schedules.next_run_at from `fire_at` to
        `next_run_at` (and last_run_at = fire_at), and enqueue `job`. Returns None, and
        enqueues nothing, if next_run_at was no longer `fire_at` (another scheduler fired it)."""

    # -- coordination and housekeeping ---------------------------------------------------
    async def try_lead(self, name: str, holder: str, ttl: float) -> bool:
        """Try to become (or stay) the leader for `name`. PostgreSQL: a session advisory lock
        on a dedicated connection (lost with the connection); SQLite: a lease row that expires
        after `ttl` seconds unless renewed. Safe to call repeatedly."""

    async def resign(self, name: str, holder: str) -> None: ...

    async def prune_finished(self, status: JobStatus, finished_before: datetime) -> int:
        """Delete terminal jobs of `status` that finished before the cutoff (events too)."""

    async def vacuum(self) -> None:
        """Give back the space of dead row versions when the database's own housekeeping lags
        (PostgreSQL: VACUUM in the background past a threshold; SQLite reuses freed pages and
        has nothing to do). Cheap when there is nothing to give back: called every maintenance
        tick."""

    # -- the outbox ----------------------------------------------------------------------
    async def outbox_pending(self, limit: int) -> list[OutboxRow]:
        """Up to `limit` recorded transitions, oldest first (a job's in the order they
        happened). Rows stay until outbox_delete: the relay deletes what the broker took."""

    async def outbox_delete(self, seqs: Sequence[int]) -> None: ...

    async def outbox_next(self, done: Sequence[int], limit: int) -> list[OutboxRow]:
        """The relay's round in one call: delete `done` (the rows it published last round),
        then the oldest `limit` rows left, as outbox_pending."""
        ...

    async def wait_for_outbox(self, timeout: float) -> None:
        """Return when a commit may have made jobs ready in any queue (the wake-ups of
        wait_for_jobs, on a latch of their own so the relay never takes a worker's), or after
        `timeout`."""
        ...

    # -- users and API tokens ------------------------------------------------------------
    async def create_user(self, user: User) -> User:
        """Raises AlreadyExists (and writes nothing) if the username is taken."""

    async def get_user(self, username: str) -> User | None: ...

    async def list_users(self) -> list[User]:
        """Ordered by username."""

    async def set_user(self, user: User) -> User:
        """Replace role, tenant, password_hash and disabled of an existing user.
        Raises UserNotFound."""

    async def create_api_token(self, token: ApiToken) -> ApiToken:
        """Raises AlreadyExists if the jti is taken."""

    async def get_api_token(self, jti: str) -> ApiToken | None: ...

    async def list_api_tokens(self) -> list[ApiToken]:
        """Oldest first, revoked ones included."""

    async def revoke_api_token(self, jti: str) -> ApiToken:
        """Set revoked_at (kept if already revoked). Raises TokenNotFound."""
