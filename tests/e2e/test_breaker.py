"""Circuit breakers in a real worker on both stores: a handler's dependency goes down, the
breaker opens and defers jobs without charging attempts, the dependency recovers, a half-open
probe succeeds and every job completes."""

from __future__ import annotations

from typing import Any

from conveyor import App, JobStatus, RetryPolicy
from tests.e2e.conftest import fast_settings
from tests.helpers import running, wait_until


async def worker_breakers(app: App) -> dict[str, Any]:
    workers = await app.store.list_workers()
    return workers[0].meta.get("breakers", {}) if workers else {}


async def test_breaker_opens_defers_without_charging_and_recovers(store_url: str) -> None:
    settings = fast_settings(
        store_url,
        breaker_min_calls=3,
        breaker_failure_rate=0.5,
        breaker_window=30.0,
        breaker_open_seconds=0.6,
    )
    app = App(settings=settings, retry_policy=RetryPolicy(base=0.1, factor=1, jitter=False))
    await app.open(migrate=True)
    dependency = {"up": False}
    calls: list[tuple[str, int, bool]] = []

    @app.job("pay.charge", max_retries=50)
    async def charge(payload: dict[str, Any], ctx: Any) -> str:
        calls.append((str(ctx.job_id), ctx.attempt, dependency["up"]))
        if not dependency["up"]:
            raise ConnectionError("payment provider down")
        return "charged"

    try:
        jobs = [await app.enqueue("pay.charge", {"n": i}) for i in range(8)]
        async with running(app.worker(concurrency=1)):
            # Three failures open the breaker; the worker's registry row shows it.
            await wait_until(
                lambda: _state_is(app, "open"), timeout=10, message="breaker open in /workers"
            )
            failures_when_opened = sum(1 for *_, up in calls if not up)
            assert failures_when_opened >= 3

            # While open, jobs are deferred: released to `scheduled` with no attempt charged.
            async def deferred() -> bool:
                for j in jobs:
                    events = await app.store.job_events(j.id)
                    if any(e.message == "circuit open" for e in events):
                        return True
                return False

            await wait_until(deferred, timeout=10, message="a job deferred by the open breaker")

            dependency["up"] = True

            async def all_done() -> bool:
                got = [await app.store.get_job(j.id) for j in jobs]
                return all(g.status == JobStatus.COMPLETED for g in got)

            await wait_until(all_done, timeout=20, message="every job to complete after recovery")
            await wait_until(
                lambda: _state_is(app, "closed"), timeout=5, message="breaker closed again"
            )

        # Attempts were charged only for real failures: never for a deferral.
        failed_runs: dict[str, int] = {}
        for job_id, _attempt, up in calls:
            if not up:
                failed_runs[job_id] = failed_runs.get(job_id, 0) + 1
        for j in jobs:
            done = await app.store.get_job(j.id)
            assert done.attempt == failed_runs.get(str(j.id), 0) + 1, (done, failed_runs)
        # The breaker spared the dependency: far fewer failing calls than jobs x retries.
        assert sum(failed_runs.values()) < 8
    finally:
        await app.close()


async def _state_is(app: App, state: str) -> bool:
    breakers = await worker_breakers(app)
    return breakers.get("pay.charge", {}).get("state") == state
