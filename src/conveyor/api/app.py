"""The FastAPI application: wiring only (store lifecycle, error mapping, front gate, routers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import Receive, Scope, Send

from conveyor import metrics
from conveyor.api import compat, errors, observability
from conveyor.api.auth import document_security
from conveyor.api.deps import reject_unknown_query
from conveyor.api.docs import install_docs
from conveyor.api.gate import Gate
from conveyor.api.routes import auth, dashboard, health, jobs, queues, schedules, workers
from conveyor.config import Settings
from conveyor.runtime.heap import freeze_startup_heap
from conveyor.security.ratelimit import RateLimiter
from conveyor.security.tokens import TokenCodec
from conveyor.service.auth import AuthService
from conveyor.service.jobs import JobService
from conveyor.service.startup import connect_soon, stop_connecting
from conveyor.store import Store, open_store
from conveyor.transport.relay import relaying
from conveyor.wire import FieldError, Problem


def _version() -> str:
    try:
        return version("conveyor")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0"


class ConveyorAPI(FastAPI):
    """FastAPI with the front gate (conveyor.api.gate) before its whole middleware stack, so a
    request the gate answers itself (a submit, a refused credential) does not pass through
    FastAPI's own layers first; every other request continues into the full stack."""

    gate: Gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["app"] = self
            await self.gate(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def _stack(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    store: Store | None = None,
    *,
    service: JobService | None = None,
) -> FastAPI:
    """Build the API. With no `store` (or `service`) the app opens and closes its own store in
    its lifespan; a store or service passed in belongs to the caller (e.g. `conveyor dev`,
    which shares one with its worker), which opens and closes it.

    An owned store that does not answer at start-up is retried in the background
    (`service.startup.connect_soon`) while the app serves: /healthz 200, /readyz 503.

    Migrations are never run here: a server fleet must not race schema changes at start-up;
    /readyz reports an unmigrated store instead.
    """
    settings = settings or (service.settings if service else Settings())
    # Fail here, at start-up, not at the first request: auth on needs a usable signing key,
    # and rate limits must parse. Never a default key.
    codec = TokenCodec.from_settings(settings) if settings.auth_enabled else None
    limiter = RateLimiter(settings)
    metrics.use_aliases(settings.compat_metric_aliases)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned: Store | None = None
        connecting: asyncio.Task[bool] | None = None
        svc = service
        if svc is None:
            if store is None:
                owned = open_store(settings.store_url, publish_events=settings.publishes_events)
                # A store that does not answer yet is no reason to exit: serve (/readyz and
                # store calls answer 503) while the connection is retried in the background.
                connecting = await connect_soon(owned.connect, store_url=settings.store_url)
            svc = JobService(store or owned, settings)  # type: ignore[arg-type]
        # Wiring, not a use case: the auth service and the metrics refresh share the service's
        # store (routes reach it only through the service).
        app.state.service = svc
        app.state.settings = settings
        app.state.limiter = limiter if settings.rate_limit_enabled else None
        app.state.auth = (
            None
            if codec is None
            else AuthService(svc.store, settings, codec=codec, limiter=limiter)
        )
        try:
            # `server` without gRPC: its own relay (one leads among all processes that run one).
            async with (
                observability.store_stats(svc.store, settings),
                relaying(svc.store, settings) if service is None else nullcontext(),
            ):
                freeze_startup_heap()
                yield
        finally:
            await stop_connecting(connecting)
            if service is None:
                await svc.close()  # the service this app built (its transport)
            if owned is not None:
                await owned.close()

    app = ConveyorAPI(
        title="Conveyor",
        version=_version(),
        description="Submit, inspect and steer jobs. Errors are RFC 9457 problem+json.",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url=None,  # served by conveyor.api.docs, without a CDN
        redoc_url=None,
        dependencies=[Depends(reject_unknown_query)],
        # Conveyor's metrics are Prometheus (conveyor.metrics); FastAPI's own OpenTelemetry
        # hooks would only re-check for global providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    errors.install(app)
    app.state.auth_required = settings.auth_enabled
    app.gate = Gate(app._stack, max_bytes=settings.api_max_body_bytes, direct=jobs.DIRECT)
    for module in (jobs, queues, schedules, workers, health, auth):
        app.include_router(module.router)
    dashboard.install(app)
    install_docs(app)
    compat.install(app, settings)
    observability.install(app)
    _document_problems(app)
    return app


def _document_problems(app: FastAPI) -> None:
    """Add the Problem schema, which responses reference by $ref, to the generated spec."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        ref = "#/components/schemas/{model}"
        schemas["FieldError"] = FieldError.model_json_schema(ref_template=ref)
        problem = Problem.model_json_schema(ref_template=ref)
        problem.pop("$defs", None)
        schemas["Problem"] = problem
        document_security(spec, app)
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
