"""The web dashboard: its static files (served at / and /ui/, no build step) and the two read
endpoints that save it several round trips per refresh.

The page itself is public (it holds no data); everything it shows comes from /v1 with the
signed-in user's token, so the API's auth and roles apply to the dashboard unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

from conveyor.api.auth import public
from conveyor.api.deps import CurrentSettings, ReadQueues, ReadSchedules, Service
from conveyor.api.serialize import JSONBytes, queue_out, schedule_out
from conveyor.service.throughput import BUCKET_SECONDS

STATIC = Path(__file__).resolve().parent.parent / "static"
UPCOMING = 5

router = APIRouter(prefix="/v1/dashboard", tags=["dashboard"])
pages = APIRouter(include_in_schema=False, dependencies=[Depends(public)])


@pages.get("/")
async def index() -> Response:
    # no-cache: a deploy must not leave operators on a stale page that calls old endpoints
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/overview", summary="Queues, live workers and last-hour throughput, in one call")
async def overview(svc: Service, settings: CurrentSettings, _: ReadQueues) -> Any:
    queues = await svc.queues()
    cutoff = datetime.now(UTC) - timedelta(seconds=settings.metrics_worker_alive_seconds)
    alive = sum(1 for w in await svc.workers() if w.last_seen_at >= cutoff)
    return JSONBytes(
        {
            "queues": [queue_out(q) for q in queues],
            "workers_alive": alive,
            # "redis": the queue rows carry the ids in Redis (null while it does not answer)
            "transport": svc.transport.name,
            "history": {
                "bucket_seconds": BUCKET_SECONDS,
                "points": [
                    {"at": p.at, "completed": p.completed, "dead": p.dead}
                    for p in await svc.throughput()
                ],
            },
        }
    )


@router.get("/schedules", summary="Schedules with their next fire times")
async def schedules(svc: Service, _: ReadSchedules) -> Any:
    out = []
    for s in await svc.list_schedules():
        item = schedule_out(s)
        item["upcoming"] = svc.upcoming(s, UPCOMING) if s.enabled else []
        out.append(item)
    return JSONBytes({"schedules": out})


def install(app: FastAPI) -> None:
    app.include_router(pages)
    app.include_router(router)
    app.mount("/ui", StaticFiles(directory=STATIC), name="ui")
