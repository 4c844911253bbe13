"""HTTP side of auth: who is calling (`authenticate_and_limit`, run by the front gate before
anything else), may they (`require(action)` on every route), and how fast (rate limits).

The gate runs both before it reads the body, so a request without valid credentials or over
its limit is answered with its body unread, unparsed and unvalidated, and never reaches the
store. Authorization needs the route's action, so it is a dependency; the decision itself
is `conveyor.security.policy.check`, the one place.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.types import Scope

from conveyor.api.headers import Header
from conveyor.domain.errors import RateLimited, StoreUnavailable, Unauthenticated
from conveyor.security.policy import AUTH_DISABLED_PRINCIPAL, Action, Principal, check
from conveyor.security.ratelimit import Decision, RateLimiter
from conveyor.service.auth import AuthService

log = structlog.get_logger("conveyor.api")

# Probes and scrapes bypass the gate (no token parsing, no rate limit): an orchestrator must
# always learn the truth, and /metrics checks its own scrape token (CONVEYOR_METRICS_TOKEN).
EXEMPT_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/metrics"})
PRINCIPAL_KEY = "principal"


# -- per route ----------------------------------------------------------------------------


def require(action: Action) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that returns the caller if the policy table allows `action` for its role,
    else raises Unauthenticated (401) or Forbidden (403). Tagged with the action so the role
    matrix test can read every route's requirement from `app.routes`."""

    async def dependency(request: Request) -> Principal:
        return check(request.scope.get("state", {}).get(PRINCIPAL_KEY), action)

    dependency.__name__ = f"require_{action.value.replace('.', '_')}"
    dependency.conveyor_action = action  # type: ignore[attr-defined]
    return dependency


async def public() -> None:
    """Marks a route that anyone may call (probes, login, the dashboard's static page)."""


public.conveyor_public = True  # type: ignore[attr-defined]


# -- per request --------------------------------------------------------------------------


def _bearer(scope: Scope) -> str | None:
    """The token of an `Authorization: Bearer …` header; "" for any other scheme."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return None


async def authenticate_and_limit(scope: Scope) -> tuple[Principal | None, list[Header]]:
    """The caller (None when anonymous) and the RateLimit-* headers its answer carries.

    Raises Unauthenticated for bad credentials, RateLimited over the limit, and the limiter's
    or store's unavailability errors. Bad credentials count against the caller's IP like any
    anonymous request, so guessing tokens is throttled too (429 once over, else the 401)."""
    state = scope["app"].state
    auth: AuthService | None = getattr(state, "auth", None)
    limiter: RateLimiter | None = getattr(state, "limiter", None)
    try:
        principal = await _authenticate(scope, auth)
    except Unauthenticated:
        await _limit(scope, limiter, None)
        raise
    decision = await _limit(scope, limiter, principal)
    if decision is None:
        return principal, []
    return principal, [(k.lower().encode(), v.encode()) for k, v in decision.headers().items()]


async def _authenticate(scope: Scope, auth: AuthService | None) -> Principal | None:
    if auth is None:
        if getattr(scope["app"].state, "auth_required", True):
            # Auth is on but the lifespan has not set it up: refuse, never fail open.
            raise StoreUnavailable("the server is not ready (auth not initialised)")
        return AUTH_DISABLED_PRINCIPAL
    token = _bearer(scope)
    if token is None:
        return None  # anonymous: public routes work, `require` answers 401 elsewhere
    if not token:
        raise Unauthenticated("use Authorization: Bearer <token>")
    try:
        return await auth.authenticate(token)
    except Unauthenticated as exc:
        # The reason (expired, bad signature...) is for operators; never log the token.
        cause = exc.__cause__
        log.info(
            "authentication failed",
            path=scope.get("path"),
            reason=type(cause).__name__ if cause else exc.message,
        )
        raise


async def _limit(
    scope: Scope, limiter: RateLimiter | None, principal: Principal | None
) -> Decision | None:
    if limiter is None:
        return None
    if principal is None or principal is AUTH_DISABLED_PRINCIPAL:
        client = scope.get("client")
        key: tuple[str, ...] = ("ip", client[0] if client else "unknown")
        # Auth disabled: everyone is the stand-in admin, limited per IP at the admin rate.
        item = limiter.by_role[None if principal is None else principal.role]
    else:
        key = ("principal", principal.role.value, principal.name)
        item = limiter.by_role[principal.role]
    decision = await limiter.hit(item, *key)
    if decision is not None and not decision.allowed:
        raise RateLimited(
            f"rate limit of {item} exceeded; retry after {decision.retry_after}s",
            retry_after=decision.reset_after,
            limit=decision.limit,
            reset_after=decision.reset_after,
        )
    return decision


# -- OpenAPI ------------------------------------------------------------------------------


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every API route with its full path and all its dependencies, router-level ones
    included. FastAPI includes routers lazily, so `app.routes` alone does not list them."""
    return [rc.route for rc in iter_route_contexts(app.routes) if isinstance(rc.route, APIRoute)]


def route_requirement(route: Any) -> Action | bool | None:
    """The Action a route requires, True for a public route, None when it declares neither
    (which the role matrix test treats as a failure)."""
    stack = list(route.dependant.dependencies)
    found: Action | bool | None = None
    while stack:
        dep = stack.pop()
        call = dep.call
        if getattr(call, "conveyor_public", False):
            found = True
        action = getattr(call, "conveyor_action", None)
        if action is not None:
            return Action(action)
        stack.extend(dep.dependencies)
    return found


_SECURITY_RESPONSES: Mapping[str, str] = {
    "401": "Missing, invalid, expired or revoked token",
    "403": "The token's role may not do this",
    "429": "Rate limited (see Retry-After and RateLimit-* headers)",
    "503": "The rate limiter is unavailable and the server fails closed",
}


def document_security(spec: dict[str, Any], app: FastAPI) -> None:
    """Declare bearer auth in the spec, and the 401/403/429 answers of protected operations."""
    components = spec.setdefault("components", {})
    components.setdefault("securitySchemes", {})["bearerAuth"] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    problem_ref = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for route in api_routes(app):
        methods = route.methods
        if not methods or not route.include_in_schema:
            continue
        requirement = route_requirement(route)
        path_item = spec.get("paths", {}).get(route.path_format, {})
        for method in methods:
            op = path_item.get(method.lower())
            if op is None:
                continue
            responses = op.setdefault("responses", {})
            codes = ["429", "503"]
            if isinstance(requirement, Action):
                op["security"] = [{"bearerAuth": []}]
                codes = ["401", "403", *codes]
            else:
                codes = ["401", *codes]  # a malformed token is refused even on public routes
            for code in codes:
                responses.setdefault(
                    code, {"description": _SECURITY_RESPONSES[code], "content": problem_ref}
                )
