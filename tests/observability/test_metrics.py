"""Metrics in-process, on SQLite: counted once at the right moment, labelled by queue and type,
state gauges read from live objects, store stats from a cache, HTTP routes by template."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from conveyor import App, JobContext, NonRetryable, metrics
from conveyor.api import create_app
from conveyor.store import open_store
from tests.e2e.conftest import fast_settings
from tests.helpers import opened, running, wait_until


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def app(sqlite_url: str) -> AsyncIterator[App]:
    async with opened(App(settings=fast_settings(sqlite_url))) as a:
        yield a


async def test_job_counters_follow_outcomes(app: App) -> None:
    queue = f"q{uuid.uuid4().hex[:8]}"  # fresh labels: the registry is process-wide

    @app.job("m.ok", queue=queue)
    async def ok(payload: dict[str, Any]) -> None:
        await asyncio.sleep(0.01)

    @app.job("m.flaky", queue=queue, max_retries=2)
    async def flaky(payload: dict[str, Any], ctx: JobContext) -> None:
        if ctx.attempt == 1:
            raise RuntimeError("once")

    @app.job("m.bad", queue=queue)
    async def bad(payload: dict[str, Any]) -> None:
        raise NonRetryable("never")

    jobs = await app.enqueue_many(
        [app.new_job("m.ok") for _ in range(5)]
        + [app.new_job("m.flaky"), app.new_job("m.bad"), app.new_job("m.ok", unique_key="k")]
    )
    await app.enqueue("m.ok", unique_key="k")  # a dedupe hit: not a new job
    later = await app.enqueue("m.ok", run_at=None, priority=0, max_retries=0)
    await app.service.cancel(later.id)

    def c(metric: str, type: str) -> float:
        return sample(f"conveyor_jobs_{metric}_total", queue=queue, type=type)

    assert c("enqueued", "m.ok") == 7
    assert c("cancelled", "m.ok") == 1
    async with running(app.worker(concurrency=4)):

        async def done() -> bool:
            got = [await app.store.get_job(j.id) for j in jobs]
            return all(j.status.terminal for j in got)

        await wait_until(done, timeout=10, message="all jobs to finish")
        await wait_until(lambda: c("dead", "m.bad") == 1, message="dead counted")
    assert c("started", "m.ok") == 6
    assert c("completed", "m.ok") == 6
    assert (c("failed", "m.flaky"), c("retried", "m.flaky"), c("completed", "m.flaky")) == (1, 1, 1)
    assert (c("failed", "m.bad"), c("retried", "m.bad"), c("dead", "m.bad")) == (1, 0, 1)
    labels = {"queue": queue, "type": "m.ok"}
    assert sample("conveyor_job_duration_seconds_count", **labels) == 6
    assert sample("conveyor_job_wait_seconds_count", **labels) == 6
    # run time observed around the handler: at least its 10 ms sleep each
    assert sample("conveyor_job_duration_seconds_sum", **labels) >= 0.06


async def test_worker_gauges_live_and_vanish(app: App) -> None:
    gate = asyncio.Event()

    @app.job("m.block")
    async def block(payload: dict[str, Any]) -> None:
        await gate.wait()

    await app.enqueue_many([app.new_job("m.block") for _ in range(3)])
    worker = app.worker(concurrency=5, worker_id=f"w-{uuid.uuid4().hex[:6]}")
    async with running(worker):
        await wait_until(
            lambda: sample("conveyor_worker_running_jobs", worker=worker.id) == 3,
            message="three running",
        )
        assert sample("conveyor_worker_free_slots", worker=worker.id) == 2
        assert worker.liveness() is None
        # a fetch loop that has not come round within the bound while slots are free is stuck
        assert "fetch loop has not run" in (worker.liveness(stall_after=1e-9) or "")
        gate.set()
    assert REGISTRY.get_sample_value("conveyor_worker_running_jobs", {"worker": worker.id}) is None
    assert worker.liveness() == "worker has stopped"


async def test_store_stats_cache(app: App) -> None:
    stats = metrics.StoreStats()
    assert list(stats.collect()) == []  # nothing until refreshed: absent, not zero
    await app.enqueue_many([app.new_job("x.y", queue="depth") for _ in range(4)])
    await stats.refresh(app.store, alive_within=60)
    fams = {f.name: f for f in stats.collect()}
    depth = {
        (s.labels["queue"], s.labels["status"]): s.value
        for s in fams["conveyor_queue_depth"].samples
    }
    assert depth[("depth", "queued")] == 4
    assert depth[("depth", "dead")] == 0  # every status present, zeros included
    assert fams["conveyor_workers_alive"].samples[0].value == 0


def test_job_series_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_series", {})
    monkeypatch.setattr(metrics, "MAX_JOB_SERIES", 2)
    a = metrics.job_series("q", "a")
    assert metrics.job_series("q", "a") is a
    metrics.job_series("q", "b")
    assert metrics.job_series("q", "c") is metrics.job_series("q", "d")  # both overflow
    assert set(metrics._series) == {("q", "a"), ("q", "b"), ("q", metrics.OVERFLOW_LABEL)}


async def test_http_metrics_use_route_templates(sqlite_url: str) -> None:
    settings = fast_settings(sqlite_url, auth_enabled=False)
    store = open_store(sqlite_url)
    await store.connect()
    await store.migrate()
    api = create_app(settings, store=store)
    series = {
        "read": ("GET", "/v1/jobs/{job_id}", "404"),
        "unmatched": ("GET", "unmatched", "404"),
        "submit": ("POST", "/v1/jobs", "201"),  # answered by the gate's direct handler
    }

    def counts() -> dict[str, float]:
        return {
            k: sample("conveyor_http_requests_total", method=m, route=r, status=s)
            for k, (m, r, s) in series.items()
        }

    before = counts()
    try:
        async with api.router.lifespan_context(api):
            transport = httpx.ASGITransport(app=api)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                for _ in range(3):
                    assert (await http.get(f"/v1/jobs/{uuid.uuid4()}")).status_code == 404
                assert (await http.get(f"/nowhere/{uuid.uuid4()}")).status_code == 404
                for _ in range(2):
                    assert (await http.post("/v1/jobs", json={"type": "m.x"})).status_code == 201
    finally:
        await store.close()
    after = counts()
    assert {k: after[k] - before[k] for k in series} == {"read": 3, "unmatched": 1, "submit": 2}
    text = metrics.render()[0].decode()
    assert "/nowhere/" not in text and "/v1/jobs/" + "{job_id}" in text


def test_circuit_state_from_breaker_sources() -> None:
    remove = metrics.add_breaker_source(lambda: [("pay.charge", "open"), ("mail.send", "closed")])
    try:
        assert sample("conveyor_circuit_state", type="pay.charge") == 2
        assert sample("conveyor_circuit_state", type="mail.send") == 0
    finally:
        remove()
    assert REGISTRY.get_sample_value("conveyor_circuit_state", {"type": "pay.charge"}) is None


def test_every_metric_has_the_prefix() -> None:
    names = {m.name for m in REGISTRY.collect()}
    ours = {n for n in names if n.startswith("conveyor_")}
    assert {
        "conveyor_jobs_enqueued",
        "conveyor_job_duration_seconds",
        "conveyor_job_wait_seconds",
        "conveyor_lease_reaps",
        "conveyor_http_requests",
        "conveyor_worker_running_jobs",
        "conveyor_circuit_state",
    } <= ours


def test_observe_many_counts_as_observing_one_value_at_a_time() -> None:
    """The worker observes a batch's waits and run times at once (`metrics.observe_many`),
    which reads prometheus-client's histogram layout: same samples as `observe` per value."""
    from prometheus_client import CollectorRegistry, Histogram

    registry = CollectorRegistry()
    one = Histogram("one", "h", buckets=metrics.WAIT_BUCKETS, registry=registry)
    many = Histogram("many", "h", buckets=metrics.WAIT_BUCKETS, registry=registry)
    values = [0.0, 0.0005, 0.001, 0.0011, 0.3, 0.3, 7.0, 1800.0, 1e6]
    for v in values:
        one.observe(v)
    metrics.observe_many(many, values)
    metrics.observe_many(many, [])
    (a,), (b,) = one.collect(), many.collect()
    got = {(s.name.removeprefix("many"), tuple(s.labels.items())): s.value for s in b.samples}
    want = {(s.name.removeprefix("one"), tuple(s.labels.items())): s.value for s in a.samples}
    got = {k: v for k, v in got.items() if k[0] != "_created"}
    want = {k: v for k, v in want.items() if k[0] != "_created"}
    assert got == want and got[("_count", ())] == len(values)
