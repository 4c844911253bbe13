"""A real Conveyor on loopback ports: `conveyor server`, `conveyor worker --metrics-port` and
`conveyor scheduler --metrics-port` as subprocesses sharing one SQLite file, as they would be
deployed (one process per scrape target)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.helpers import child_pythonpath, wait_until

REPO = Path(__file__).resolve().parents[2]
APP = "tests.observability.apps:app"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def base_env(store_url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "CONVEYOR_STORE_URL": store_url,
        "CONVEYOR_HEARTBEAT_INTERVAL": "0.5",
        "CONVEYOR_MAINTENANCE_INTERVAL": "0.1",
        "CONVEYOR_POLL_INTERVAL": "0.1",
        "CONVEYOR_SCHEDULER_TICK": "0.2",
        "CONVEYOR_RETRY_BASE": "0.2",
        "CONVEYOR_RETRY_CAP": "1",
        "CONVEYOR_METRICS_REFRESH_INTERVAL": "0.5",
        "CONVEYOR_AUTH_ENABLED": "false",
        "CONVEYOR_RATE_LIMIT_ENABLED": "false",
        "CONVEYOR_GRPC_PORT": "0",  # HTTP only: no fixed port shared between test runs
        # Breakers watch and report (conveyor_circuit_state) but never open: the tests count
        # exact outcomes, which deferred jobs would shift.
        "CONVEYOR_BREAKER_MIN_CALLS": "1000000",
        "PYTHONPATH": child_pythonpath(),
    }
    env.update(extra or {})
    return env


@dataclass
class Stack:
    tmp: Path
    store_url: str
    api_port: int = field(default_factory=free_port)
    worker_port: int = field(default_factory=free_port)
    scheduler_port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def worker_url(self) -> str:
        return f"http://127.0.0.1:{self.worker_port}"

    @property
    def scheduler_url(self) -> str:
        return f"http://127.0.0.1:{self.scheduler_port}"

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def spawn(self, name: str, *args: str, env: Mapping[str, str] | None = None) -> None:
        out = (self.tmp / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "conveyor.cli", *args],
            env=base_env(self.store_url, env),
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    async def wait_ready(self, timeout: float = 30.0) -> None:
        async with httpx.AsyncClient(timeout=2) as http:
            for name, url in (
                ("server", f"{self.api}/readyz"),
                ("worker", f"{self.worker_url}/readyz"),
                ("scheduler", f"{self.scheduler_url}/readyz"),
            ):
                if name not in self.procs:
                    continue

                async def ready(name: str = name, url: str = url) -> bool:
                    proc = self.procs[name]
                    if proc.poll() is not None:
                        raise AssertionError(f"{name} exited:\n{self.log(name)}")
                    try:
                        return (await http.get(url)).status_code == 200
                    except httpx.HTTPError:
                        return False

                await wait_until(ready, timeout=timeout, interval=0.1, message=f"{name} ready")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def migrate(store_url: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "conveyor.cli", "migrate"],
        env=base_env(store_url),
        cwd=REPO,
        check=True,
        capture_output=True,
    )


@contextmanager
def running_stack(
    tmp: Path, *, worker_args: tuple[str, ...] = (), env: Mapping[str, str] | None = None
) -> Iterator[Stack]:
    """Server, worker and scheduler on one migrated SQLite file; stopped on exit."""
    store_url = f"sqlite:///{tmp}/conveyor.db"
    migrate(store_url)
    stack = Stack(tmp, store_url)
    try:
        stack.spawn("server", "server", "--port", str(stack.api_port), env=env)
        stack.spawn(
            "worker",
            "worker",
            APP,
            "--metrics-port",
            str(stack.worker_port),
            *worker_args,
            env=env,
        )
        stack.spawn("scheduler", "scheduler", "--metrics-port", str(stack.scheduler_port), env=env)
        yield stack
    finally:
        stack.stop()
