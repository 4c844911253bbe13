"""The gRPC server: JobService, WorkerService, platform C's taskqueue.TaskQueueService,
grpc.health.v1 and server reflection on one grpc.aio server, sharing the caller's event loop
(and so its JobService and store) with the HTTP API in `conveyor server`.

It also runs the light housekeeping loop (promote due jobs, reap expired leases) that direct
workers run for themselves: remote workers do not, so without it a deployment of only remote
workers would never recover a crashed worker's jobs. Both steps are safe to run from every
server replica at once.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from conveyor.config import Settings
from conveyor.grpc.auth import Guard
from conveyor.grpc.gen import taskqueue_pb2, taskqueue_pb2_grpc
from conveyor.grpc.gen.conveyor.v1 import jobs_pb2, jobs_pb2_grpc, worker_pb2, worker_pb2_grpc
from conveyor.grpc.jobs import JobServicer
from conveyor.grpc.taskqueue import TaskQueueServicer
from conveyor.grpc.workers import WorkerServicer
from conveyor.security.ratelimit import RateLimiter
from conveyor.service.auth import AuthService
from conveyor.service.jobs import JobService
from conveyor.service.workers import WorkerGateway
from conveyor.store import Store

log = structlog.get_logger("conveyor.grpc")

SERVICE_NAMES = (
    jobs_pb2.DESCRIPTOR.services_by_name["JobService"].full_name,
    worker_pb2.DESCRIPTOR.services_by_name["WorkerService"].full_name,
    taskqueue_pb2.DESCRIPTOR.services_by_name["TaskQueueService"].full_name,
)


def grpc_auth(store: Store, settings: Settings) -> tuple[AuthService | None, RateLimiter | None]:
    """The same authentication and limits as the HTTP API; raises ConfigError (refuse to
    start) when auth is on without usable key material."""
    limiter = RateLimiter(settings) if settings.rate_limit_enabled else None
    if not settings.auth_enabled:
        return None, limiter
    auth = AuthService(store, settings, limiter=limiter)
    auth.check_config()
    return auth, limiter


class GrpcServer:
    """`auth` None serves without authentication (auth disabled by configuration)."""

    def __init__(
        self,
        service: JobService,
        *,
        auth: AuthService | None,
        limiter: RateLimiter | None = None,
        host: str = "127.0.0.1",
        port: int = 50051,
        maintenance: bool = True,
    ) -> None:
        self.service = service
        self.settings = s = service.settings
        self.address = f"{host}:{port}"
        self.maintenance = maintenance
        self.port: int | None = None
        limit = s.grpc_max_message_bytes
        self._server = aio.server(
            options=[
                # Oversized requests are refused by gRPC itself (RESOURCE_EXHAUSTED) before any
                # handler runs; payloads within it still meet the service's max_payload_bytes.
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", -1),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ]
        )
        guard = Guard(auth, limiter)
        jobs_pb2_grpc.add_JobServiceServicer_to_server(JobServicer(service, guard), self._server)
        self.gateway = WorkerGateway(service.store, s)
        worker_pb2_grpc.add_WorkerServiceServicer_to_server(
            WorkerServicer(self.gateway, guard), self._server
        )
        taskqueue_pb2_grpc.add_TaskQueueServiceServicer_to_server(
            TaskQueueServicer(service, self.gateway, guard), self._server
        )
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server
        )
        self._maintenance: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Bind and serve; returns the bound port (useful with port 0)."""
        port = self._server.add_insecure_port(self.address)
        if port == 0:
            raise OSError(f"gRPC server could not bind {self.address}")
        self.port = port
        await self._server.start()
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if self.maintenance:
            self._maintenance = asyncio.create_task(self._housekeeping(), name="grpc-maintenance")
        log.info("gRPC server started", address=self.address, port=port)
        return port

    async def stop(self, grace: float | None = 5.0) -> None:
        """Refuse new calls, give running ones `grace` seconds (long-polls end with them)."""
        await self.health.enter_graceful_shutdown()
        self.gateway.closing = True
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        await self._server.stop(grace)

    async def wait(self) -> None:
        await self._server.wait_for_termination()

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(self.settings.maintenance_interval)
            try:
                await self.service.maintain()
            except Exception:
                log.exception("maintenance failed")
