"""Who calls a compatibility route: the authenticated caller, as everywhere, or, only when
CONVEYOR_COMPAT_ANONYMOUS says so, an anonymous caller acting as one configured role and
tenant (platforms B and D ran without auth; their clients send no token).

The mapping applies to these routes alone; /v1 and gRPC always want a token when auth is on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from conveyor.api.auth import PRINCIPAL_KEY
from conveyor.domain.errors import ConfigError, InvalidInput
from conveyor.domain.limits import check_name
from conveyor.domain.records import Role
from conveyor.security.policy import TENANT_SCOPED, Action, Principal, check

ANONYMOUS_NAME = "anonymous"


def anonymous_principal(spec: str | None) -> Principal | None:
    """`ROLE` or `ROLE:TENANT` (e.g. `user:legacy`) as the stand-in principal; None: off."""
    if not spec:
        return None
    role_text, _, tenant = spec.partition(":")
    try:
        role = Role(role_text.strip().lower())
    except ValueError:
        raise ConfigError(
            f"CONVEYOR_COMPAT_ANONYMOUS: unknown role {role_text!r} (user or admin, then "
            "optionally :tenant)"
        ) from None
    if role is Role.WORKER:
        raise ConfigError("CONVEYOR_COMPAT_ANONYMOUS: the worker role cannot submit or read jobs")
    tenant = tenant.strip()
    if role in TENANT_SCOPED and not tenant:
        raise ConfigError(f"CONVEYOR_COMPAT_ANONYMOUS: role {role.value} needs a tenant")
    if tenant:
        try:
            check_name(tenant, "tenant")
        except InvalidInput as exc:
            raise ConfigError(f"CONVEYOR_COMPAT_ANONYMOUS: {exc.message}") from None
    return Principal(ANONYMOUS_NAME, role, tenant or None)


def compat_caller(action: Action) -> Callable[[Request], Awaitable[Principal]]:
    """`conveyor.api.auth.require` for these routes: the same policy check, with an anonymous
    caller mapped first when the deployment configured it. Tagged with the action for the
    role-matrix test, as `require` is."""

    async def dependency(request: Request) -> Principal:
        principal: Principal | None = request.scope.get("state", {}).get(PRINCIPAL_KEY)
        if principal is None:
            principal = getattr(request.app.state, "compat_anonymous", None)
        return check(principal, action)

    dependency.__name__ = f"compat_{action.value.replace('.', '_')}"
    dependency.conveyor_action = action  # type: ignore[attr-defined]
    return dependency
