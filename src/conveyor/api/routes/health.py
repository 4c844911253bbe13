"""Liveness and readiness probes (no auth: orchestrators call them)."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, Depends
from starlette.responses import Response

from conveyor.api.auth import public
from conveyor.api.deps import Service
from conveyor.api.docs import problems
from conveyor.api.errors import problem
from conveyor.api.serialize import JSONBytes
from conveyor.wire import Health

router = APIRouter(tags=["health"], dependencies=[Depends(public)])
log = structlog.get_logger("conveyor.api")


@router.get("/healthz", response_model=Health, summary="The process is alive")
@router.get("/livez", response_model=Health, summary="The process is alive (as on workers)")
async def healthz() -> Any:
    return JSONBytes({"status": "ok"})


@router.get(
    "/readyz",
    response_model=Health,
    summary="The store answers and its schema is migrated",
    responses=problems(503),
)
async def readyz(svc: Service) -> Response:
    try:
        await svc.ping()
    except Exception as exc:  # any failure means "do not route traffic here"
        log.warning("not ready", error=f"{type(exc).__name__}: {exc}")
        return problem(
            503,
            "not_ready",
            "Not ready",
            f"store not usable ({type(exc).__name__}); is it reachable and migrated "
            "(conveyor migrate)?",
        )
    # A transport's outage (Redis) costs latency, not service: ready, and saying so.
    degraded = await svc.transport.problem()
    if degraded is not None:
        return JSONBytes({"status": "degraded", "detail": degraded})
    return JSONBytes({"status": "ok"})
