"""Per-request dependencies: the service, and who is calling.

`current_principal` is the seam for auth (a later issue): today every caller is an anonymous
admin; routes already ask for a principal so JWT and RBAC slot in without touching them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from conveyor.config import Settings
from conveyor.service import JobService


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    roles: frozenset[str] = field(default_factory=frozenset)
    tenant: str | None = None  # None: not confined to one tenant


ANONYMOUS_ADMIN = Principal("anonymous", frozenset({"admin"}))


async def current_principal() -> Principal:
    return ANONYMOUS_ADMIN


async def get_service(request: Request) -> JobService:
    service: JobService = request.app.state.service
    return service


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


Service = Annotated[JobService, Depends(get_service)]
CurrentSettings = Annotated[Settings, Depends(get_settings)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
