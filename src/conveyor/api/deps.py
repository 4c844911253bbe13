"""Per-request dependencies: the service, and who is calling.

Every route asks for the caller through one of the action aliases below (`ReadJobs`,
`WriteQueues`...), each of which checks the policy table (conveyor.security.policy) for its
action; the caller itself was authenticated by api.auth.AuthGate before the route ran.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from conveyor.api.auth import PRINCIPAL_KEY, require
from conveyor.config import Settings
from conveyor.security.policy import Action, Principal, check
from conveyor.service import JobService


async def current_principal(request: Request) -> Principal:
    """Any authenticated caller, with no action checked. Routes must use an action alias
    instead: the role-matrix test flags a route that only asks for this."""
    principal: Principal | None = request.scope.get("state", {}).get(PRINCIPAL_KEY)
    return check(principal, Action.AUTH_SELF)


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
