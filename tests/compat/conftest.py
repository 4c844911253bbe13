"""A real Conveyor on loopback ports, as `conveyor server` plus `conveyor worker` run it over the
test store (both backends): uvicorn serving the HTTP API, the gRPC server beside it sharing one
JobService, AuthService and rate limiter, and a worker running `conveyor dev`'s demo app (whose
handlers the documented requests of every platform need). Auth is on, as in production."""

from __future__ import annotations

import asyncio
import functools
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest_asyncio
import uvicorn
from pydantic import SecretStr

from conveyor.api import create_app
from conveyor.cli.common import EmbeddedServer
from conveyor.cli.demo import app as demo
from conveyor.config import Settings
from conveyor.domain.records import Role
from conveyor.grpc.server import GrpcServer
from conveyor.security.tokens import TokenCodec, TokenType
from conveyor.service.jobs import JobService
from conveyor.service.maintenance import run_maintenance
from conveyor.store import Store
from conveyor.worker import Worker
from tests.helpers import wait_until
from tests.security.keys import TEST_SECRET


def compat_settings(url: str, **kw: Any) -> Settings:
    base: dict[str, Any] = dict(
        store_url=url,
        jwt_secret=SecretStr(TEST_SECRET),
        poll_interval=0.05,
        heartbeat_interval=0.1,
        maintenance_interval=0.05,
        retry_base=0.1,
        api_wait_interval=0.02,
        metrics_refresh_interval=0.05,
        api_token_cache_seconds=0,
    )
    base.update(kw)
    return Settings(**base)


@dataclass
class Stack:
    settings: Settings
    service: JobService
    http_url: str
    grpc_target: str

    def token(self, role: Role = Role.ADMIN, tenant: str | None = None) -> str:
        token, _ = TokenCodec.from_settings(self.settings).issue(
            sub=f"{role.value}-1", role=role, tenant=tenant, typ=TokenType.ACCESS, ttl=600
        )
        return token

    def http(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.http_url, headers=headers, timeout=10)


StackFactory = Callable[..., Awaitable[Stack]]


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest_asyncio.fixture
async def make_stack(store: Store, store_url: str) -> AsyncIterator[StackFactory]:
    stops: list[Callable[[], Awaitable[None]]] = []

    async def make(**overrides: Any) -> Stack:
        settings = compat_settings(store_url, **overrides)
        # As `conveyor dev` does: types without a demo handler are refused at submit.
        service = JobService(store, settings, known_types=demo.registry.names)
        api = create_app(settings, service=service)
        sock = _free_socket()
        http = EmbeddedServer(
            uvicorn.Config(api, lifespan="on", log_level="warning", log_config=None)
        )
        serving = asyncio.create_task(http.serve(sockets=[sock]))
        await wait_until(lambda: http.started, timeout=10, message="uvicorn to start")
        grpc_server = GrpcServer(
            service,
            auth=api.state.auth,
            limiter=api.state.limiter,
            port=0,
            maintenance=False,
        )
        grpc_port = await grpc_server.start()
        worker = Worker(
            store,
            demo.registry,
            settings=settings,
            maintenance=functools.partial(run_maintenance, store),
        )
        working = asyncio.create_task(worker.run())

        async def stop() -> None:
            worker.stop()
            await asyncio.wait_for(working, 15)
            await grpc_server.stop(0)
            http.should_exit = True
            await asyncio.wait_for(serving, 15)
            sock.close()

        stops.append(stop)
        host, port = sock.getsockname()
        return Stack(settings, service, f"http://{host}:{port}", f"127.0.0.1:{grpc_port}")

    try:
        yield make
    finally:
        for stop in reversed(stops):
            await stop()


@pytest_asyncio.fixture
async def stack(make_stack: StackFactory) -> Stack:
    return await make_stack()


async def read_until(
    read: Callable[[], Awaitable[dict[str, Any]]], status: str, timeout: float = 15
) -> dict[str, Any]:
    """Re-read through the surface under test until it reports `status`; the last answer."""
    last: dict[str, Any] = {}

    async def reached() -> bool:
        nonlocal last
        last = await read()
        return last.get("status") == status

    try:
        await wait_until(reached, timeout=timeout, message=f"status {status!r}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last answer: {last}") from None
    return last
