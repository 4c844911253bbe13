"""`POST /jobs` and `GET /jobs/{id}`: platform A's and platform B's job routes, which share
their paths.

One body model serves both, and the body's shape decides the job's type (the rule lives in
`conveyor.domain.compat.jobs_type`): an explicit `type` wins; else a named queue
(`queue_name`, platform A) names the work; else the payload's `type` member (platform B).
Everything else is /v1's submit: the same wire checks (JobIn), the same service call, the same
errors. Answers use the platforms' names (`queue_name`, `execute_at`, `attempts`) and their
statuses (`conveyor.domain.compat.JOBS_STATUS`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from conveyor.api.compat.caller import compat_caller
from conveyor.api.deps import Service
from conveyor.api.docs import problems
from conveyor.api.routes.jobs import to_new_job
from conveyor.api.serialize import JSONBytes
from conveyor.domain.compat import JOBS_STATUS, jobs_type
from conveyor.domain.job import Job
from conveyor.security.policy import Action, Principal
from conveyor.wire import NAME_DOC, JobIn

router = APIRouter(tags=["compatibility"])


class CompatJobIn(JobIn):
    """/v1's JobIn with `type` optional: a job without one takes it by the documented rule."""

    type: Annotated[
        str | None,
        Field(
            strict=True,
            description="optional: else the queue_name, else payload.type",
            json_schema_extra=NAME_DOC,
        ),
    ] = None  # type: ignore[assignment]


class CompatJobOut(BaseModel):
    """A job in platform A's and B's words."""

    id: uuid.UUID
    job_id: uuid.UUID = Field(description="the same id, under the other name clients read")
    type: str
    queue_name: str
    payload: Any = Field(description="any JSON value")
    status: str = Field(description="pending, processing, completed, failed, dead-lettered")
    execute_at: datetime
    attempts: int
    max_retries: int
    result: Any = None
    error: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


def job_view(j: Job) -> dict[str, Any]:
    return {
        "id": j.id,
        "job_id": j.id,
        "type": j.type,
        "queue_name": j.queue,
        "payload": j.payload,
        "status": JOBS_STATUS[j.status],
        "execute_at": j.run_at,
        "attempts": j.attempt,
        "max_retries": j.max_retries,
        "result": j.result,
        "error": j.last_error,
        "created_at": j.created_at,
        "updated_at": j.updated_at,
        "completed_at": j.finished_at,
    }


SubmitJobs = Annotated[Principal, Depends(compat_caller(Action.JOBS_SUBMIT))]
ReadJobs = Annotated[Principal, Depends(compat_caller(Action.JOBS_READ))]


@router.post(
    "/jobs",
    status_code=201,
    response_model=CompatJobOut,
    summary="Submit a job (platforms A and B)",
    responses={
        200: {"model": CompatJobOut, "description": "An existing live job with this key"},
        **problems(400, 422, 429),
    },
)
async def submit(body: CompatJobIn, svc: Service, principal: SubmitJobs) -> Any:
    queue = body.queue if "queue" in body.model_fields_set else None
    typed = body.model_copy(update={"type": jobs_type(body.type, queue, body.payload)})
    res = await svc.submit(to_new_job(typed, datetime.now(UTC)), tenant=principal.scope)
    return JSONBytes(job_view(res.job), status_code=201 if res.created else 200)


@router.get(
    "/jobs/{job_id}",
    response_model=CompatJobOut,
    summary="Get a job (platforms A and B)",
    responses=problems(404, 422),
)
async def get_job(job_id: uuid.UUID, svc: Service, principal: ReadJobs) -> Any:
    return JSONBytes(job_view(await svc.get(job_id, tenant=principal.scope)))
