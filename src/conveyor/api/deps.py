"""Per-request dependencies: the service, and who is calling.

Every route asks for the caller through one of the action aliases below (`ReadJobs`,
`WriteQueues`...), each of which checks the policy table (conveyor.security.policy) for its
action; the caller itself was authenticated by the front gate (api.gate) before the route ran.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from conveyor.api.auth import PRINCIPAL_KEY, require
from conveyor.config import Settings
from conveyor.domain.errors import InvalidInput
from conveyor.security.policy import Action, Principal, check
from conveyor.service.jobs import JobService


async def current_principal(request: Request) -> Principal:
    """Any authenticated caller, with no action checked. Routes must use an action alias
    instead: the role-matrix test flags a route that only asks for this."""
    principal: Principal | None = request.scope.get("state", {}).get(PRINCIPAL_KEY)
    return check(principal, Action.AUTH_SELF)


_QUERY_NAMES: dict[int, frozenset[str]] = {}


async def reject_unknown_query(request: Request) -> None:
    """A misspelt filter (`?stauts=dead`) must not quietly list every job: unknown query
    parameters are refused, as unknown body fields are."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    known = _QUERY_NAMES.get(id(route))
    if known is None:
        known = _QUERY_NAMES[id(route)] = frozenset(_query_names(route.dependant))
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise InvalidInput(
            f"unknown query parameter(s): {', '.join(map(repr, unknown))}"
            + (f"; accepted: {', '.join(sorted(known))}" if known else ""),
            field=unknown[0],
        )


def _query_names(dependant: Dependant) -> set[str]:
    """Query parameter names a route declares, through its whole dependency tree (a
    parameter model contributes its fields' aliases)."""
    names: set[str] = set()
    for field in dependant.query_params:
        model = field.field_info.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            names |= {f.alias or n for n, f in model.model_fields.items()}
        else:
            names.add(field.alias)
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def get_service(request: Request) -> JobService:
    service: JobService = request.app.state.service
    return service


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


Service = Annotated[JobService, Depends(get_service)]
CurrentSettings = Annotated[Settings, Depends(get_settings)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]

# One alias per action of the policy table.
SubmitJobs = Annotated[Principal, Depends(require(Action.JOBS_SUBMIT))]
ReadJobs = Annotated[Principal, Depends(require(Action.JOBS_READ))]
CancelJobs = Annotated[Principal, Depends(require(Action.JOBS_CANCEL))]
RetryJobs = Annotated[Principal, Depends(require(Action.JOBS_RETRY))]
ReadDead = Annotated[Principal, Depends(require(Action.DEAD_READ))]
RequeueDead = Annotated[Principal, Depends(require(Action.DEAD_REQUEUE))]
DiscardDead = Annotated[Principal, Depends(require(Action.DEAD_DISCARD))]
ReadQueues = Annotated[Principal, Depends(require(Action.QUEUES_READ))]
WriteQueues = Annotated[Principal, Depends(require(Action.QUEUES_WRITE))]
ReadSchedules = Annotated[Principal, Depends(require(Action.SCHEDULES_READ))]
WriteSchedules = Annotated[Principal, Depends(require(Action.SCHEDULES_WRITE))]
ReadWorkers = Annotated[Principal, Depends(require(Action.WORKERS_READ))]
