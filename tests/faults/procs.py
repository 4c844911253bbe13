"""Real `conveyor` processes for the fault tests: started with `sys.executable -m conveyor`,
logging JSON lines to a file each, optionally inside a network namespace; killed, signalled
and reaped by pid, with every exit written into the test's History."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from tests.faults.history import History

REPO = Path(__file__).resolve().parents[2]

# Short leases and intervals, so a lost worker's jobs come back within seconds.
FAST_ENV = {
    "CONVEYOR_LOG_FORMAT": "json",
    "CONVEYOR_LEASE_SECONDS": "2",
    "CONVEYOR_HEARTBEAT_INTERVAL": "0.3",
    "CONVEYOR_POLL_INTERVAL": "0.1",
    "CONVEYOR_MAINTENANCE_INTERVAL": "0.2",
    "CONVEYOR_SCHEDULER_TICK": "0.2",
    "CONVEYOR_AUTH_ENABLED": "false",
    "CONVEYOR_RATE_LIMIT_ENABLED": "false",
    "CONVEYOR_GRPC_PORT": "0",
}


class Procs:
    """Every process a test started; `close()` ends the ones still running."""

    def __init__(self, folder: Path, history: History | None = None) -> None:
        self.folder = folder
        self.history = history
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: dict[int, Path] = {}

    def start(
        self, name: str, store_url: str, *args: str, netns: str | None = None, **env: str
    ) -> subprocess.Popen[bytes]:
        log = self.folder / f"{name}-{len(self.procs)}.log"
        full_env = {
            **os.environ,
            **FAST_ENV,
            "CONVEYOR_STORE_URL": store_url,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
            ),
            **env,
        }
        argv = [sys.executable, "-m", "conveyor.cli", *args]
        if netns is not None:
            argv = ["ip", "netns", "exec", netns, *argv]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv, env=full_env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT
            )
        self.procs.append(proc)
        self.logs[proc.pid] = log
        return proc

    def worker(self, store_url: str, *args: str, **kw: Any) -> subprocess.Popen[bytes]:
        return self.start("worker", store_url, "worker", "tests.faults.apps:app", *args, **kw)

    def kill(self, proc: subprocess.Popen[bytes]) -> float:
        """SIGKILL: a fault; its runs end now."""
        at = time.time()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if self.history is not None:
            self.history.fault(proc.pid, at)
        self.reaped(proc)
        return at

    def reaped(self, proc: subprocess.Popen[bytes]) -> None:
        """Note the exit of a process that has ended (its unfinished runs end with it)."""
        if self.history is not None and proc.poll() is not None:
            self.history.exited(proc.pid)

    def lines(self, proc: subprocess.Popen[bytes]) -> list[dict[str, Any]]:
        out = []
        for raw in self.logs[proc.pid].read_bytes().splitlines():
            with contextlib.suppress(orjson.JSONDecodeError):
                line = orjson.loads(raw)
                if isinstance(line, dict):
                    out.append(line)
        return out

    def text(self, proc: subprocess.Popen[bytes]) -> str:
        return self.logs[proc.pid].read_text(errors="replace")[-5000:]

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
            self.reaped(p)
