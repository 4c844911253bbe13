"""Issue 19 #3: a process started while PostgreSQL is down waits for it instead of exiting (a
crash loop under an orchestrator). The store is a TcpProxy port that refuses connections until
the test opens it; every process is a real `conveyor` subprocess. Last, the executor alone:
a failing registration is retried, and a stop ends the wait."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson
import pytest
from structlog.testing import capture_logs

from conveyor import App, JobStatus
from conveyor.domain.errors import StoreUnavailable
from conveyor.store import open_store
from conveyor.worker.executor import Worker
from tests.e2e.conftest import fast_settings
from tests.helpers import TcpProxy, via_proxy, wait_until

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "hunter2-not-for-logs"  # trust auth ignores it; it must never reach a log line


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _with_password(url: str) -> str:
    parts = urlsplit(url)
    user, _, host = parts.netloc.rpartition("@")
    user = (user.split(":", 1)[0] or "postgres") + f":{PASSWORD}"
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


async def _migrate(url: str) -> None:
    store = open_store(url)
    await store.connect()
    try:
        await store.migrate()
    finally:
        await store.close()


def _spawn(log: Path, store_url: str, *args: str, **env: str) -> subprocess.Popen[bytes]:
    full_env = {
        **os.environ,
        "CONVEYOR_STORE_URL": store_url,
        "CONVEYOR_LOG_FORMAT": "json",
        "CONVEYOR_POLL_INTERVAL": "0.1",
        "CONVEYOR_HEARTBEAT_INTERVAL": "0.2",
        "CONVEYOR_MAINTENANCE_INTERVAL": "0.1",
        # The tests package from the repo; conveyor from wherever this run imports it.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        **env,
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "conveyor.cli", *args],
            env=full_env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@contextlib.asynccontextmanager
async def _conveyor(
    log: Path, store_url: str, *args: str, **env: str
) -> AsyncIterator[subprocess.Popen[bytes]]:
    """A `conveyor …` subprocess logging JSON to `log`; stopped (killed if need be) on exit.
    Its exit is awaited, not waited for: the proxy it talks through runs on this event loop."""
    proc = _spawn(log, store_url, *args, **env)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await wait_until(lambda: proc.poll() is not None, timeout=15, message="exit")
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)


def _lines(log: Path) -> list[dict[str, Any]]:
    out = []
    for raw in log.read_bytes().splitlines():
        with contextlib.suppress(orjson.JSONDecodeError):
            line = orjson.loads(raw)
            if isinstance(line, dict):
                out.append(line)
    return out


def _retries(log: Path) -> list[dict[str, Any]]:
    return [e for e in _lines(log) if e.get("event") == "store unreachable; retrying"]


def _assert_waited(log: Path) -> None:
    retries = _retries(log)
    assert [e["attempt"] for e in retries] == list(range(1, len(retries) + 1))
    assert all(0 < e["retry_in"] <= 10 for e in retries)
    assert PASSWORD not in log.read_text()


@pytest.mark.parametrize("grpc", [False, True], ids=["http", "http+grpc"])
async def test_server_started_while_store_is_down_serves_then_becomes_ready(
    pg_url: str, tmp_path: Path, grpc: bool
) -> None:
    await _migrate(pg_url)
    target = urlsplit(pg_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    proxy.reserve()
    url = _with_password(via_proxy(pg_url, proxy.port))
    port = _free_port()
    log = tmp_path / "server.log"
    try:
        async with _conveyor(
            log,
            url,
            "server",
            "--port",
            str(port),
            CONVEYOR_AUTH_ENABLED="false",
            CONVEYOR_GRPC_PORT=str(_free_port()) if grpc else "0",
        ) as proc:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:

                async def status(path: str) -> int | None:
                    try:
                        return (await http.get(path)).status_code
                    except httpx.TransportError:
                        return None

                async def healthy() -> bool:
                    return await status("/healthz") == 200

                async def is_ready() -> bool:
                    return await status("/readyz") == 200

                await wait_until(healthy, timeout=30, message="/healthz 200")
                await wait_until(lambda: len(_retries(log)) >= 2, timeout=15, message="2 retries")
                assert proc.poll() is None, log.read_text()
                assert (await http.get("/healthz")).status_code == 200
                ready = await http.get("/readyz")
                assert ready.status_code == 503
                assert int(ready.headers["Retry-After"]) >= 1
                refused = await http.post("/v1/jobs", json={"type": "t"})
                assert refused.status_code == 503
                assert refused.json()["code"] == "store_unavailable"
                assert "Retry-After" in refused.headers

                await proxy.start()  # the database comes up
                await wait_until(is_ready, timeout=20, message="/readyz 200")
                assert (await http.post("/v1/jobs", json={"type": "t"})).status_code == 201
            assert proc.poll() is None, log.read_text()
        # SIGTERM: a graceful stop (uvicorn re-raises the signal it handled once it is done).
        assert proc.returncode in (0, -signal.SIGTERM), log.read_text()
        _assert_waited(log)
        assert any(e.get("event") == "store reachable" for e in _lines(log))
    finally:
        await proxy.stop()


async def test_worker_and_scheduler_started_while_store_is_down_wait_then_run(
    pg_url: str, tmp_path: Path
) -> None:
    await _migrate(pg_url)
    target = urlsplit(pg_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    proxy.reserve()
    url = _with_password(via_proxy(pg_url, proxy.port))
    app = App(settings=fast_settings(pg_url))
    await app.open()
    worker_log, scheduler_log = tmp_path / "worker.log", tmp_path / "scheduler.log"
    try:
        async with (
            _conveyor(worker_log, url, "worker", "tests.e2e.apps:app") as worker,
            _conveyor(scheduler_log, url, "scheduler") as scheduler,
        ):
            for log in (worker_log, scheduler_log):
                await wait_until(
                    lambda log=log: len(_retries(log)) >= 2, timeout=20, message=f"{log.name} waits"
                )
            assert worker.poll() is None, worker_log.read_text()
            assert scheduler.poll() is None, scheduler_log.read_text()
            job = await app.enqueue("proc.slow", {"marker_dir": str(tmp_path), "seconds": 0})

            await proxy.start()  # the database comes up

            async def completed() -> bool:
                return (await app.store.get_job(job.id)).status == JobStatus.COMPLETED

            await wait_until(completed, timeout=30, message="the job to run")
            await wait_until(
                lambda: any(e.get("event") == "scheduler started" for e in _lines(scheduler_log)),
                timeout=20,
                message="the scheduler to start",
            )
            assert worker.poll() is None, worker_log.read_text()
            assert scheduler.poll() is None, scheduler_log.read_text()
        # Stopped by SIGTERM, gracefully.
        assert (worker.returncode, scheduler.returncode) == (0, 0)
        for log in (worker_log, scheduler_log):
            _assert_waited(log)
    finally:
        await app.close()
        await proxy.stop()


class _FlakyRegistration:
    """A store whose register_worker fails `failures` times (the store is not up yet)."""

    def __init__(self, store: Any, failures: int) -> None:
        self._store = store
        self.failures = failures
        self.calls = 0

    async def register_worker(self, info: Any) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise StoreUnavailable("cannot connect to PostgreSQL: [Errno 111] Connection refused")
        await self._store.register_worker(info)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


async def test_worker_retries_registration_until_the_store_answers(app: App) -> None:
    @app.job("flaky.echo")
    async def echo(payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    store = _FlakyRegistration(app.store, failures=2)
    w = Worker(store, app.registry, settings=app.settings)  # type: ignore[arg-type]
    with capture_logs() as logs:
        task = asyncio.create_task(w.run())
        try:
            await wait_until(lambda: w.registered, timeout=10, message="registration")
            job = await app.enqueue("flaky.echo", {"x": 1})

            async def completed() -> bool:
                return (await app.store.get_job(job.id)).status == JobStatus.COMPLETED

            await wait_until(completed, timeout=10, message="the job to run")
        finally:
            w.stop()
            await asyncio.wait_for(task, 10)
    assert store.calls == 3
    retries = [e for e in logs if e["event"] == "cannot register the worker; retrying"]
    assert [e["attempt"] for e in retries] == [1, 2]
    assert all(0 < e["retry_in"] <= 10 for e in retries)


async def test_worker_stopped_while_waiting_to_register_ends(app: App) -> None:
    store = _FlakyRegistration(app.store, failures=1_000)
    w = Worker(store, app.registry, settings=app.settings)  # type: ignore[arg-type]
    task = asyncio.create_task(w.run())
    try:
        await wait_until(lambda: store.calls >= 1, timeout=10, message="a first attempt")
    finally:
        w.stop()
        await asyncio.wait_for(task, 5)
    assert not w.registered
    assert w.liveness() == "worker has stopped"
