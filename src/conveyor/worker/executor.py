"""The Worker: claims jobs as slots free up, runs handlers, reports outcomes in batches.

Flow: a fetch loop claims up to `free slots` jobs per round trip (backpressure: never more
than it can run) and queues them for the runners; async handlers run on the loop, sync
handlers in a thread pool; outcomes go through the OutcomeBatcher, and a heartbeat loop
extends all held leases in one statement. A lease the store no longer recognises (cancelled
or reaped job) cancels the local run. A claim that fails may still have committed (its answer
lost with the connection): the worker then reclaims what runs under its id and runs it (see
`_recover_claim` and docs/reliability.md, "The claim-recovery rule").

Runners, not a task per job: a runner task takes queued jobs one after another, and before
each one makes sure a spare runner is scheduled, which takes the next job if this one waits
on something. A handler that finishes without waiting (the common short job) so costs no task
of its own, and one that waits holds its runner while the spare carries on, so as many jobs
run at once as with a task each. A runner retires after a job that was cancelled or that
changed its context variables, so every job starts in the context its runner started with.
Job timeouts are one timer for the worker (`_watchdog`, set for the earliest deadline of the
running jobs), not one per job.

Shutdown (SIGTERM/SIGINT via `stop()`): stop claiming, let in-flight jobs finish within the
grace period, then cancel what is left and hand those jobs back without charging an attempt.
A sync handler's thread cannot be stopped, so its job is never handed back while the thread
runs (another worker would run it at the same time): it gets THREAD_MARGIN more seconds to
end, then the worker stops waiting and keeps its lease (heart-beaten until the worker stops).
The lease then expires with the process and the reaper retries the job, the at-least-once
path of a crash. `threads_running` tells the process (`conveyor worker`) that such threads
are left, so it exits without joining them.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import os
import random
import socket
import time
import traceback
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import structlog

from conveyor import metrics
from conveyor.config import Settings
from conveyor.domain.errors import StoreUnavailable
from conveyor.domain.job import Job
from conveyor.domain.limits import encode_result, storable_text
from conveyor.domain.payload import for_handler, to_json
from conveyor.domain.records import Completion, Failure, Lease, Release, WorkerInfo
from conveyor.domain.retry import NonRetryable, Retry, RetryPolicy, retry_until_ok
from conveyor.worker.breaker import BreakerBoard, BreakerConfig
from conveyor.worker.context import JobContext
from conveyor.worker.outcomes import Outcome, OutcomeBatcher
from conveyor.worker.registry import JobDefinition, Registry
from conveyor.worker.store import WorkerStore

log = structlog.get_logger("conveyor.worker")

Housekeeping = Callable[[], Awaitable[object]]

# Seconds past the grace period a sync handler's thread may still end (and report its outcome)
# before the worker stops waiting for it and leaves its job to the lease reaper.
THREAD_MARGIN = 2.0

# Retrying `reclaim` after a failed claim while the store does not answer: 0.05 s doubling to 1 s.
RECLAIM_FIRST_DELAY = 0.05
RECLAIM_MAX_DELAY = 1.0


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(slots=True)
class _Running:
    """One claimed job, from its claim until its outcome is flushed (or its lease is lost)."""

    job: Job
    series: metrics.JobSeries
    # The runner task running it; None while it waits for one (and once it has ended).
    task: asyncio.Task[None] | None = None
    deadline: float = math.inf  # loop time at which its timeout expires, once started
    ctx: JobContext | None = None  # made when the handler takes one, or a log line needs it
    # "shutdown" -> release; "lost" -> report nothing; "abandoned" (a sync handler's thread
    # still runs at shutdown) -> report nothing and keep the lease until the process ends
    cancel_reason: str | None = None
    timed_out: bool = False  # the watchdog cancelled it: its timeout expired
    thread: Future[Any] | None = None  # a sync handler's run in the thread pool
    ended: bool = False  # its handler is over and its slot free
    waiter: asyncio.Future[None] | None = None  # set when it ends (shutdown waits on it)
    duration: float | None = None  # handler run time, observed when its outcome is flushed


def _thread_busy(r: _Running) -> bool:
    """Whether a sync handler's thread is running this job (or has just ended it): such a job
    must not be handed back. A run still waiting for a thread is withdrawn instead."""
    return r.thread is not None and not r.thread.cancel()


class Worker:
    def __init__(
        self,
        store: WorkerStore,
        registry: Registry,
        *,
        queues: Sequence[str] | None = None,
        concurrency: int | None = None,
        settings: Settings | None = None,
        retry_policy: RetryPolicy | None = None,
        worker_id: str | None = None,
        maintenance: Housekeeping | bool | None = None,
    ) -> None:
        """`maintenance`: housekeeping to run every `settings.maintenance_interval`, e.g.
        `functools.partial(service.maintenance.run_maintenance, store)` on a full store, so a
        lone worker needs no scheduler (App.worker passes it). None or False: none, as on a
        worker-only store, whose server does the housekeeping."""
        self.store = store
        self.registry = registry
        self.settings = s = settings or Settings()
        self.queues = list(queues or registry.queues() or ["default"])
        self.concurrency = concurrency or s.concurrency
        self.retry_policy = retry_policy or RetryPolicy(base=s.retry_base, cap=s.retry_cap)
        self.id = worker_id or new_worker_id()
        if maintenance is True:
            # The executor knows the worker protocol only, not what housekeeping is.
            raise ValueError(
                "maintenance=True: pass the housekeeping to run instead, e.g. "
                "functools.partial(run_maintenance, store) on a full store (a worker-only "
                "store's server does it)"
            )
        self.maintenance: Housekeeping | None = maintenance or None
        self.started_at = datetime.now(UTC)

        # Jobs holding a slot: claimed and not ended (running, or queued for a runner).
        self._running: dict[uuid.UUID, _Running] = {}
        # Jobs whose lease is held until their outcome is flushed: heart-beaten meanwhile.
        self._held: dict[uuid.UUID, _Running] = {}
        self._ready: deque[_Running] = deque()  # claimed, waiting for a runner
        self._spare = False  # a runner is scheduled and has not taken a job yet
        self._runners: set[asyncio.Task[None]] = set()
        self._watch: asyncio.TimerHandle | None = None  # the timeout watchdog's timer
        self._watch_at = math.inf
        self._slot_freed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self._grace = s.shutdown_grace
        self._thread_margin = THREAD_MARGIN
        # One thread per slot (created lazily), so a sync job never waits for a thread while
        # its timeout runs.
        self._threads = ThreadPoolExecutor(
            max_workers=self.concurrency, thread_name_prefix="conveyor-job"
        )
        self._thread_runs: set[Future[Any]] = set()  # sync handler runs not yet ended
        self._outcomes = OutcomeBatcher(store, on_flushed=self._on_flushed)
        self._batch_size = max(1, min(self.concurrency, 500))
        self.processed = 0
        self.breakers = BreakerBoard(
            BreakerConfig(
                failure_rate=s.breaker_failure_rate,
                min_calls=s.breaker_min_calls,
                window=s.breaker_window,
                open_for=s.breaker_open_seconds,
            ),
            enabled=s.breaker_enabled,
            on_transition=self._breaker_moved,
        )
        # Liveness: the fetch loop stamps each round; waiting for a free slot is not a stall.
        self.registered = False
        self._fetch_tick = time.monotonic()
        self._saturated = False
        self._log_completions = True

    # -- control -----------------------------------------------------------------------
    def stop(self, *, immediate: bool = False) -> None:
        """Begin a graceful shutdown; `immediate` (a second signal) skips the grace period."""
        if immediate:
            self._grace = 0.0
            self._thread_margin = 0.0
            self._hand_back_waiting()
            for r in list(self._running.values()):
                if r.task is None:
                    continue
                # A running thread goes on regardless: its job is not handed back (see _drain).
                r.cancel_reason = "abandoned" if _thread_busy(r) else "shutdown"
                self._cancel(r)
        self._stopping.set()
        # A remote store's claim long-polls on the server: end it now rather than after its
        # wait (the server hands back anything it claimed for the abandoned call).
        interrupt = getattr(self.store, "interrupt_claim", None)
        if callable(interrupt):
            interrupt()

    @property
    def running_count(self) -> int:
        return len(self._running)

    @property
    def threads_running(self) -> int:
        """Sync handler runs whose thread has not ended (after `run()`: the abandoned ones).
        Interpreter exit would wait for them; `conveyor worker` exits without joining them."""
        return sum(1 for f in list(self._thread_runs) if not f.done())

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    def liveness(self, stall_after: float | None = None) -> str | None:
        """None when alive; otherwise why not. A fetch loop that has not come round for
        `stall_after` seconds while it had free slots is stuck (e.g. a hung store call)."""
        if self._stopped.is_set():
            return "worker has stopped"
        limit = stall_after or max(60.0, 10 * self.settings.poll_interval)
        idle = time.monotonic() - self._fetch_tick
        if not self._saturated and not self._stopping.is_set() and idle > limit:
            return f"fetch loop has not run for {idle:.0f}s"
        return None

    async def run(self) -> None:
        # Binding a job's logger costs more than running a no-op job: only when the line shows.
        self._log_completions = _debug_enabled()
        if not await self._register():
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._stopped.set()
            log.info("worker stopped before it registered", worker_id=self.id)
            return
        self.registered = True
        metrics.track_worker(self)
        metrics.use_aliases(self.settings.compat_metric_aliases)
        for d in self.registry:  # series at 0 from the start, so rate() sees the first job
            metrics.job_series(d.queue, d.name)
        log.info(
            "worker started", worker_id=self.id, queues=self.queues, concurrency=self.concurrency
        )
        batcher = asyncio.create_task(self._outcomes.run(), name="conveyor-outcomes")
        background = [asyncio.create_task(self._heartbeat_loop(), name="conveyor-heartbeat")]
        if self.maintenance is not None:
            background.append(
                asyncio.create_task(self._maintenance_loop(self.maintenance), name="conveyor-maint")
            )
        try:
            await self._fetch_loop()
            await self._drain()
        finally:
            if self._watch is not None:
                self._watch.cancel()
                self._watch, self._watch_at = None, math.inf
            await self._outcomes.close()
            await batcher
            for t in background:
                t.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.store.deregister_worker(self.id)
            self._threads.shutdown(wait=False, cancel_futures=True)
            self.registered = False
            metrics.untrack_worker(self)
            self._stopped.set()
            log.info("worker stopped", worker_id=self.id, processed=self.processed)

    async def _register(self) -> bool:
        """Register, retrying while the store (or server) does not answer: a worker started
        during an outage waits for it rather than exiting. False if stopped first."""

        def on_retry(attempt: int, delay: float, exc: BaseException) -> None:
            log.warning(
                "cannot register the worker; retrying",
                worker_id=self.id,
                attempt=attempt,
                retry_in=round(delay, 2),
                error=getattr(exc, "message", None) or str(exc),
            )

        return await retry_until_ok(
            lambda: self.store.register_worker(self._info()),
            retry_on=(StoreUnavailable,),
            on_retry=on_retry,
            stop=self._stopping,
        )

    # -- fetching ----------------------------------------------------------------------
    async def _fetch_loop(self) -> None:
        s = self.settings
        stop_wait = asyncio.create_task(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                self._fetch_tick = time.monotonic()
                free = self.concurrency - len(self._running)
                if free <= 0:
                    self._saturated = True
                    await self._wait_any(self._slot_freed.wait(), stop_wait)
                    self._saturated = False
                    self._slot_freed.clear()
                    continue
                if free < self._batch_size // 4 and self._running:
                    # Nearly saturated: give sibling jobs a moment to finish so one round trip
                    # claims many jobs instead of one.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._slot_freed.wait(), 0.002)
                    self._slot_freed.clear()
                    free = self.concurrency - len(self._running)
                want = min(free, self._batch_size)
                try:
                    jobs = await self.store.claim(self.id, self.queues, want, s.lease_seconds)
                except Exception:
                    log.exception(
                        "claim failed; recovering what it may have claimed", worker_id=self.id
                    )
                    await self._recover_claim()
                    await self._wait_any(asyncio.sleep(s.poll_interval), stop_wait)
                    continue
                self._start(jobs)
                if self._stopping.is_set():
                    break
                if len(jobs) < want:
                    await self._wait_any(
                        self.store.wait_for_jobs(self.queues, s.poll_interval), stop_wait
                    )
        finally:
            stop_wait.cancel()

    async def _recover_claim(self) -> None:
        """A claim that raised may still have committed (the connection dropped on the way
        back): its jobs sit `running` under this worker's id with nobody running them. Ask the
        store for them (`reclaim`: fresh lease tokens, so a late hand-back of the lost claim
        cannot touch them) and run them, or, when stopping or short of slots, hand them back
        without charging the attempt. Called from the fetch loop, the only place this worker
        claims, so no claim of its own is in flight meanwhile. While the store does not answer
        the call is retried with a short backoff, for at most one lease: after that the reaper
        recovers the jobs, as after a crash."""
        s = self.settings
        deadline = time.monotonic() + s.lease_seconds
        delay = RECLAIM_FIRST_DELAY
        while True:
            try:
                jobs = await self.store.reclaim(self.id, list(self._held), s.lease_seconds)
                break
            except Exception as exc:
                if self._stopping.is_set() or time.monotonic() + delay > deadline:
                    log.warning(
                        "cannot recover the failed claim; its jobs wait for their lease",
                        worker_id=self.id,
                        error=getattr(exc, "message", None) or str(exc),
                    )
                    return
                log.warning(
                    "claim recovery failed; retrying",
                    worker_id=self.id,
                    retry_in=delay,
                    error=getattr(exc, "message", None) or str(exc),
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                delay = min(delay * 2, RECLAIM_MAX_DELAY)
        if not jobs:
            return
        room = 0 if self._stopping.is_set() else max(0, self.concurrency - len(self._running))
        self._start(jobs[:room])
        for job in jobs[room:]:
            # Heart-beaten until the release is flushed.
            self._held[job.id] = _Running(job, metrics.job_series(job.queue, job.type))
            self._outcomes.add(Release(job.id, job.lease_token, reason="claim recovered"))
        log.warning(
            "recovered jobs of a failed claim",
            worker_id=self.id,
            started=[str(j.id) for j in jobs[:room]],
            handed_back=[str(j.id) for j in jobs[room:]],
        )

    @staticmethod
    async def _wait_any(aw: Any, stop_wait: asyncio.Task[Any]) -> None:
        task = asyncio.ensure_future(aw)
        await asyncio.wait({task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _start(self, jobs: Sequence[Job]) -> None:
        """Take claimed jobs: hold their leases and slots, count them (one metric update per
        (queue, type) in the batch, not per job) and queue them for the runners."""
        if not jobs:
            return
        held, running, ready = self._held, self._running, self._ready
        groups: dict[metrics.JobSeries, tuple[list[int], list[float]]] = {}
        queue = type_ = ""
        count: list[int] = [0]
        waits: list[float] = []
        for job in jobs:
            if job.type != type_ or job.queue != queue:
                queue, type_ = job.queue, job.type
                series = metrics.job_series(queue, type_)
                count, waits = groups.setdefault(series, ([0], []))
            old = running.get(job.id)
            if old is not None:
                self._superseded(old)
            r = _Running(job, series)
            held[job.id] = r
            running[job.id] = r
            ready.append(r)
            count[0] += 1
            if job.started_at is not None:
                # Clocks of two hosts may disagree slightly, so clamp at 0.
                waits.append(max(0.0, (job.started_at - job.run_at).total_seconds()))
        for series, (count, waits) in groups.items():
            series.started.inc(count[0])
            metrics.observe_many(series.wait, waits)
        self._wake_runner()

    # -- runners ---------------------------------------------------------------------------
    def _wake_runner(self) -> None:
        """Make sure a runner that has not taken a job yet is scheduled, while jobs wait."""
        if not self._spare and self._ready:
            self._spare = True
            task = asyncio.get_running_loop().create_task(self._runner())
            self._runners.add(task)
            task.add_done_callback(self._runners.discard)

    async def _runner(self) -> None:
        """Run queued jobs one after another. Before each, schedule a spare runner while more
        jobs wait: if this job waits on something, the spare takes the next one. Retire after
        a job during which this task was cancelled (a cancellation must never reach the next
        job) or whose handler set context variables (the next job must not see them)."""
        self._spare = False
        task = asyncio.current_task()
        assert task is not None
        clean = contextvars.copy_context()
        ready = self._ready
        loop = asyncio.get_running_loop()
        try:
            while ready:
                r = ready.popleft()
                if ready:
                    self._wake_runner()
                r.task = task
                r.deadline = deadline = loop.time() + r.job.timeout
                if deadline < self._watch_at:
                    self._arm_watchdog(loop, deadline)
                try:
                    await self._execute(r)
                finally:
                    r.task = None
                    self._ended(r)
                # The same variables object unless the handler set one: an O(1) comparison.
                if task.cancelling() or contextvars.copy_context() != clean:
                    break
        finally:
            self._wake_runner()  # jobs left by a retiring runner

    def _ended(self, r: _Running) -> None:
        """A job's handler is over (or the job left the queue unrun): free its slot."""
        if r.ended:
            return
        r.ended = True
        other = self._running.pop(r.job.id, None)
        if other is not None and other is not r:  # a newer run of the job (see _superseded)
            self._running[r.job.id] = other
        self.processed += 1
        self._slot_freed.set()
        if r.waiter is not None and not r.waiter.done():
            r.waiter.set_result(None)

    def _superseded(self, r: _Running) -> None:
        """This worker claimed a job again while an earlier run of it is still here (its lease
        expired, e.g. while the store was unreachable, and the job was reaped): that run's lease
        is lost, so it stops as on a lost heartbeat, rather than run on beside the new one with
        nobody watching its timeout (the watchdog and the heartbeat follow the newest run)."""
        if r.ended or r.cancel_reason is not None:
            return
        if not self._unqueue(r):
            r.cancel_reason = "lost"
            self._cancel(r)

    def _cancel(self, r: _Running) -> None:
        """Stop a started job's run (its `cancel_reason` or `timed_out` says why)."""
        if r.ctx is not None:
            r.ctx.cancelled.set()  # a handler that polls ctx.cancelled can stop now
        if r.task is not None:
            r.task.cancel()

    def _unqueue(self, r: _Running) -> bool:
        """Take a job that no runner has started out of the queue; False if it has started."""
        if r.task is not None or r.ended:
            return False
        with contextlib.suppress(ValueError):
            self._ready.remove(r)
        self._ended(r)
        return True

    def _hand_back_waiting(self) -> None:
        """Shutdown: jobs no runner has started go back at once, uncharged."""
        while self._ready:
            r = self._ready.popleft()
            self._ended(r)
            self._hand_back(r)

    # -- timeouts --------------------------------------------------------------------------
    def _arm_watchdog(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._watch is not None:
            self._watch.cancel()
        self._watch_at = at
        self._watch = loop.call_at(at, self._watchdog)

    def _watchdog(self) -> None:
        """The earliest deadline came: cancel every started job past its own, then wait for
        the next deadline. Jobs that ended leave nothing behind (no timer per job)."""
        self._watch, self._watch_at = None, math.inf
        loop = asyncio.get_running_loop()
        now = loop.time()
        nearest = math.inf
        for r in list(self._running.values()):
            if r.task is None or r.timed_out:
                continue
            if r.deadline <= now:
                if r.cancel_reason is None:
                    r.timed_out = True
                    self._cancel(r)
            elif r.deadline < nearest:
                nearest = r.deadline
        if nearest < math.inf:
            self._arm_watchdog(loop, nearest)

    # -- running one job -----------------------------------------------------------------
    def _ctx(self, r: _Running) -> JobContext:
        if r.ctx is None:
            job = r.job
            r.ctx = JobContext(
                job_id=job.id,
                type=job.type,
                queue=job.queue,
                attempt=job.attempt,
                max_retries=job.max_retries,
                worker_id=self.id,
            )
        return r.ctx

    async def _execute(self, r: _Running) -> None:
        job = r.job
        definition = self.registry.get(job.type)
        if definition is None:
            log.warning(
                "unknown job type; dead-lettering",
                job_id=str(job.id),
                job_type=job.type,
                queue=job.queue,
                attempt=job.attempt,
                worker_id=self.id,
            )
            self._outcomes.add(
                Failure(
                    job.id,
                    job.lease_token,
                    f"unknown job type {job.type!r}: no handler is registered for it in worker "
                    f"{self.id} (registered: {', '.join(sorted(self.registry.names())) or 'none'})",
                    None,
                )
            )
            return
        breaker = self.breakers.get(job.type) if self.breakers.enabled else None
        if breaker is not None and not breaker.allow():
            self._defer(job)
            return
        ctx = self._ctx(r) if definition.wants_context else None
        started = time.monotonic()
        try:
            payload = for_handler(job.payload)  # the bytes a marker object stands for
            if definition.is_async:
                if ctx is None:
                    result = await definition.handler(payload)
                else:
                    result = await definition.handler(payload, ctx)
            else:
                result = await self._in_thread(definition, payload, ctx, r)
            result = to_json(result)
            # A result the store cannot keep is the handler's failure; the encoding made to
            # find out is the one the store writes. Bytes are kept as the marker object.
            result_json = None if result is None else encode_result(result)
        except asyncio.CancelledError as exc:
            if r.cancel_reason is not None or not r.timed_out:
                if breaker is not None:
                    breaker.abandon()
                self._on_cancelled(r)
                return
            # The watchdog's cancellation: the attempt timed out.
            if breaker is not None:
                breaker.record(False)
            timeout = TimeoutError()
            timeout.__cause__ = exc
            self._fail(r, timeout, summary=f"timed out after {job.timeout:g}s")
        except NonRetryable as exc:
            # The job's own input is bad, which says nothing about its dependencies' health.
            if breaker is not None:
                breaker.abandon()
            self._fail(r, exc, retryable=False)
        except Exception as exc:
            if breaker is not None:
                breaker.record(False)
            self._fail(r, exc)
        else:
            if breaker is not None:
                breaker.record(True)
            self._outcomes.add(Completion(job.id, job.lease_token, result, result_json))
            if self._log_completions:
                self._ctx(r).log.debug(
                    "job completed", duration=round(time.monotonic() - started, 6)
                )
        r.duration = time.monotonic() - started

    async def _in_thread(
        self, d: JobDefinition, payload: Any, ctx: JobContext | None, r: _Running
    ) -> Any:
        args = (payload,) if ctx is None else (payload, ctx)
        run = self._threads.submit(partial(d.handler, *args))
        self._thread_runs.add(run)
        run.add_done_callback(self._thread_runs.discard)
        r.thread = run  # shutdown must know a thread runs this job (see _drain)
        return await asyncio.wrap_future(run)

    def _defer(self, job: Job) -> None:
        """Hand a job of an open breaker's type back for later, without charging its attempt.
        A little jitter keeps a backlog of deferred jobs from all returning in one instant."""
        delay = self.breakers.get(job.type).retry_in()
        delay += random.uniform(0, min(1.0, self.breakers.config.open_for / 10))
        run_at = datetime.now(UTC) + timedelta(seconds=delay)
        self._outcomes.add(Release(job.id, job.lease_token, run_at=run_at, reason="circuit open"))

    def _breaker_moved(self, job_type: str, old: Any, new: Any) -> None:
        log.warning(
            "circuit breaker changed state",
            worker_id=self.id,
            type=job_type,
            old=str(old),
            new=str(new),
        )

    def _on_cancelled(self, r: _Running) -> None:
        ctx = self._ctx(r)
        ctx.cancelled.set()
        reason = r.cancel_reason
        if reason == "shutdown":
            self._hand_back(r)
        elif reason == "abandoned":
            # Its thread still runs: handing the job back would let another worker run it at
            # the same time. The lease stays held (heart-beaten until the worker stops), then
            # expires and the reaper retries the job, as after a crash.
            ctx.log.warning(
                "sync handler still running after the grace period; job left to its lease",
                lease_seconds=self.settings.lease_seconds,
            )
        else:  # lease lost or job cancelled: the store already moved on
            self._forget_lost(r)

    def _hand_back(self, r: _Running) -> None:
        """Shutdown: the job goes back uncharged, for another worker to run."""
        self._outcomes.add(Release(r.job.id, r.job.lease_token, reason="worker shutdown"))
        self._ctx(r).log.info("job handed back on shutdown")

    def _forget_lost(self, r: _Running) -> None:
        """The store moved the job on (lease lost, job cancelled): nothing to report."""
        self._drop_lease(r)
        self._ctx(r).log.info("job stopped: lease lost or job cancelled")

    def _drop_lease(self, r: _Running) -> None:
        if self._held.get(r.job.id) is r:
            del self._held[r.job.id]

    def _fail(
        self,
        r: _Running,
        exc: BaseException,
        *,
        retryable: bool = True,
        summary: str | None = None,
    ) -> None:
        job = r.job
        summary = summary or f"{type(exc).__name__}: {exc}"
        decision = self.retry_policy.decide(
            attempt=job.attempt,
            max_retries=job.max_retries,
            now=datetime.now(UTC),
            retryable=retryable,
        )
        tb = "".join(traceback.format_exception(exc))
        if isinstance(decision, Retry):
            retry_at: datetime | None = decision.at
            text = summary
        else:
            retry_at, text = None, f"{summary} ({decision.reason})"
        error = storable_text(f"{text}\n\n{tb}")
        self._outcomes.add(Failure(job.id, job.lease_token, error, retry_at))
        self._ctx(r).log.warning(
            "job failed",
            error=summary,
            retry_at=retry_at.isoformat() if retry_at else None,
            dead=retry_at is None,
        )

    def _on_flushed(self, batch: list[Outcome], applied: set[uuid.UUID]) -> None:
        """Outcomes the store has answered for: release their leases and count them, one
        metric update per (queue, type) and kind in the batch. A handler's run time is
        observed for every completion and failure; an outcome is counted only once the store
        took it: a lost lease's attempt is reported by whoever runs the job next, not twice."""
        held = self._held
        completed: dict[metrics.JobSeries, int] = {}
        retried: dict[metrics.JobSeries, int] = {}
        dead: dict[metrics.JobSeries, int] = {}
        durations: dict[metrics.JobSeries, list[float]] = {}
        for outcome in batch:
            r = held.pop(outcome.job_id, None)
            if r is not None and r.job.lease_token != outcome.lease_token:
                held[outcome.job_id] = r  # held again, under a newer claim
                r = None
            elif r is not None and r.duration is not None:
                durations.setdefault(r.series, []).append(r.duration)
            if outcome.job_id not in applied:
                job = r.job if r is not None else None
                log.info(
                    "outcome not applied: lease lost (job reaped or cancelled)",
                    job_id=str(outcome.job_id),
                    job_type=job.type if job else None,
                    queue=job.queue if job else None,
                    attempt=job.attempt if job else None,
                    worker_id=self.id,
                )
            elif r is not None:
                if type(outcome) is Completion:
                    completed[r.series] = completed.get(r.series, 0) + 1
                elif type(outcome) is Failure:
                    into = retried if outcome.retry_at is not None else dead
                    into[r.series] = into.get(r.series, 0) + 1
        for series, n in completed.items():
            series.completed.inc(n)
        for series, n in retried.items():
            series.failed.inc(n)
            series.retried.inc(n)
        for series, n in dead.items():
            series.failed.inc(n)
            series.dead.inc(n)
        for series, values in durations.items():
            metrics.observe_many(series.duration, values)

    # -- leases ------------------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        s = self.settings
        while True:
            await asyncio.sleep(s.heartbeat_interval)
            leases = [Lease(i, r.job.lease_token) for i, r in self._held.items()]
            try:
                still = set(await self.store.heartbeat(self.id, leases, s.lease_seconds))
                await self.store.touch_worker(self.id, len(self._running), self._meta())
            except Exception:
                log.exception("heartbeat failed", worker_id=self.id)
                continue
            for lease in leases:
                if lease.job_id in still:
                    continue
                r = self._held.get(lease.job_id)
                if r is None or r.job.lease_token != lease.lease_token:
                    # No longer this lease: the attempt it extended ended during the round
                    # trip and a new one of the same job (a quick retry) may run here now.
                    continue
                if r.ended or r.cancel_reason is not None:
                    continue
                if self._unqueue(r):  # no runner took it yet: it never runs here
                    self._forget_lost(r)
                    continue
                r.cancel_reason = "lost"
                self._cancel(r)

    async def _maintenance_loop(self, housekeeping: Housekeeping) -> None:
        while True:
            await asyncio.sleep(self.settings.maintenance_interval)
            try:
                await housekeeping()
            except Exception:
                log.exception("maintenance failed", worker_id=self.id)

    # -- shutdown ----------------------------------------------------------------------
    async def _wait_ended(self, records: Iterable[_Running], timeout: float | None) -> None:
        loop = asyncio.get_running_loop()
        waiters = []
        for r in records:
            if not r.ended:
                if r.waiter is None:
                    r.waiter = loop.create_future()
                waiters.append(r.waiter)
        if waiters:
            await asyncio.wait(waiters, timeout=timeout)

    async def _drain(self) -> None:
        if not self._running:
            return
        log.info("waiting for in-flight jobs", count=len(self._running), grace_seconds=self._grace)
        if self._grace > 0:
            await self._wait_ended(list(self._running.values()), self._grace)
        self._hand_back_waiting()
        left = [r for r in self._running.values() if not r.ended]
        threads = [r for r in left if r.cancel_reason is None and _thread_busy(r)]
        for r in left:
            if r in threads:
                if r.ctx is not None:
                    r.ctx.cancelled.set()  # a handler that polls ctx.cancelled can stop now
            elif r.cancel_reason is None:
                r.cancel_reason = "shutdown"
                self._cancel(r)
        if threads and self._thread_margin > 0:
            log.warning(
                "sync handlers still running after the grace period; waiting a little more",
                count=len(threads),
                margin_seconds=self._thread_margin,
            )
            await self._wait_ended(threads, self._thread_margin)
        for r in threads:
            if not r.ended and r.cancel_reason is None:
                r.cancel_reason = "abandoned"
                self._cancel(r)
        if left:
            await self._wait_ended(left, None)

    def _info(self) -> WorkerInfo:
        now = datetime.now(UTC)
        return WorkerInfo(
            id=self.id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            queues=self.queues,
            concurrency=self.concurrency,
            started_at=self.started_at,
            last_seen_at=now,
            meta=self._meta(),
        )

    def _meta(self) -> dict[str, Any]:
        """What the registry row shows about this worker (GET /v1/workers)."""
        return {"types": sorted(self.registry.names()), "breakers": self.breakers.snapshot()}


def _debug_enabled() -> bool:
    """Whether DEBUG lines of this module's logger are emitted under the current logging set-up
    (structlog's filtering loggers know; any other logger is assumed to show them)."""
    is_enabled_for = getattr(log.bind(), "is_enabled_for", None)
    return True if is_enabled_for is None else bool(is_enabled_for(logging.DEBUG))
