"""Every Prometheus metric Conveyor exports, defined once (prefix `conveyor_`).

Three kinds of series, each collected where it is cheapest and true:

* Event counters and histograms (jobs enqueued/started/completed/failed/retried/dead/
  cancelled, run time, wait, lease reaps, HTTP requests) are incremented where the event
  happens. Job series are labelled by queue and type only, never by job id; the labelled
  children are cached per (queue, type) so the worker's hot path does one dict lookup.
* Store-wide state (queue depth by status, workers alive) comes from the store, which is the
  truth. Collectors are synchronous and the store is async, so a background task
  (`StoreStats.run`, started by the API server and `conveyor dev`) refreshes a cache every few
  seconds and the collector exports that cache: a scrape never touches the database.
* Process-local state (running jobs and free slots per worker, scheduler leadership, circuit
  breakers) is read from the live objects at scrape time, so a stopped worker's series vanish
  with it instead of going stale.

Several API processes (e.g. `uvicorn --workers 4` or gunicorn): set PROMETHEUS_MULTIPROC_DIR
to an empty directory shared by those processes *before* they start (prometheus-client picks
its value store at import time). Counters and histograms are then summed across processes by
`MultiProcessCollector` whichever process answers the scrape; the store-backed gauges are
global anyway. Without the variable every process exports its own registry, which is right
for one process per scrape target (a worker, a scheduler, a single server).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import os
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric as _Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from conveyor.domain.job import JobStatus
from conveyor.domain.records import WorkerInfo

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

log = structlog.get_logger("conveyor.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Job run time: sub-millisecond no-op handlers up to hour-long batch jobs.
DURATION_BUCKETS = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600,
)  # fmt: skip
# Enqueue-to-start wait: milliseconds when idle, minutes when backlogged.
WAIT_BUCKETS = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800,
)  # fmt: skip
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

_JOB_LABELS = ("queue", "type")

JOBS_ENQUEUED = Counter(
    "conveyor_jobs_enqueued", "Jobs created by a submission (deduplicated repeats excluded)",
    _JOB_LABELS,
)  # fmt: skip
JOBS_STARTED = Counter("conveyor_jobs_started", "Attempts started (jobs claimed)", _JOB_LABELS)
JOBS_COMPLETED = Counter("conveyor_jobs_completed", "Jobs completed successfully", _JOB_LABELS)
JOBS_FAILED = Counter(
    "conveyor_jobs_failed", "Failed attempts (each then retried or dead-lettered)", _JOB_LABELS
)
JOBS_RETRIED = Counter(
    "conveyor_jobs_retried", "Failed attempts scheduled for a retry", _JOB_LABELS
)
JOBS_DEAD = Counter("conveyor_jobs_dead", "Jobs moved to the dead-letter queue", _JOB_LABELS)
JOBS_CANCELLED = Counter("conveyor_jobs_cancelled", "Jobs cancelled by an operator", _JOB_LABELS)
JOB_DURATION = Histogram(
    "conveyor_job_duration_seconds",
    "Handler run time of one attempt (completed or failed)",
    _JOB_LABELS,
    buckets=DURATION_BUCKETS,
)
JOB_WAIT = Histogram(
    "conveyor_job_wait_seconds",
    "Time from when a job could run (run_at: enqueue, delay or retry backoff end) to its claim",
    _JOB_LABELS,
    buckets=WAIT_BUCKETS,
)
LEASE_REAPS = Counter(
    "conveyor_lease_reaps",
    "Running jobs whose lease expired (worker lost); outcome is the job's new status",
    ("outcome",),
)
for _outcome in (JobStatus.QUEUED.value, JobStatus.DEAD.value):
    LEASE_REAPS.labels(_outcome)  # export zeros, so rate() has a series before the first reap
EVENTS_PUBLISHED = Counter(
    "conveyor_events_published",
    "Lifecycle events the outbox relay published to Kafka (a re-publish counts again)",
)

# The Redis transport (conveyor.transport.redis); "via" says who put the ids in: the submit
# ("enqueue") or the sweep ("sweep": promoted, reaped, released jobs and what Redis lost).
TRANSPORT_DISPATCHED = Counter(
    "conveyor_transport_dispatched", "Job ids added to a transport's ready set", ("via",)
)
TRANSPORT_RECOVERED = Counter(
    "conveyor_transport_recovered",
    "Ids taken by a worker that never acknowledged its claim, put back after their deadline",
)
TRANSPORT_DISPATCH_LAG = Histogram(
    "conveyor_transport_dispatch_lag_seconds",
    "From a job becoming ready (its run_at) to its id entering the transport",
    buckets=WAIT_BUCKETS,
)
TRANSPORT_SIZE = Gauge(
    "conveyor_transport_ids",
    "Ids per queue in the transport, as of this process's last sweep (set: ready, processing)",
    ("queue", "set"),
)
TRANSPORT_UP = Gauge(
    "conveyor_transport_up", "1 while this process reaches its transport", ("transport",)
)

HTTP_REQUESTS = Counter(
    "conveyor_http_requests", "HTTP requests by route template", ("method", "route", "status")
)
HTTP_DURATION = Histogram(
    "conveyor_http_request_duration_seconds",
    "HTTP request latency by route template",
    ("method", "route"),
    buckets=HTTP_BUCKETS,
)

# Gauges produced by collectors (documented here so every name lives in this file).
QUEUE_DEPTH = "conveyor_queue_depth"
WORKERS_ALIVE = "conveyor_workers_alive"
WORKER_RUNNING = "conveyor_worker_running_jobs"
WORKER_FREE = "conveyor_worker_free_slots"
SCHEDULER_LEADER = "conveyor_scheduler_leader"
CIRCUIT_STATE = "conveyor_circuit_state"
STATS_AGE = "conveyor_store_stats_age_seconds"

# Circuit-breaker states as gauge values: alert on `conveyor_circuit_state == 2`.
CIRCUIT_VALUES = {"closed": 0, "half_open": 1, "half-open": 1, "open": 2}

# A label value is user input (job types and queues are validated names, but unbounded in
# number): past this many (queue, type) pairs new pairs share one series rather than let a
# misbehaving producer blow up the scrape.
MAX_JOB_SERIES = 2000
OVERFLOW_LABEL = "_other"


class JobSeries:
    """The labelled children of one (queue, type), resolved once."""

    __slots__ = (
        "cancelled",
        "completed",
        "dead",
        "duration",
        "enqueued",
        "failed",
        "retried",
        "started",
        "wait",
    )

    def __init__(self, queue: str, type: str) -> None:
        self.enqueued = JOBS_ENQUEUED.labels(queue, type)
        self.started = JOBS_STARTED.labels(queue, type)
        self.completed = JOBS_COMPLETED.labels(queue, type)
        self.failed = JOBS_FAILED.labels(queue, type)
        self.retried = JOBS_RETRIED.labels(queue, type)
        self.dead = JOBS_DEAD.labels(queue, type)
        self.cancelled = JOBS_CANCELLED.labels(queue, type)
        self.duration = JOB_DURATION.labels(queue, type)
        self.wait = JOB_WAIT.labels(queue, type)


_series: dict[tuple[str, str], JobSeries] = {}


def job_series(queue: str, type: str) -> JobSeries:
    key = (queue, type)
    s = _series.get(key)
    if s is None:
        if len(_series) >= MAX_JOB_SERIES:
            key = (queue, OVERFLOW_LABEL)
            s = _series.get(key)
            if s is not None:
                return s
        s = _series[key] = JobSeries(*key)
    return s


def observe_many(histogram: Any, values: Sequence[float]) -> None:
    """`histogram.observe(v)` for every v, in one update per bucket hit plus one of the sum
    rather than two locked updates per value: the worker observes a claim batch's waits and an
    outcome batch's run times at once. Reads prometheus-client's histogram layout (buckets
    with their upper bounds, the sum); any other layout is observed one value at a time."""
    if not values:
        return
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for v in values:
            histogram.observe(v)
        return
    hits = [0] * len(bounds)
    for v in values:
        hits[bisect.bisect_left(bounds, v)] += 1  # the first bucket with v <= its bound
    total.inc(sum(values))
    for i, n in enumerate(hits):
        if n:
            buckets[i].inc(n)


# -- process-local state, read at scrape time ------------------------------------------------


class WorkerLike(Protocol):
    id: str
    concurrency: int

    @property
    def running_count(self) -> int: ...


class SchedulerLike(Protocol):
    holder: str
    is_leader: bool


_workers: weakref.WeakSet[Any] = weakref.WeakSet()
_schedulers: weakref.WeakSet[Any] = weakref.WeakSet()
_breaker_sources: list[Callable[[], Iterable[tuple[str, str]]]] = []


def track_worker(worker: WorkerLike) -> None:
    _workers.add(worker)


def untrack_worker(worker: WorkerLike) -> None:
    _workers.discard(worker)


def track_scheduler(scheduler: SchedulerLike) -> None:
    _schedulers.add(scheduler)


def untrack_scheduler(scheduler: SchedulerLike) -> None:
    _schedulers.discard(scheduler)


def add_breaker_source(source: Callable[[], Iterable[tuple[str, str]]]) -> Callable[[], None]:
    """Register a callable returning (job type, state) pairs, e.g. a worker's breaker board;
    returns a function that unregisters it."""
    _breaker_sources.append(source)

    def remove() -> None:
        with contextlib.suppress(ValueError):
            _breaker_sources.remove(source)

    return remove


def _board_states(board: Any) -> Iterable[tuple[str, str]]:
    return [(t, str(state)) for t, state in board.states().items()]


class ProcessCollector(Collector):
    """Running jobs and free slots per worker, scheduler leadership and breaker states of the
    objects alive in this process."""

    def collect(self) -> Iterator[Metric]:
        running = GaugeMetricFamily(
            WORKER_RUNNING, "Jobs this worker is running", labels=["worker"]
        )
        free = GaugeMetricFamily(WORKER_FREE, "Free slots of this worker", labels=["worker"])
        for w in list(_workers):
            n = w.running_count
            running.add_metric([w.id], n)
            free.add_metric([w.id], max(0, w.concurrency - n))
        yield running
        yield free
        schedulers = list(_schedulers)
        if schedulers:
            leader = GaugeMetricFamily(
                SCHEDULER_LEADER, "1 if this scheduler holds leadership", labels=["holder"]
            )
            for s in schedulers:
                leader.add_metric([s.holder], 1.0 if s.is_leader else 0.0)
            yield leader
        states: dict[str, float] = {}
        sources = list(_breaker_sources)
        for w in list(_workers):
            board = getattr(w, "breakers", None)  # worker.breaker.BreakerBoard
            if board is not None and getattr(board, "enabled", False):
                sources.append(functools.partial(_board_states, board))
        for source in sources:
            try:
                pairs = list(source())
            except Exception:  # a broken source must not break the scrape
                log.exception("circuit-breaker snapshot failed")
                continue
            for job_type, state in pairs:
                value = float(CIRCUIT_VALUES.get(str(state).lower(), 2))
                states[job_type] = max(states.get(job_type, 0.0), value)
        circuit = GaugeMetricFamily(
            CIRCUIT_STATE,
            "Circuit breaker per job type: 0 closed, 1 half-open, 2 open (worst across workers "
            "in this process)",
            labels=["type"],
        )
        for job_type, value in sorted(states.items()):
            circuit.add_metric([job_type], value)
        yield circuit


# -- store-wide state, cached ------------------------------------------------------------------


class StatsSource(Protocol):
    """The two reads the refresh makes (a Store has both): metrics sits below the store."""

    async def count_by_queue_status(self) -> dict[str, dict[JobStatus, int]]: ...

    async def list_workers(self) -> list[WorkerInfo]: ...


class StoreStats(Collector):
    """Queue depth and live workers from the store, refreshed by `run()` and exported from the
    cache. Before the first refresh (or after `clear()`) it exports nothing rather than zeros,
    so a missing refresher shows up as absent data, not as an empty system."""

    def __init__(self) -> None:
        self.depth: dict[str, dict[str, int]] | None = None
        self.workers_alive: int | None = None
        self.refreshed_at: float | None = None
        self.owner: object | None = None

    async def refresh(self, store: StatsSource, alive_within: float) -> None:
        counts = await store.count_by_queue_status()
        workers = await store.list_workers()
        cutoff = datetime.now(UTC) - timedelta(seconds=alive_within)
        depth: dict[str, dict[str, int]] = {}
        for queue, by_status in counts.items():
            # Every status of every known queue, zeros included: a drained queue must read 0,
            # not vanish from the graph.
            depth[queue] = {s.value: int(by_status.get(s, 0)) for s in JobStatus}
        self.depth = depth
        self.workers_alive = sum(1 for w in workers if w.last_seen_at >= cutoff)
        self.refreshed_at = time.monotonic()

    async def run(self, store: StatsSource, *, interval: float, alive_within: float) -> None:
        owner = object()
        self.owner = owner
        try:
            while True:
                try:
                    await self.refresh(store, alive_within)
                except Exception as exc:
                    log.warning("metrics refresh failed", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(interval)
        finally:
            if self.owner is owner:
                self.clear()

    def clear(self) -> None:
        self.depth = None
        self.workers_alive = None
        self.refreshed_at = None

    def collect(self) -> Iterator[Metric]:
        depth, alive, at = self.depth, self.workers_alive, self.refreshed_at
        if depth is None or alive is None or at is None:
            return
        fam = GaugeMetricFamily(QUEUE_DEPTH, "Jobs by queue and status", labels=["queue", "status"])
        for queue, by_status in sorted(depth.items()):
            for status, n in by_status.items():
                fam.add_metric([queue, status], n)
        yield fam
        yield GaugeMetricFamily(
            WORKERS_ALIVE, "Registered workers heard from recently", value=alive
        )
        yield GaugeMetricFamily(
            STATS_AGE, "Seconds since queue depth was read from the store", time.monotonic() - at
        )


STORE_STATS = StoreStats()
PROCESS = ProcessCollector()


# -- platform B's names (CONVEYOR_COMPAT_METRIC_ALIASES, docs/migrating.md) --------------------

_WAITING_STATUSES = (JobStatus.QUEUED.value, JobStatus.SCHEDULED.value, JobStatus.RETRYING.value)


class AliasCollector(Collector):
    """Conveyor's series again under the names platform B exported, so its dashboards and
    alerts keep working: read at scrape time from the metrics above (nothing is counted twice
    on the hot path). Off unless the setting turns it on."""

    RENAMES = (
        (JOBS_COMPLETED, "jobs_processed", "Jobs completed (alias of conveyor_jobs_completed)"),
        (JOBS_FAILED, "job_failures", "Failed attempts (alias of conveyor_jobs_failed)"),
        (
            JOB_DURATION,
            "job_processing_duration_seconds",
            "Handler run time (alias of conveyor_job_duration_seconds)",
        ),
    )

    def collect(self) -> Iterator[Metric]:
        for source, alias, doc in self.RENAMES:
            for family in source.collect():
                renamed = _Metric(alias, doc, family.type)
                renamed.samples = [
                    Sample(alias + s.name[len(family.name) :], *s[1:]) for s in family.samples
                ]
                yield renamed
        depth = STORE_STATS.depth
        if depth is not None:
            fam = GaugeMetricFamily(
                "queue_depth",
                "Jobs waiting per queue (queued, scheduled, retrying; from conveyor_queue_depth)",
                labels=["queue"],
            )
            for queue, by_status in sorted(depth.items()):
                fam.add_metric([queue], sum(by_status.get(s, 0) for s in _WAITING_STATUSES))
            yield fam


ALIASES = AliasCollector()
_aliases_on = False


def use_aliases(enabled: bool) -> None:
    """Export (or stop exporting) platform B's metric names in this process; idempotent."""
    global _aliases_on
    if enabled == _aliases_on or os.environ.get(MULTIPROC_ENV):
        return
    if enabled:
        REGISTRY.register(ALIASES)
    else:
        REGISTRY.unregister(ALIASES)
    _aliases_on = enabled


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _register_defaults() -> None:
    if not os.environ.get(MULTIPROC_ENV):
        REGISTRY.register(STORE_STATS)
        REGISTRY.register(PROCESS)


_register_defaults()


def render() -> tuple[bytes, str]:
    """The exposition text for this process (or, in multiprocess mode, all of them)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(STORE_STATS)
        registry.register(PROCESS)
        return generate_latest(registry), CONTENT_TYPE
    return generate_latest(REGISTRY), CONTENT_TYPE


def mark_process_dead(pid: int) -> None:
    """Call from a process manager when a multiprocess worker exits (gunicorn `child_exit`)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def count_enqueued(results: Iterable[Any]) -> None:
    """Count the jobs a submission created (an `Enqueued` with created=False is a dedupe hit)."""
    for r in results:
        if r.created:
            job_series(r.job.queue, r.job.type).enqueued.inc()


def count_reaped(reaped: Iterable[Any]) -> None:
    for r in reaped:
        LEASE_REAPS.labels(r.new_status.value).inc()


async def start_store_stats(
    store: StatsSource, *, interval: float, alive_within: float
) -> Callable[[], Awaitable[None]]:
    """Start refreshing STORE_STATS; returns an async stop function."""
    task = asyncio.create_task(
        STORE_STATS.run(store, interval=interval, alive_within=alive_within),
        name="conveyor-metrics-refresh",
    )

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return stop
