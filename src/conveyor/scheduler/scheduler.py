"""The Scheduler: run it once or many times; one instance leads.

Every instance promotes due jobs and reaps expired leases (both safe to run concurrently).
Only the leader fires cron schedules and prunes old jobs. Exactly-once cron firing does not
rest on leadership alone: each fire is a compare-and-set of the schedule's next_run_at in the
same transaction as the job insert, so even two leaders during a failover fire a tick once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog

from conveyor import metrics
from conveyor.config import Settings
from conveyor.domain.cron import next_fire
from conveyor.domain.job import Job
from conveyor.service.jobs import retention_cutoffs, schedule_job
from conveyor.service.maintenance import run_maintenance
from conveyor.store.base import Store
from conveyor.transport import Transport, open_transport
from conveyor.transport.relay import relaying

log = structlog.get_logger("conveyor.scheduler")

LEADERSHIP = "scheduler"
# Wake this long after a schedule's fire time: a timer can fire a hair early, and a wake just
# before the fire time would find nothing due.
FIRE_SLACK = 0.01


@dataclass(slots=True)
class TickReport:
    leader: bool = False
    promoted: int = 0
    reaped: int = 0
    fired: list[Job] = field(default_factory=list)
    pruned: int = 0
    # The leader's earliest next fire time of an enabled schedule, after this tick's fires.
    next_fire: datetime | None = None


class Scheduler:
    def __init__(
        self,
        store: Store,
        settings: Settings | None = None,
        *,
        holder: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        transport: Transport | None = None,
    ) -> None:
        """`transport`: the one whose sweep runs with the housekeeping; by default the one the
        settings name, owned (closed when `run` ends) by this scheduler."""
        self.store = store
        self.settings = settings or Settings()
        self._owns_transport = transport is None
        self.transport = transport or open_transport(self.settings)
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.clock = clock
        self.is_leader = False
        self._stopping = asyncio.Event()
        self._last_prune: datetime | None = None

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        log.info("scheduler started", holder=self.holder)
        metrics.track_scheduler(self)
        try:
            # With Kafka configured, the outbox relay runs beside the ticks (its own leadership).
            async with relaying(self.store, self.settings):
                while not self._stopping.is_set():
                    wait = self.settings.scheduler_tick
                    try:
                        wait = self.sleep_after(await self.tick())
                    except Exception:
                        log.exception("scheduler tick failed")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), wait)
        finally:
            metrics.untrack_scheduler(self)
            if self.is_leader:
                with contextlib.suppress(Exception):
                    await self.store.resign(LEADERSHIP, self.holder)
            if self._owns_transport:
                await self.transport.close()
            log.info("scheduler stopped", holder=self.holder)

    def sleep_after(self, report: TickReport) -> float:
        """Seconds until the next tick: the interval (promotion, reaping, leadership), or less
        when a schedule fires sooner, so each fire time is met. A fixed sleep drifts by each
        tick's own duration until a tick lands past the fire time after the one it fires, and
        that one is skipped (issue 19: fired :09, :10, :12)."""
        interval = self.settings.scheduler_tick
        if report.next_fire is None:
            return interval
        due_in = (report.next_fire - self.clock()).total_seconds()
        return min(interval, max(due_in, 0.0) + FIRE_SLACK)

    async def tick(self) -> TickReport:
        report = TickReport()
        report.promoted, reaped = await run_maintenance(self.store, self.transport)
        report.reaped = len(reaped)
        was_leader = self.is_leader
        self.is_leader = await self.store.try_lead(
            LEADERSHIP, self.holder, self.settings.leader_ttl
        )
        if self.is_leader != was_leader:
            log.info("scheduler leadership changed", leader=self.is_leader, holder=self.holder)
        report.leader = self.is_leader
        if not self.is_leader:
            return report
        now = self.clock()
        report.fired = await self.fire_due(now)
        if self._last_prune is None or now - self._last_prune >= timedelta(minutes=1):
            report.pruned = await self.prune(now)
            self._last_prune = now
        report.next_fire = min(
            (
                s.next_run_at
                for s in await self.store.list_schedules()
                if s.enabled and s.next_run_at
            ),
            default=None,
        )
        return report

    async def fire_due(self, now: datetime) -> list[Job]:
        """Fire each due schedule once. Missed ticks (scheduler down) fire once, not one job
        per missed tick: a backlog of identical jobs after an outage is rarely what anyone
        wants, and the next fire is computed from now."""
        fired = []
        for s in await self.store.due_schedules(now):
            assert s.next_run_at is not None
            fire_at = s.next_run_at
            following = next_fire(s.cron, s.timezone, max(now, fire_at))
            job = await self.store.fire_schedule(
                s.name, fire_at, following, schedule_job(s, fire_at)
            )
            if job is not None:
                fired.append(job)
                await self.transport.dispatch((job,))
                metrics.job_series(job.queue, job.type).enqueued.inc()
                log.info(
                    "schedule fired",
                    schedule=s.name,
                    fire_at=fire_at.isoformat(),
                    job_id=str(job.id),
                )
        return fired

    async def prune(self, now: datetime) -> int:
        total = 0
        for status, cutoff in retention_cutoffs(self.settings, now).items():
            total += await self.store.prune_finished(status, cutoff)
        total_workers = await self.store.prune_workers(
            now - timedelta(seconds=self.settings.worker_expiry)
        )
        if total or total_workers:
            log.info("pruned", jobs=total, workers=total_workers)
        return total
