"""/v1/workers: who is running jobs, and when each was last heard from."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter

from conveyor.api.deps import ReadWorkers, Service
from conveyor.api.serialize import JSONBytes, worker_out
from conveyor.wire import WorkerList

router = APIRouter(tags=["workers"])


@router.get("/v1/workers", response_model=WorkerList, summary="Registered workers")
async def list_workers(svc: Service, _: ReadWorkers) -> Any:
    now = datetime.now(UTC)
    return JSONBytes({"workers": [worker_out(w, now) for w in await svc.workers()]})
