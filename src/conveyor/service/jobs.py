"""The use cases every door calls (HTTP, gRPC, CLI, the in-process App).

Validation and rules live here, once: a route or servicer translates its wire format into
these calls and maps ConveyorError subclasses to status codes, nothing more.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from conveyor import metrics
from conveyor.config import Settings
from conveyor.domain.cron import next_fire, next_fires, validate_cron
from conveyor.domain.errors import InvalidInput, JobNotFound
from conveyor.domain.ids import new_job_id
from conveyor.domain.job import (
    ALL_QUEUES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_QUEUE,
    Job,
    JobStatus,
    NewJob,
    Payload,
)
from conveyor.domain.limits import (
    MAX_BATCH,
    MAX_PAGE,
    MAX_PRIORITY,
    MAX_RETRIES_LIMIT,
    MAX_TAGS,
    MAX_UNIQUE_KEY,
    check_aware,
    check_int,
    check_json,
    check_name,
    check_text,
    encode_json,
)
from conveyor.domain.records import (
    Enqueued,
    JobEvent,
    JobFilter,
    JobPage,
    QueueSettings,
    ReapedJob,
    Schedule,
    WorkerInfo,
)
from conveyor.service.coalesce import SubmitCoalescer
from conveyor.service.maintenance import run_maintenance
from conveyor.service.throughput import ThroughputHistory, ThroughputPoint
from conveyor.store.base import Store
from conveyor.transport import HeldIds, Transport, open_transport

# validate() builds NewJob positionally (it runs per job of every batch): keep this in step.
_NEW_JOB_FIELDS = [
    "type", "payload", "queue", "priority", "run_at", "max_retries", "timeout", "unique_key",
    "tags", "tenant", "id", "payload_json",
]  # fmt: skip
if [f.name for f in fields(NewJob)] != _NEW_JOB_FIELDS:  # pragma: no cover
    raise ImportError("NewJob's fields changed order: update JobService.validate")


@dataclass(frozen=True, slots=True)
class QueueView:
    settings: QueueSettings
    counts: dict[JobStatus, int]
    # Live workers (heard from within metrics_worker_alive_seconds) consuming this queue, by
    # name or as all-queues workers: ready jobs with none wait for nobody.
    consumers: int = 0
    # The queue's ids in the transport (Redis: ready, processing); None on the store
    # transport or while the transport cannot say.
    held: HeldIds | None = None

    @property
    def unconsumed(self) -> bool:
        """Ready jobs, not paused, and no live worker consumes the queue."""
        return (
            not self.settings.paused
            and self.counts.get(JobStatus.QUEUED, 0) > 0
            and self.consumers == 0
        )


class JobService:
    """Conveyor's use cases over one Store.

    `known_types`, when given, rejects submissions of types no handler is registered for:
    the in-process App knows its registry, a standalone API server does not.
    """

    def __init__(
        self,
        store: Store,
        settings: Settings | None = None,
        *,
        known_types: Callable[[], Sequence[str]] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        transport: Transport | None = None,
    ) -> None:
        """`transport`: how ready jobs reach workers; by default the one the settings name,
        owned (and closed by `close`) by this service."""
        self.store = store
        self.settings = settings or Settings()
        self.known_types = known_types
        self.clock = clock
        self._coalescer = SubmitCoalescer(store, linger=self.settings.submit_linger)
        self._throughput = ThroughputHistory(store)
        self._owns_transport = transport is None
        self.transport = transport or open_transport(self.settings)
        self._dispatching = self.transport.name != "store"

    async def close(self) -> None:
        if self._owns_transport:
            await self.transport.close()

    # -- readiness and housekeeping ------------------------------------------------------
    async def ping(self) -> None:
        """Raise unless the store answers and its schema is migrated: an unmigrated store
        pings fine but cannot serve, so a cheap read of a migrated table follows the ping."""
        await self.store.ping()
        await self.store.list_queue_settings()

    async def maintain(self) -> tuple[int, list[ReapedJob]]:
        """Promote due jobs and reap expired leases (safe from any number of processes)."""
        return await run_maintenance(self.store, self.transport)

    # -- submitting --------------------------------------------------------------------
    def validate(self, job: NewJob) -> NewJob:
        """Check and normalise one submission; raises InvalidInput naming the field."""
        s = self.settings
        check_name(job.type, "type")
        if self.known_types is not None and job.type not in self.known_types():
            raise InvalidInput(
                f"unknown job type {job.type!r}: no handler is registered", field="type"
            )
        check_name(job.queue, "queue")
        payload_json = encode_json(job.payload, "payload", s.max_payload_bytes)
        check_int(job.priority, "priority", -MAX_PRIORITY, MAX_PRIORITY)
        check_int(job.max_retries, "max_retries", 0, MAX_RETRIES_LIMIT)
        timeout = job.timeout
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or not 0 < timeout <= s.max_timeout
        ):
            raise InvalidInput(
                f"timeout must be a number of seconds in (0, {s.max_timeout:g}] (got {timeout!r})",
                field="timeout",
            )
        run_at = None if job.run_at is None else check_aware(job.run_at, "run_at")
        if job.unique_key is not None and (
            not isinstance(job.unique_key, str) or not 0 < len(job.unique_key) <= MAX_UNIQUE_KEY
        ):
            raise InvalidInput(
                f"unique_key must be 1-{MAX_UNIQUE_KEY} characters", field="unique_key"
            )
        if job.unique_key is not None:
            check_text(job.unique_key, "unique_key")
        if not isinstance(job.tags, list) or len(job.tags) > MAX_TAGS:
            raise InvalidInput(f"tags must be a list of at most {MAX_TAGS} names", field="tags")
        for tag in job.tags:
            check_name(tag, "tags")
        if job.tenant is not None:
            check_name(job.tenant, "tenant")
        # A new record (the caller's stays untouched), built positionally: this runs per job
        # of every batch, and dataclasses.replace was a visible share of a batch's CPU.
        return NewJob(
            job.type,
            job.payload,
            job.queue,
            job.priority,
            run_at,
            job.max_retries,
            float(timeout),
            job.unique_key,
            job.tags,
            job.tenant,
            job.id or new_job_id(),
            payload_json,
        )

    # -- tenant confinement --------------------------------------------------------------
    # `tenant` arguments below are the caller's scope (a USER principal's tenant); None means
    # unconfined (ADMIN, in-process code). A confined caller's jobs carry its tenant, and a job
    # of another tenant is reported exactly like a missing one, so ids cannot be probed.

    @staticmethod
    def _confine(job: NewJob, tenant: str | None) -> NewJob:
        """Tag `job` (the fresh record `validate` returned, so changed in place) with the
        caller's tenant."""
        if tenant is None:
            return job
        # unique_key dedupe is per tenant: another tenant's live job with the same key must
        # neither be returned nor block this submit.
        if job.unique_key is not None:
            job.unique_key = f"{tenant}/{job.unique_key}"
        job.tenant = tenant
        return job

    async def _visible(self, job_id: uuid.UUID, tenant: str | None) -> Job:
        job = await self.store.get_job(job_id)
        if tenant is not None and job.tenant != tenant:
            raise JobNotFound(f"job {job_id} not found")
        return job

    async def submit(self, job: NewJob, *, tenant: str | None = None) -> Enqueued:
        """One job; concurrent calls share a store round trip (see SubmitCoalescer)."""
        result = await self._coalescer.submit(self._confine(self.validate(job), tenant))
        metrics.count_enqueued((result,))
        if self._dispatching and result.created:
            await self.transport.dispatch((result.job,))
        return result

    async def submit_many(
        self, jobs: Sequence[NewJob], *, tenant: str | None = None
    ) -> list[Enqueued]:
        """All or nothing: every job is validated before any is written."""
        if not jobs:
            raise InvalidInput("no jobs given", field="jobs")
        if len(jobs) > MAX_BATCH:
            raise InvalidInput(f"at most {MAX_BATCH} jobs per batch", field="jobs")
        checked = []
        for i, job in enumerate(jobs):
            try:
                checked.append(self._confine(self.validate(job), tenant))
            except InvalidInput as exc:
                if len(jobs) == 1:
                    raise
                raise InvalidInput(
                    f"jobs[{i}]: {exc.message}", field=f"jobs[{i}].{exc.field}"
                ) from exc
        results = await self.store.enqueue_many(checked)
        metrics.count_enqueued(results)
        if self._dispatching:
            await self.transport.dispatch([r.job for r in results if r.created])
        return results

    # -- reading -----------------------------------------------------------------------
    async def get(self, job_id: uuid.UUID, *, tenant: str | None = None) -> Job:
        return await self._visible(job_id, tenant)

    async def list_jobs(
        self,
        flt: JobFilter,
        *,
        limit: int = 50,
        cursor: uuid.UUID | None = None,
        tenant: str | None = None,
    ) -> JobPage:
        check_int(limit, "limit", 1, MAX_PAGE)
        if tenant is not None:
            flt = replace(flt, tenant=tenant)
        for key in ("queue", "type", "tag", "tenant"):
            value = getattr(flt, key)
            if value is not None:
                check_name(value, key)
        if flt.created_after is not None:
            flt = replace(flt, created_after=check_aware(flt.created_after, "created_after"))
        if flt.created_before is not None:
            flt = replace(flt, created_before=check_aware(flt.created_before, "created_before"))
        return await self.store.list_jobs(flt, limit=limit, cursor=cursor)

    async def events(self, job_id: uuid.UUID, *, tenant: str | None = None) -> list[JobEvent]:
        if tenant is not None:
            await self._visible(job_id, tenant)
        return await self.store.job_events(job_id)

    # -- operator actions --------------------------------------------------------------
    async def cancel(self, job_id: uuid.UUID, *, tenant: str | None = None) -> Job:
        if tenant is not None:
            await self._visible(job_id, tenant)  # a job's tenant never changes: no race
        job = await self.store.cancel(job_id)
        metrics.job_series(job.queue, job.type).cancelled.inc()
        return job

    async def retry(
        self, job_id: uuid.UUID, payload: Payload = None, *, tenant: str | None = None
    ) -> Job:
        """Requeue a dead job, optionally with an edited payload (any JSON value; None keeps
        the payload it has)."""
        if tenant is not None:
            await self._visible(job_id, tenant)
        if payload is not None:
            check_json(payload, "payload", self.settings.max_payload_bytes)
        job = await self.store.requeue_dead(job_id, payload)
        if self._dispatching:
            await self.transport.dispatch((job,))
        return job

    async def discard(self, job_ids: Sequence[uuid.UUID]) -> int:
        return await self.store.discard_dead(job_ids)

    # -- queues ------------------------------------------------------------------------
    async def queues(self) -> list[QueueView]:
        counts = await self.store.count_by_queue_status()
        settings = {q.name: q for q in await self.store.list_queue_settings()}
        alive_since = self.clock() - timedelta(seconds=self.settings.metrics_worker_alive_seconds)
        live = [w for w in await self.store.list_workers() if w.last_seen_at >= alive_since]
        everywhere = sum(ALL_QUEUES in w.queues for w in live)
        names = sorted(set(counts) | set(settings) | {DEFAULT_QUEUE})
        held = await self.transport.held(names) or {}
        return [
            QueueView(
                settings.get(n) or QueueSettings(name=n),
                counts.get(n, {}),
                everywhere + sum(n in w.queues for w in live),
                held.get(n),
            )
            for n in names
        ]

    async def update_queue(self, name: str, changes: Mapping[str, Any]) -> QueueSettings:
        """Apply a partial update (paused, max_depth, concurrency); unknown keys are refused."""
        check_name(name, "queue")
        allowed = {f.name for f in fields(QueueSettings)} - {"name"}
        unknown = set(changes) - allowed
        if unknown:
            raise InvalidInput(
                f"unknown queue setting(s): {', '.join(sorted(unknown))}; "
                f"allowed: {', '.join(sorted(allowed))}",
                field=sorted(unknown)[0],
            )
        current = await self.store.get_queue_settings(name)
        if "paused" in changes:
            if not isinstance(changes["paused"], bool):
                raise InvalidInput("paused must be true or false", field="paused")
            current.paused = changes["paused"]
        for key in ("max_depth", "concurrency"):
            if key in changes:
                value = changes[key]
                setattr(current, key, None if value is None else check_int(value, key, 1, 10**9))
        return await self.store.set_queue_settings(current)

    # -- schedules ---------------------------------------------------------------------
    def _check_schedule(self, s: Schedule) -> Schedule:
        check_name(s.name, "name")
        validate_cron(s.cron, s.timezone)
        template = self.validate(
            NewJob(
                type=s.type,
                payload=s.payload,
                queue=s.queue,
                priority=s.priority,
                max_retries=s.max_retries,
                timeout=s.timeout,
            )
        )
        if not isinstance(s.enabled, bool):
            raise InvalidInput("enabled must be true or false", field="enabled")
        now = self.clock()
        return replace(
            s,
            timeout=template.timeout,
            next_run_at=next_fire(s.cron, s.timezone, now),
        )

    async def put_schedule(self, schedule: Schedule) -> Schedule:
        """Create or replace a schedule; its next fire time is recomputed from now."""
        return await self.store.upsert_schedule(self._check_schedule(schedule))

    async def create_schedule(self, schedule: Schedule) -> Schedule:
        """Create a schedule; AlreadyExists when the name is taken (nothing is replaced)."""
        return await self.store.create_schedule(self._check_schedule(schedule))

    async def update_schedule(self, name: str, changes: Mapping[str, Any]) -> Schedule:
        current = await self.get_schedule(name)
        allowed = {f.name for f in fields(Schedule)} - {
            "name",
            "next_run_at",
            "last_run_at",
            "created_at",
            "updated_at",
        }
        unknown = set(changes) - allowed
        if unknown:
            raise InvalidInput(
                f"unknown schedule field(s): {', '.join(sorted(unknown))}", field=sorted(unknown)[0]
            )
        return await self.put_schedule(replace(current, **dict(changes)))

    async def get_schedule(self, name: str) -> Schedule:
        return await self.store.get_schedule(check_name(name, "name"))

    async def list_schedules(self) -> list[Schedule]:
        return await self.store.list_schedules()

    async def delete_schedule(self, name: str) -> None:
        await self.store.delete_schedule(check_name(name, "name"))

    async def trigger_schedule(self, name: str) -> Job:
        """Run a schedule's job now, outside its cron cadence."""
        s = await self.get_schedule(name)
        return (await self.submit(schedule_job(s, None))).job

    def upcoming(self, schedule: Schedule, count: int = 5) -> list[datetime]:
        return next_fires(schedule.cron, schedule.timezone, self.clock(), count)

    # -- workers -----------------------------------------------------------------------
    async def workers(self) -> list[WorkerInfo]:
        return await self.store.list_workers()

    async def throughput(self) -> list[ThroughputPoint]:
        """Jobs completed and dead-lettered per minute over the last hour, oldest first."""
        return await self._throughput.read(self.clock())


def schedule_job(s: Schedule, fire_at: datetime | None) -> NewJob:
    """The job a schedule fires. A fire time makes the unique key, so one tick is one job."""
    return NewJob(
        id=new_job_id(),
        type=s.type,
        payload=dict(s.payload),
        queue=s.queue,
        priority=s.priority,
        max_retries=s.max_retries if s.max_retries is not None else DEFAULT_MAX_RETRIES,
        timeout=s.timeout,
        unique_key=None if fire_at is None else f"schedule:{s.name}:{fire_at.isoformat()}",
        tags=["schedule:" + s.name],
    )


def retention_cutoffs(settings: Settings, now: datetime) -> dict[JobStatus, datetime]:
    return {
        JobStatus.COMPLETED: now - timedelta(seconds=settings.retention_completed),
        JobStatus.CANCELLED: now - timedelta(seconds=settings.retention_cancelled),
        JobStatus.DEAD: now - timedelta(seconds=settings.retention_dead),
    }
