"""`POST /task`, `GET /task/{id}` and `GET /stats`: platform D's routes (its `GET /` is the
dashboard). A task is a /v1 job (the same body fields; `payload` any JSON value), answered in
D's words: 202 `{"status": "queued", "task_id": ...}`, and statuses from
`conveyor.domain.compat.TASK_STATUS`. `GET /task/{id}` is Conveyor's addition, so a task can be
read back on this surface.

`/stats` counts every tenant's jobs, so it needs the queue-reading right (ADMIN), as /v1/queues.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from conveyor.api.compat.caller import compat_caller
from conveyor.api.deps import Service
from conveyor.api.docs import problems
from conveyor.api.routes.jobs import to_new_job
from conveyor.api.serialize import JSONBytes
from conveyor.domain.compat import TASK_STATUS, task_stats
from conveyor.domain.job import JobStatus
from conveyor.security.policy import Action, Principal
from conveyor.wire import JobIn

router = APIRouter(tags=["compatibility"])

SubmitJobs = Annotated[Principal, Depends(compat_caller(Action.JOBS_SUBMIT))]
ReadJobs = Annotated[Principal, Depends(compat_caller(Action.JOBS_READ))]
ReadQueues = Annotated[Principal, Depends(compat_caller(Action.QUEUES_READ))]


class TaskAccepted(BaseModel):
    status: str = Field(description="queued (or, for a repeated unique_key, the task's status)")
    task_id: uuid.UUID


class TaskOut(BaseModel):
    task_id: uuid.UUID
    type: str
    queue: str
    payload: Any = Field(description="any JSON value")
    status: str = Field(description="queued, processing, completed, failed, dead_letter")
    result: Any = None
    error: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime


class Stats(BaseModel):
    pending: int = Field(description="queued, scheduled, or waiting out a retry's backoff")
    processing: int
    dead_letter: int


@router.post(
    "/task",
    status_code=202,
    response_model=TaskAccepted,
    summary="Submit a task (platform D)",
    responses=problems(400, 422, 429),
)
async def submit(body: JobIn, svc: Service, principal: SubmitJobs) -> Any:
    res = await svc.submit(to_new_job(body, datetime.now(UTC)), tenant=principal.scope)
    return JSONBytes(
        {"status": TASK_STATUS[res.job.status], "task_id": res.job.id}, status_code=202
    )


@router.get(
    "/task/{job_id}",
    response_model=TaskOut,
    summary="Get a task (platform D; Conveyor's addition)",
    responses=problems(404, 422),
)
async def get_task(job_id: uuid.UUID, svc: Service, principal: ReadJobs) -> Any:
    j = await svc.get(job_id, tenant=principal.scope)
    return JSONBytes(
        {
            "task_id": j.id,
            "type": j.type,
            "queue": j.queue,
            "payload": j.payload,
            "status": TASK_STATUS[j.status],
            "result": j.result,
            "error": j.last_error,
            "attempts": j.attempt,
            "created_at": j.created_at,
            "updated_at": j.updated_at,
        }
    )


@router.get(
    "/stats",
    response_model=Stats,
    summary="Tasks waiting, running and dead, across all queues (platform D)",
)
async def stats(svc: Service, _: ReadQueues) -> Any:
    totals: Counter[JobStatus] = Counter()
    for view in await svc.queues():
        totals.update(view.counts)
    return JSONBytes(task_stats(totals))
