"""The server's side of observability: GET /metrics, per-route HTTP metrics (recorded by the
front gate), and the background refresh of store-backed gauges (queue depth, workers alive).

/metrics, /healthz and /readyz stay public by default: scrapers and orchestrators carry no user
credentials. Set CONVEYOR_METRICS_TOKEN to require `Authorization: Bearer <token>` on /metrics
(Prometheus: `authorization: {credentials: ...}` in the scrape config).
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.responses import Response

from conveyor import metrics
from conveyor.api.auth import public
from conveyor.api.errors import problem
from conveyor.config import Settings

router = APIRouter(include_in_schema=False)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"  # 404s and anything no route claimed: one series, not one per path


@router.get("/metrics", dependencies=[Depends(public)])  # its own scrape token, see above
async def metrics_endpoint(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    token = settings.metrics_token
    if token is not None:
        expected = f"Bearer {token.get_secret_value()}".encode()
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return problem(
                401,
                "unauthorized",
                "Unauthorized",
                "GET /metrics needs the scrape token (Authorization: Bearer …)",
                headers={"WWW-Authenticate": "Bearer"},
            )
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)


class RequestMetrics:
    """Counts requests and observes latency by method, route template and status.

    The label is the template of the matched route (`/v1/jobs/{job_id}`), never the raw path:
    raw paths carry ids and would make one series per job. Label children are cached, since
    this runs for every request."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, template: str | None, status: int, seconds: float) -> None:
        key = (method if method in _METHODS else "OTHER", template or UNMATCHED, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                metrics.HTTP_REQUESTS.labels(key[0], key[1], str(status)),
                metrics.HTTP_DURATION.labels(key[0], key[1]),
            )
        children[0].inc()
        children[1].observe(seconds)


@asynccontextmanager
async def store_stats(source: metrics.StatsSource, settings: Settings) -> AsyncIterator[None]:
    """Refresh queue depth and live workers in the background while the app serves."""
    stop = await metrics.start_store_stats(
        source,
        interval=settings.metrics_refresh_interval,
        alive_within=settings.metrics_worker_alive_seconds,
    )
    try:
        yield
    finally:
        await stop()


def install(app: FastAPI) -> None:
    """Add /metrics (the front gate records the HTTP metrics)."""
    app.include_router(router)
