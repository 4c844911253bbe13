"""Issue 18 with real `conveyor` processes: `conveyor dev` runs a job on any queue and answers a
job type it has no handler for as `conveyor server` does (accepted, then dead-lettered);
`conveyor worker` keeps its App's Settings under the environment and flags, and stops with
one line on a store without its schema."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conveyor import App
from conveyor.domain.records import WorkerInfo
from tests.helpers import wait_until

REPO = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    # This checkout's sources first (not an installed copy), and the repository for tests.*.
    path = os.pathsep.join([str(REPO / "src"), str(REPO)])
    return {**os.environ, "PYTHONPATH": path, "CONVEYOR_LOG_FORMAT": "json", **extra}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[str]:
    """A `conveyor dev` process on a fresh SQLite file, auth off; yields its base URL."""
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "conveyor.cli",
            "dev",
            "--port",
            str(port),
            "--store-url",
            f"sqlite:///{tmp_path}/data/conveyor.db",
        ],
        env=_env(CONVEYOR_AUTH_ENABLED="false", CONVEYOR_POLL_INTERVAL="0.1"),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "conveyor dev did not become ready"
            time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


async def _status(client: httpx.AsyncClient, job_id: str, *wanted: str) -> dict[str, object]:
    async def reached() -> dict[str, object] | None:
        body: dict[str, object] = (await client.get(f"/v1/jobs/{job_id}")).json()
        return body if body["status"] in wanted else None

    result: dict[str, object] = await wait_until(reached, timeout=20, message=f"job {wanted}")
    return result


async def test_dev_runs_any_queue_and_treats_unknown_types_as_the_server_does(dev: str) -> None:
    async with httpx.AsyncClient(base_url=dev) as client:
        # A handler registered on `default`, submitted to another queue: dev consumes it too.
        known = await client.post("/v1/jobs", json={"type": "demo.echo", "queue": "email",
                                                    "payload": {"to": "ada"}})  # fmt: skip
        assert known.status_code == 201, known.text
        done = await _status(client, known.json()["id"], "completed")
        assert done["result"] == {"echo": {"to": "ada"}}

        # The README's example type, no handler in dev: 201 as from `conveyor server`, then
        # dead-lettered with an error that names the known types.
        unknown = await client.post("/v1/jobs", json={"type": "email.send", "queue": "email"})
        assert unknown.status_code == 201, unknown.text
        dead = await _status(client, unknown.json()["id"], "dead")
        assert "unknown job type 'email.send'" in str(dead["last_error"])
        assert "demo.echo" in str(dead["last_error"])

        queues = {q["name"]: q for q in (await client.get("/v1/queues")).json()["queues"]}
        assert queues["email"]["consumers"] >= 1 and not queues["email"]["unconsumed"]
        workers = (await client.get("/v1/workers")).json()["workers"]
        assert [w["queues"] for w in workers] == [["*"]]


def _spawn_worker(url: str, *args: str, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli", "worker", "tests.cli.apps:app", *args],
        env=_env(CONVEYOR_STORE_URL=url, **env),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def _registered(app: App) -> WorkerInfo:
    async def one() -> WorkerInfo | None:
        workers = await app.store.list_workers()
        return workers[0] if workers else None

    info: WorkerInfo = await wait_until(one, timeout=20, message="the worker to register")
    return info


@pytest.mark.parametrize(
    ("env", "args", "concurrency"),
    [({}, (), 7), ({"CONVEYOR_CONCURRENCY": "9"}, ("-c", "11"), 11)],
    ids=["app", "flag-over-env"],  # the environment over the App: test_layered_settings_precedence
)
async def test_worker_settings_flags_over_environment_over_the_app(
    sqlite_url: str, env: dict[str, str], args: tuple[str, ...], concurrency: int
) -> None:
    app = await App(sqlite_url).open(migrate=True)
    proc = _spawn_worker(sqlite_url, *args, **env)
    try:
        info = await _registered(app)
        assert info.concurrency == concurrency
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, proc.stderr.read().decode() if proc.stderr else ""
        await app.close()


def test_worker_on_an_unmigrated_store_stops_with_one_line(pg_url: str) -> None:
    proc = _spawn_worker(pg_url)
    _, err = proc.communicate(timeout=30)
    text = err.decode()
    assert proc.returncode == 1, text
    assert text.count("\n") == 1, text
    assert "missing Conveyor's schema" in text and "conveyor migrate --store-url" in text
