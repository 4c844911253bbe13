"""/v1/jobs: submit, batch submit, read (with long-poll), list, audit trail, cancel, retry."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Header, Query
from pydantic import BaseModel, ValidationError
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Scope

from conveyor.api.auth import public
from conveyor.api.deps import (
    CancelJobs,
    CurrentSettings,
    ReadJobs,
    RetryJobs,
    Service,
    SubmitJobs,
)
from conveyor.api.docs import problems
from conveyor.api.errors import problem
from conveyor.api.gate import DirectHandler
from conveyor.api.serialize import JSONBytes, event_out, job_out
from conveyor.domain.errors import InvalidInput
from conveyor.domain.job import Job, JobStatus, NewJob
from conveyor.domain.limits import MAX_PAGE, run_at_from
from conveyor.domain.records import JobFilter
from conveyor.security.policy import Action, Principal, check
from conveyor.service.jobs import JobService
from conveyor.wire import (
    NAME_DOC,
    BatchIn,
    BatchOut,
    EventList,
    JobIn,
    JobList,
    JobOut,
    RetryIn,
    Rfc3339,
)

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

M = TypeVar("M", bound=BaseModel)

MAX_WAIT_PARAM = 3600.0


def to_new_job(body: JobIn, now: datetime, unique_key: str | None = None) -> NewJob:
    """Translate the wire form (execute_at or delay) into the service's NewJob."""
    return NewJob(
        type=body.type,
        payload=body.payload,
        queue=body.queue,
        priority=body.priority,
        run_at=run_at_from(body.run_at, body.delay, now, run_at_field="execute_at"),
        max_retries=body.max_retries,
        timeout=body.timeout,
        unique_key=body.unique_key if body.unique_key is not None else unique_key,
        tags=body.tags,
    )


@router.post(
    "",
    status_code=201,
    response_model=JobOut,
    summary="Submit a job",
    responses={
        200: {"model": JobOut, "description": "An existing live job with this key was returned"},
        **problems(400, 422, 429),
    },
)
async def submit(
    body: JobIn,
    svc: Service,
    principal: SubmitJobs,
    idempotency_key: Annotated[
        str | None,
        Header(
            description="Dedupes like unique_key (which wins if both are given): a repeat while "
            "the first job is not yet terminal returns that job with 200."
        ),
    ] = None,
) -> Any:
    return await _submit(svc, body, principal, idempotency_key)


@router.post(
    "/batch",
    status_code=201,
    response_model=BatchOut,
    summary="Submit up to 1,000 jobs at once (all or nothing)",
    responses=problems(400, 422, 429),
)
async def submit_batch(body: BatchIn, svc: Service, principal: SubmitJobs) -> Any:
    return await _submit_batch(svc, body, principal)


async def _submit(
    svc: JobService, body: JobIn, principal: Principal, idempotency_key: str | None
) -> Response:
    try:
        job = to_new_job(body, datetime.now(UTC), idempotency_key)
        res = await svc.submit(job, tenant=principal.scope)
    except InvalidInput as exc:
        if exc.field == "unique_key" and body.unique_key is None:
            exc.field = "Idempotency-Key"
        raise
    return JSONBytes(job_out(res.job), status_code=201 if res.created else 200)


async def _submit_batch(svc: JobService, body: BatchIn, principal: Principal) -> Response:
    now = datetime.now(UTC)
    jobs = []
    for i, item in enumerate(body.jobs):
        try:
            jobs.append(to_new_job(item, now))
        except InvalidInput as exc:
            raise InvalidInput(f"jobs[{i}]: {exc.message}", field=f"jobs[{i}].{exc.field}") from exc
    results = await svc.submit_many(jobs, tenant=principal.scope)
    return JSONBytes(
        {"jobs": [job_out(r.job) for r in results], "created": [r.created for r in results]},
        status_code=201,
    )


# Direct handlers (see conveyor.api.gate): the two submit routes, served from the body the gate
# read, without routing or dependency solving. Anything uncommon (query parameters, a body the
# model refuses) is declined, and the routes above answer it with the standard error. The body
# is parsed before the caller's rights are checked, as FastAPI does (malformed JSON is a 400
# for anyone).


def _accept(
    scope: Scope, body: bytes, caller: Principal | None, model: type[M]
) -> tuple[M, Principal] | None:
    """The parsed body and the caller allowed to submit, or None to decline."""
    if scope["query_string"]:
        return None
    try:
        parsed = model.model_validate_json(body)
    except ValidationError:
        return None
    return parsed, check(caller, Action.JOBS_SUBMIT)


async def _submit_direct(scope: Scope, body: bytes, caller: Principal | None) -> Response | None:
    accepted = _accept(scope, body, caller, JobIn)
    if accepted is None:
        return None
    job, principal = accepted
    idempotency_key = Headers(scope=scope).get("idempotency-key")
    return await _submit(scope["app"].state.service, job, principal, idempotency_key)


