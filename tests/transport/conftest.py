"""Redis transport fixtures: a redis-server of the test's own (for faults: kill it, flush it),
and apps on the Redis transport."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from conveyor import App
from tests.conftest import require_services
from tests.e2e.conftest import fast_settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """A throwaway redis-server on a free port, without persistence (a restart forgets all)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        self.proc = subprocess.Popen(
            [*command, "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on {self.port}") from None
                time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: no goodbye to clients, and with no persistence every key is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        require_services("redis-server", "not installed (scripts/services installs it)")
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest_asyncio.fixture
async def redis_app(pg_url: str, redis_server: RedisServer) -> AsyncIterator[App]:
    """An app on PostgreSQL and the Redis transport through `redis_server`. Leases of 30 s:
    these runs count handler calls, and on a loaded host a 5 s lease can expire (and its job
    rightly run again), which is the store's at-least-once, not the transport's doing."""
    app = App(
        settings=fast_settings(
            pg_url,
            transport="redis",
            redis_url=redis_server.url,
            redis_claim_deadline=1.0,
            lease_seconds=30.0,
        )
    )
    await app.open(migrate=True)
    try:
        yield app
    finally:
        await app.close()
