"""PostgreSQL stopped and restarted (fast, then immediate) under a steady stream of submits
over HTTP and two draining workers, on a private cluster the test owns: every acknowledged
submit completes exactly once, and the server and workers recover on their own. Then a server
and a worker started while the cluster is down come up when it starts."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor import App, JobStatus
from conveyor.domain.errors import StoreUnavailable
from tests.faults.conftest import open_app
from tests.faults.history import History
from tests.faults.pgcluster import PrivateCluster, free_port
from tests.faults.procs import Procs
from tests.helpers import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]

RECOVERY_BOUND = 15.0  # from the cluster accepting connections to the next acknowledged submit


class Submitter:
    """Submits a job every `interval` over HTTP and records what was acknowledged; refusals
    (503 while the database is down) and failed calls are counted, not recorded."""

    def __init__(self, base_url: str, history: History, interval: float = 0.025) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=3)
        self.history = history
        self.interval = interval
        self.acked = 0
        self.refused = 0
        self.last_ack = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        body = {
            "type": "faults.work",
            "payload": {"history": str(self.history.path), "seconds": 0.05},
        }
        while True:
            try:
                reply = await self.http.post("/v1/jobs", json=body)
            except httpx.TransportError:
                self.refused += 1
            else:
                if reply.status_code == 201:
                    self.history.submit([reply.json()["id"]])
                    self.acked += 1
                    self.last_ack = time.monotonic()
                else:
                    assert reply.status_code == 503, reply.text  # never a 500
                    assert "Retry-After" in reply.headers
                    self.refused += 1
            await asyncio.sleep(self.interval)  # pacing a load, not synchronising

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop submitting; an error the loop met (a 500, say) is raised here."""
        task, self._task = self._task, None
        try:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        finally:
            await self.http.aclose()


async def _answers(check: Callable[[], Awaitable[Any]]) -> Any:
    """The check's answer, or False while the store is still coming back."""
    try:
        return await check()
    except StoreUnavailable:
        return False


async def _drained(app: App, history: History) -> None:
    async def done() -> bool:
        ids = list(history.submitted)
        jobs = await app.store.get_jobs(ids)  # type: ignore[arg-type]
        return len(jobs) == len(ids) and all(j.status == JobStatus.COMPLETED for j in jobs)

    await wait_until(lambda: _answers(done), timeout=60, interval=0.2, message="all submits done")


async def test_restarts_under_load_lose_nothing_and_complete_nothing_twice(
    private_pg: PrivateCluster, private_pg_url: str, history: History, procs: Procs
) -> None:
    app = await open_app(private_pg_url)
    port = free_port()
    server = procs.start("server", private_pg_url, "server", "--port", str(port))
    workers = [procs.worker(private_pg_url, "--concurrency", "4") for _ in range(2)]
    submitter = Submitter(f"http://127.0.0.1:{port}", history)
    recoveries: dict[str, float] = {}
    try:

        async def healthy() -> bool:
            with contextlib.suppress(httpx.TransportError):
                return (await submitter.http.get("/readyz")).status_code == 200
            return False

        await wait_until(healthy, timeout=60, message="the server to be ready")
        submitter.start()
        for mode in ("fast", "immediate"):
            acked = submitter.acked
            await wait_until(
                lambda a=acked: submitter.acked >= a + 20, timeout=30, message="submits"
            )
            await asyncio.to_thread(private_pg.stop, mode)
            refused = submitter.refused
            await wait_until(
                lambda r=refused: submitter.refused >= r + 10, timeout=30, message="refusals"
            )
            await asyncio.to_thread(private_pg.start)
            up = time.monotonic()
            await wait_until(
                lambda u=up: submitter.last_ack > u, timeout=RECOVERY_BOUND, message="recovery"
            )
            recoveries[mode] = submitter.last_ack - up
        acked = submitter.acked
        await wait_until(lambda: submitter.acked >= acked + 20, timeout=30, message="submits")
        await submitter.stop()
        await _drained(app, history)
        for p in (server, *workers):
            assert p.poll() is None, procs.text(p)  # recovered on its own, never exited
        procs.close()
        verdict = await history.verdict(app.store)
    finally:
        await submitter.stop()
        procs.close()
        await app.close()
    print(f"recovery after restart: {recoveries}; refused {submitter.refused}\n{verdict.summary()}")
    assert verdict.ok, verdict.summary()
    assert verdict.submitted >= 60


async def test_server_and_worker_started_while_postgres_is_down_come_up_with_it(
    private_pg: PrivateCluster, private_pg_url: str, history: History, procs: Procs, tmp_path: Path
) -> None:
    app = await open_app(private_pg_url)
    await app.close()
    await asyncio.to_thread(private_pg.stop, "fast")
    try:
        port = free_port()
        server = procs.start("server", private_pg_url, "server", "--port", str(port))
        worker = procs.worker(private_pg_url)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=3) as http:

            async def status(path: str) -> int | None:
                with contextlib.suppress(httpx.TransportError):
                    return (await http.get(path)).status_code
                return None

            async def serving() -> bool:
                return await status("/healthz") == 200

            await wait_until(serving, timeout=60, message="/healthz 200 with the database down")
            assert await status("/readyz") == 503
            await wait_until(
                lambda: any(
                    e.get("event") == "store unreachable; retrying" for e in procs.lines(worker)
                ),
                timeout=30,
                message="the worker to wait for the database",
            )
            assert worker.poll() is None and server.poll() is None
            await asyncio.to_thread(private_pg.start)

            async def ready() -> bool:
                return await status("/readyz") == 200

            await wait_until(ready, timeout=30, message="/readyz 200 once the database is up")
            reply = await http.post(
                "/v1/jobs",
                json={"type": "faults.work", "payload": {"history": str(history.path)}},
            )
            assert reply.status_code == 201, reply.text
            history.submit([reply.json()["id"]])
        app = await open_app(private_pg_url)
        try:
            await _drained(app, history)
            procs.close()
            verdict = await history.verdict(app.store)
            (job,) = await app.store.get_jobs([reply.json()["id"]])
        finally:
            await app.close()
    finally:
        procs.close()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(private_pg.start)
    assert verdict.ok, verdict.summary()
    assert job.result["pid"] == worker.pid