async def _submit_batch_direct(
    scope: Scope, body: bytes, caller: Principal | None
) -> Response | None:
    accepted = _accept(scope, body, caller, BatchIn)
    if accepted is None:
        return None
    batch, principal = accepted
    return await _submit_batch(scope["app"].state.service, batch, principal)


DIRECT: dict[tuple[str, str], DirectHandler] = {
    ("POST", "/v1/jobs"): _submit_direct,
    ("POST", "/v1/jobs/batch"): _submit_batch_direct,
}


@router.api_route(
    "/batch",
    methods=["GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
    include_in_schema=False,
    dependencies=[Depends(public)],
)
async def batch_other_methods() -> Response:
    """`batch` is not a job id: without this, GET /v1/jobs/batch would be read as one."""
    return problem(
        405,
        "method_not_allowed",
        "Method not allowed",
        "/v1/jobs/batch takes POST only",
        headers={"Allow": "POST"},
    )


@router.get(
    "",
    response_model=JobList,
    summary="List jobs, newest first (keyset pagination)",
    responses=problems(422),
)
async def list_jobs(
    svc: Service,
    principal: ReadJobs,
    queue: Annotated[str | None, Query(json_schema_extra=NAME_DOC)] = None,
    status: JobStatus | None = None,
    type: Annotated[str | None, Query(json_schema_extra=NAME_DOC)] = None,
    tag: Annotated[str | None, Query(json_schema_extra=NAME_DOC)] = None,
    tenant: Annotated[
        str | None, Query(json_schema_extra=NAME_DOC, description="ignored for USER callers")
    ] = None,
    created_after: Annotated[Rfc3339 | None, Query(description="inclusive")] = None,
    created_before: Annotated[Rfc3339 | None, Query(description="exclusive")] = None,
    limit: Annotated[int, Query(json_schema_extra={"minimum": 1, "maximum": MAX_PAGE})] = 50,
    cursor: Annotated[uuid.UUID | None, Query(description="next_cursor of the previous page")] = (
        None
    ),
) -> Any:
    flt = JobFilter(
        queue=queue,
        status=status,
        type=type,
        tag=tag,
        tenant=tenant,
        created_after=created_after,
        created_before=created_before,
    )
    page = await svc.list_jobs(flt, limit=limit, cursor=cursor, tenant=principal.scope)
    return JSONBytes({"jobs": [job_out(j) for j in page.jobs], "next_cursor": page.next_cursor})


@router.get(
    "/{job_id}",
    response_model=JobOut,
    summary="Get a job; ?wait=N long-polls until it is terminal",
    responses=problems(404, 422),
)
async def get_job(
    job_id: uuid.UUID,
    svc: Service,
    settings: CurrentSettings,
    principal: ReadJobs,
    wait: Annotated[
        float | None,
        Query(
            ge=0,
            le=MAX_WAIT_PARAM,
            allow_inf_nan=False,
            description="seconds to wait for a terminal status (capped by the server)",
        ),
    ] = None,
) -> Any:
    job = await svc.get(job_id, tenant=principal.scope)
    if wait:
        seconds = min(wait, settings.api_max_wait)
        job = await _wait_terminal(
            partial(svc.get, tenant=principal.scope), job, seconds, settings.api_wait_interval
        )
    return JSONBytes(job_out(job))


async def _wait_terminal(
    get: Callable[[uuid.UUID], Awaitable[Job]], job: Job, seconds: float, interval: float
) -> Job:
    """Re-read until terminal or the deadline; the job is returned either way."""
    deadline = time.monotonic() + seconds
    while not job.status.terminal:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        await asyncio.sleep(min(interval, left))
        job = await get(job.id)
    return job


@router.get(
    "/{job_id}/events",
    response_model=EventList,
    summary="The job's audit trail, oldest first",
    responses=problems(404, 422),
)
async def job_events(job_id: uuid.UUID, svc: Service, principal: ReadJobs) -> Any:
    events = await svc.events(job_id, tenant=principal.scope)
    return JSONBytes({"events": [event_out(e) for e in events]})


@router.post(
    "/{job_id}/cancel",
    response_model=JobOut,
    summary="Cancel a job that has not finished",
    responses=problems(404, 409, 422),
)
async def cancel(job_id: uuid.UUID, svc: Service, principal: CancelJobs) -> Any:
    return JSONBytes(job_out(await svc.cancel(job_id, tenant=principal.scope)))


@router.post(
    "/{job_id}/retry",
    response_model=JobOut,
    summary="Requeue a dead job, optionally with a new payload",
    responses=problems(404, 409, 422),
)
async def retry(
    job_id: uuid.UUID, svc: Service, principal: RetryJobs, body: RetryIn | None = None
) -> Any:
    payload = body.payload if body is not None else None
    return JSONBytes(job_out(await svc.retry(job_id, payload, tenant=principal.scope)))
