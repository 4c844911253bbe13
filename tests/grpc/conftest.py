"""A real grpc.aio server on a free loopback port, over the test store (both backends), and
clients for it: stubs, and remote workers (the real executor over RemoteWorkerStore)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest_asyncio
from grpc import aio
from pydantic import SecretStr

from conveyor.config import Settings
from conveyor.domain.records import Role
from conveyor.grpc.gen.conveyor.v1 import jobs_pb2_grpc, worker_pb2_grpc
from conveyor.grpc.remote import RemoteWorkerStore
from conveyor.grpc.server import GrpcServer, grpc_auth
from conveyor.security.tokens import TokenCodec, TokenType
from conveyor.service.jobs import JobService
from conveyor.store import Store
from conveyor.worker import Registry, Worker
from tests.security.keys import TEST_SECRET


def grpc_settings(url: str, **kw: Any) -> Settings:
    base: dict[str, Any] = dict(
        store_url=url,
        poll_interval=0.05,
        heartbeat_interval=0.1,
        maintenance_interval=0.05,
        lease_seconds=5.0,
        shutdown_grace=5.0,
        retry_base=0.1,
        api_wait_interval=0.02,
        grpc_fetch_wait=0.5,
        auth_enabled=False,
        jwt_secret=SecretStr(TEST_SECRET),
        api_token_cache_seconds=0,
        rate_limit_enabled=False,
    )
    base.update(kw)
    return Settings(**base)


@dataclass
class Rig:
    store: Store
    service: JobService
    server: GrpcServer
    settings: Settings
    port: int
    channels: list[aio.Channel] = field(default_factory=list)
    remotes: list[RemoteWorkerStore] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    def token(self, role: Role, tenant: str | None = None, name: str | None = None) -> str:
        token, _ = TokenCodec.from_settings(self.settings).issue(
            sub=name or f"{role.value}-1", role=role, tenant=tenant, typ=TokenType.ACCESS, ttl=300
        )
        return token

    def channel(self) -> aio.Channel:
        ch = aio.insecure_channel(f"127.0.0.1:{self.port}")
        self.channels.append(ch)
        return ch

    def jobs(self) -> jobs_pb2_grpc.JobServiceAsyncStub:
        return jobs_pb2_grpc.JobServiceStub(self.channel())

    def workers(self) -> worker_pb2_grpc.WorkerServiceAsyncStub:
        return worker_pb2_grpc.WorkerServiceStub(self.channel())

    async def remote(self, token: str | None = None, **kw: Any) -> RemoteWorkerStore:
        r = RemoteWorkerStore(self.url, token, wait_seconds=self.settings.grpc_fetch_wait, **kw)
        await r.connect()
        self.remotes.append(r)
        return r

    async def remote_worker(
        self, registry: Registry, token: str | None = None, **kw: Any
    ) -> Worker:
        return Worker(
            await self.remote(token),
            registry,
            settings=self.settings,
            maintenance=False,
            **kw,
        )


RigFactory = Callable[..., Awaitable[Rig]]


@pytest_asyncio.fixture
async def make_rig(store: Store, store_url: str) -> AsyncIterator[RigFactory]:
    rigs: list[Rig] = []

    async def make(**kw: Any) -> Rig:
        settings = grpc_settings(store_url, **kw)
        service = JobService(store, settings)
        auth, limiter = grpc_auth(store, settings)
        server = GrpcServer(service, auth=auth, limiter=limiter, port=0)
        port = await server.start()
        rig = Rig(store, service, server, settings, port)
        rigs.append(rig)
        return rig

    try:
        yield make
    finally:
        for rig in rigs:
            for r in rig.remotes:
                await r.close()
            for ch in rig.channels:
                await ch.close()
            await rig.server.stop(0)


@pytest_asyncio.fixture
async def rig(make_rig: RigFactory) -> Rig:
    return await make_rig()


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[Worker]:
    """Run a worker for the block; stop it (gracefully) and wait for it afterwards."""
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 15)
