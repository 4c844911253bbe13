"""/v1/schedules: cron schedules and firing one on demand."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from starlette.responses import Response

from conveyor.api.deps import ReadSchedules, Service, WriteSchedules
from conveyor.api.docs import model, problems
from conveyor.api.serialize import JSONBytes, job_out, schedule_out
from conveyor.domain.records import Schedule
from conveyor.wire import (
    NAME_DOC,
    JobOut,
    ScheduleFields,
    ScheduleIn,
    ScheduleList,
    ScheduleOut,
    SchedulePatch,
)

router = APIRouter(prefix="/v1/schedules", tags=["schedules"])
PathName = Annotated[str, Path(json_schema_extra=NAME_DOC)]


@router.get("", response_model=ScheduleList, summary="All schedules")
async def list_schedules(svc: Service, _: ReadSchedules) -> Any:
    return JSONBytes({"schedules": [schedule_out(s) for s in await svc.list_schedules()]})


@router.post(
    "",
    status_code=201,
    response_model=ScheduleOut,
    summary="Create a schedule (409 if the name is taken; PUT /v1/schedules/{name} replaces)",
    responses=problems(409, 422),
)
async def create_schedule(body: ScheduleIn, svc: Service, _: WriteSchedules) -> Any:
    saved = await svc.create_schedule(Schedule(**body.model_dump()))
    return JSONBytes(schedule_out(saved), status_code=201)


@router.get(
    "/{name}", response_model=ScheduleOut, summary="One schedule", responses=problems(404, 422)
)
async def get_schedule(name: PathName, svc: Service, _: ReadSchedules) -> Any:
    return JSONBytes(schedule_out(await svc.get_schedule(name)))


@router.put(
    "/{name}",
    response_model=ScheduleOut,
    summary="Create (201) or replace (200) the schedule with this name",
    responses={201: model("ScheduleOut", "Created"), **problems(422)},
)
async def put_schedule(
    name: PathName, body: ScheduleFields, svc: Service, _: WriteSchedules
) -> Any:
    saved = await svc.put_schedule(Schedule(name=name, **body.model_dump()))
    # A row just inserted carries one time stamp for both; a replaced one keeps its created_at.
    created = saved.created_at is not None and saved.created_at == saved.updated_at
    return JSONBytes(schedule_out(saved), status_code=201 if created else 200)


@router.patch(
    "/{name}",
    response_model=ScheduleOut,
    summary="Change some fields of a schedule; its next fire time is recomputed",
    responses=problems(404, 422),
)
async def update_schedule(
    name: PathName, body: SchedulePatch, svc: Service, _: WriteSchedules
) -> Any:
    return JSONBytes(
        schedule_out(await svc.update_schedule(name, body.model_dump(exclude_unset=True)))
    )


@router.delete(
    "/{name}", status_code=204, summary="Delete a schedule", responses=problems(404, 422)
)
async def delete_schedule(name: PathName, svc: Service, _: WriteSchedules) -> Response:
    await svc.delete_schedule(name)
    return Response(status_code=204)


@router.post(
    "/{name}/trigger",
    status_code=201,
    response_model=JobOut,
    summary="Submit the schedule's job now, outside its cadence",
    responses=problems(404, 422, 429),
)
async def trigger_schedule(name: PathName, svc: Service, _: WriteSchedules) -> Any:
    return JSONBytes(job_out(await svc.trigger_schedule(name)), status_code=201)
