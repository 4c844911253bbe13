"""The small HTTP server a worker or scheduler process runs beside its work (`--metrics-port`):
/metrics for Prometheus, /livez and /readyz for Kubernetes probes.

It runs on the process's own event loop on purpose: if a handler blocks the loop, the probes
stop answering and the liveness probe restarts the pod, which is the point. /livez also asks
the worker whether its fetch loop is still coming round (a hung store call would otherwise
leave a live-looking worker that never claims again). /readyz is about dependencies: the store
answers and the worker is registered; failing it takes the pod out of rotation without a
restart, which is right for an outage of the database.

Like the API's /metrics, /healthz and /readyz, these need no credentials: bind them to an
interface only the scraper and the kubelet reach (the default is loopback; use
`--metrics-host 0.0.0.0` in a pod).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conveyor import metrics

Check = Callable[[], Awaitable[str | None]]  # None = fine, else the reason it is not

PING_TIMEOUT = 2.0


def _json(status: int, body: dict[str, object]) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def probe_app(live: Check, ready: Check, degraded: Check | None = None) -> Starlette:
    """`degraded`: a dependency whose outage costs latency, not service (the Redis
    transport): /readyz stays 200 and says "degraded" with the reason."""

    async def metrics_endpoint(_: Request) -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    async def run(check: Check) -> Response:
        try:
            problem = await check()
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if problem is None:
            return _json(200, {"status": "ok"})
        return _json(503, {"status": "fail", "detail": problem})

    async def livez(_: Request) -> Response:
        return await run(live)

    async def readyz(_: Request) -> Response:
        answer = await run(ready)
        if degraded is None or answer.status_code != 200:
            return answer
        try:
            problem = await degraded()
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if problem is None:
            return answer
        return _json(200, {"status": "degraded", "detail": problem})

    return Starlette(
        routes=[
            Route("/metrics", metrics_endpoint),
            Route("/livez", livez),
            Route("/healthz", livez),
            Route("/readyz", readyz),
        ]
    )


class _QuietServer(uvicorn.Server):
    """Leaves signals to the host command, which stops this server with the rest."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ProbeServer:
    def __init__(
        self, host: str, port: int, live: Check, ready: Check, degraded: Check | None = None
    ) -> None:
        self.server = _QuietServer(
            uvicorn.Config(
                probe_app(live, ready, degraded),
                host=host,
                port=port,
                access_log=False,
                log_config=None,
                lifespan="off",
            )
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve(), name="conveyor-probes")
        while not self.server.started:
            if self._task.done():
                await self._task  # re-raises a bind failure
                raise RuntimeError("probe server exited before it started")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task


async def store_reachable(ping: Callable[[], Awaitable[None]]) -> str | None:
    try:
        await asyncio.wait_for(ping(), PING_TIMEOUT)
    except Exception as exc:
        return f"store unreachable: {type(exc).__name__}: {exc}"
    return None
