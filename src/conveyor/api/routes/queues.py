"""/v1/queues (depth, pause, limits) and /v1/dead (the dead-letter queue)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from conveyor.api.deps import (
    DiscardDead,
    ReadDead,
    ReadQueues,
    RequeueDead,
    Service,
    WriteQueues,
)
from conveyor.api.docs import problems
from conveyor.api.serialize import JSONBytes, job_out, queue_out
from conveyor.domain.errors import ConveyorError
from conveyor.domain.job import JobStatus
from conveyor.domain.limits import MAX_PAGE
from conveyor.domain.records import JobFilter
from conveyor.wire import (
    NAME_DOC,
    DiscardOut,
    IdsIn,
    JobList,
    QueueList,
    QueueOut,
    QueuePatch,
    RequeueOut,
)

router = APIRouter(tags=["queues"])
PathName = Annotated[str, Path(json_schema_extra=NAME_DOC)]


@router.get("/v1/queues", response_model=QueueList, summary="Queues with depth by status")
async def list_queues(svc: Service, _: ReadQueues) -> Any:
    return JSONBytes({"queues": [queue_out(q) for q in await svc.queues()]})


@router.patch(
    "/v1/queues/{name}",
    response_model=QueueOut,
    summary="Pause/resume a queue or change its limits (null clears a limit)",
    responses=problems(422),
)
async def update_queue(name: PathName, body: QueuePatch, svc: Service, _: WriteQueues) -> Any:
    await svc.update_queue(name, body.model_dump(exclude_unset=True))
    view = next(q for q in await svc.queues() if q.settings.name == name)
    return JSONBytes(queue_out(view))


@router.get(
    "/v1/dead",
    response_model=JobList,
    tags=["dead"],
    summary="Dead jobs, newest first",
    responses=problems(422),
)
async def list_dead(
    svc: Service,
    _: ReadDead,
    queue: Annotated[str | None, Query(json_schema_extra=NAME_DOC)] = None,
    type: Annotated[str | None, Query(json_schema_extra=NAME_DOC)] = None,
    limit: Annotated[int, Query(json_schema_extra={"minimum": 1, "maximum": MAX_PAGE})] = 50,
    cursor: uuid.UUID | None = None,
) -> Any:
    flt = JobFilter(queue=queue, type=type, status=JobStatus.DEAD)
    page = await svc.list_jobs(flt, limit=limit, cursor=cursor)
    return JSONBytes({"jobs": [job_out(j) for j in page.jobs], "next_cursor": page.next_cursor})


@router.post(
    "/v1/dead/requeue",
    response_model=RequeueOut,
    tags=["dead"],
    summary="Requeue dead jobs; ids that are missing or not dead are reported, not fatal",
    responses=problems(422),
)
async def requeue_dead(body: IdsIn, svc: Service, _: RequeueDead) -> Any:
    requeued, failed = [], []
    for job_id in dict.fromkeys(body.ids):
        try:
            requeued.append(job_out(await svc.retry(job_id)))
        except ConveyorError as exc:
            failed.append({"id": job_id, "code": exc.code, "detail": exc.message})
    return JSONBytes({"requeued": requeued, "failed": failed})


@router.post(
    "/v1/dead/discard",
    response_model=DiscardOut,
    tags=["dead"],
    summary="Delete dead jobs; ids that are not dead are left alone",
    responses=problems(422),
)
async def discard_dead(body: IdsIn, svc: Service, _: DiscardDead) -> Any:
    return JSONBytes({"discarded": await svc.discard(body.ids)})
