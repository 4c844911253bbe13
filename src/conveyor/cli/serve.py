"""`conveyor server` with gRPC on: HTTP (uvicorn) and gRPC in one process and one event loop,
sharing one store pool, one JobService, one AuthService and one rate limiter.

First SIGTERM/SIGINT: both stop taking calls and finish the ones in flight (gRPC long-polls
included, within a grace period); a second one stops at once.
"""

from __future__ import annotations

import asyncio
import signal

import structlog
import uvicorn

from conveyor.api import create_app
from conveyor.cli.common import EmbeddedServer, http_options
from conveyor.config import Settings
from conveyor.grpc.server import GrpcServer, grpc_auth
from conveyor.service.jobs import JobService
from conveyor.service.startup import connect_soon, stop_connecting
from conveyor.store import open_store
from conveyor.transport.relay import relaying

STOP_GRACE = 5.0

log = structlog.get_logger("conveyor.cli")


async def serve_http_and_grpc(
    settings: Settings, host: str, port: int, grpc_host: str, access_log: bool
) -> None:
    store = open_store(settings.store_url, publish_events=settings.publishes_events)
    service = JobService(store, settings)
    auth, limiter = grpc_auth(store, settings)
    api = create_app(settings, service=service)
    # Serve even while the store does not answer yet (/readyz and store calls: 503); the
    # connection is retried in the background.
    connecting = await connect_soon(store.connect, store_url=settings.store_url)
    try:
        http = EmbeddedServer(
            uvicorn.Config(
                api,
                host=host,
                port=port,
                lifespan="on",
                **http_options(settings, access_log=access_log),
            )
        )
        stopping = asyncio.Event()
        grace = {"seconds": STOP_GRACE}
        signals = {"n": 0}

        def on_signal() -> None:
            signals["n"] += 1
            if signals["n"] > 1:
                http.force_exit = True
                grace["seconds"] = 0.0
            http.should_exit = True
            stopping.set()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)

        async def grpc_lifetime() -> None:
            # Start once HTTP has (its lifespan built the AuthService and rate limiter), and use
            # those very objects: one API-token cache and one rate budget per principal for
            # both doors, even without Redis.
            while not http.started:
                if stopping.is_set():
                    return
                await asyncio.sleep(0.02)
            grpc_server = GrpcServer(
                service,
                auth=getattr(api.state, "auth", auth),
                limiter=getattr(api.state, "limiter", limiter),
                host=grpc_host,
                port=settings.grpc_port,
            )
            await grpc_server.start()
            await stopping.wait()
            await grpc_server.stop(grace["seconds"])

        async def http_lifetime() -> None:
            try:
                await http.serve()
            finally:
                stopping.set()  # HTTP failed to start or stopped: take gRPC down with it

        async with relaying(store, settings):  # one leads among all processes that run one
            await asyncio.gather(http_lifetime(), grpc_lifetime())
    finally:
        await stop_connecting(connecting)
        await service.close()
        await store.close()


async def start_dev_grpc(service: JobService, host: str) -> GrpcServer | None:
    """`conveyor dev`'s gRPC door: the services `conveyor server` serves (platform C's
    taskqueue.TaskQueueService among them, with reflection) on CONVEYOR_GRPC_PORT, over dev's
    own JobService; its worker does the housekeeping. None when the port is 0, or taken (a
    development box often runs something on 50051: dev serves HTTP regardless)."""
    settings = service.settings
    if not settings.grpc_port:
        return None
    auth, limiter = grpc_auth(service.store, settings)
    server = GrpcServer(
        service, auth=auth, limiter=limiter, host=host, port=settings.grpc_port, maintenance=False
    )
    try:
        await server.start()
    except (OSError, RuntimeError) as exc:
        log.warning("gRPC not served", port=settings.grpc_port, error=str(exc))
        return None
    return server
