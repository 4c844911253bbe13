"""Drop-in compatibility surfaces (issue 17): the requests of the four job platforms Conveyor
replaces, served unchanged and translated onto the same JobService calls as /v1 (same auth,
roles, rate limits, backpressure, problem+json errors and metrics). docs/migrating.md is the
user's side of this package.

Paths, and who they serve:

* `POST /login` (platform A): a JWT, as /v1/auth/login.
* `POST /jobs`, `GET /jobs/{id}` (platforms A and B share the path): see `compat.jobs`.
* `POST /task`, `GET /task/{id}`, `GET /stats` (platform D); its `GET /` is the dashboard.
* Platform C is gRPC: `conveyor.grpc.taskqueue`.

Nothing here shadows /v1 or the dashboard: no route of theirs shares a path with these.
"""

from __future__ import annotations

import structlog
from fastapi import FastAPI

from conveyor.api.compat import jobs, login, tasks
from conveyor.api.compat.caller import anonymous_principal
from conveyor.config import Settings

log = structlog.get_logger("conveyor.api")


def install(app: FastAPI, settings: Settings) -> None:
    """Add the routes, and map anonymous callers when (and only when) the setting asks for
    it; raises ConfigError at start-up for a mapping that cannot be honoured."""
    anonymous = anonymous_principal(settings.compat_anonymous)
    app.state.compat_anonymous = anonymous
    if anonymous is not None:
        log.warning(
            "anonymous callers of the compatibility routes act as this role and tenant "
            "(CONVEYOR_COMPAT_ANONYMOUS)",
            role=anonymous.role.value,
            tenant=anonymous.tenant,
        )
    for module in (login, jobs, tasks):
        app.include_router(module.router)
