"""The one place errors become HTTP: RFC 9457 problem+json for every failure, whatever raised it.

Clients (conveyor.client included) dispatch on `code`, so a code never changes meaning once
shipped; `title` and `detail` are for people.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute, Match

from conveyor.domain.errors import (
    AlreadyExists,
    ConfigError,
    ConveyorError,
    Forbidden,
    IllegalTransition,
    InvalidInput,
    JobNotFound,
    LimiterUnavailable,
    QueueFull,
    RateLimited,
    ScheduleNotFound,
    SchemaMissing,
    StoreUnavailable,
    TokenNotFound,
    Unauthenticated,
    UserNotFound,
)

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:conveyor:problem:"

log = structlog.get_logger("conveyor.api")

# status, title; ConveyorError subclasses not listed fall back to their nearest listed base.
_DOMAIN: dict[type[ConveyorError], tuple[int, str]] = {
    InvalidInput: (422, "Invalid input"),
    JobNotFound: (404, "Job not found"),
    ScheduleNotFound: (404, "Schedule not found"),
    IllegalTransition: (409, "Illegal transition"),
    QueueFull: (429, "Queue full"),
    StoreUnavailable: (503, "Store unavailable"),
    Unauthenticated: (401, "Unauthenticated"),
    Forbidden: (403, "Forbidden"),
    RateLimited: (429, "Too many requests"),
    LimiterUnavailable: (503, "Rate limiter unavailable"),
    AlreadyExists: (409, "Already exists"),
    UserNotFound: (404, "User not found"),
    TokenNotFound: (404, "Token not found"),
    ConfigError: (503, "Not configured"),
    SchemaMissing: (503, "Schema missing"),
}

_HTTP_CODES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "Bad request"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    422: ("invalid_input", "Invalid input"),
}


# Every 503 tells the caller when to try again (RFC 9110 §10.2.3); most outages we answer 503
# for (a store restarting, a pool exhausted) last seconds.
RETRY_AFTER_503 = "1"


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    field: str | None = None,
    errors: Sequence[Mapping[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "field": field,
    }
    if errors:
        body["errors"] = list(errors)
    if status == 503 and not (headers and "Retry-After" in headers):
        headers = {**(headers or {}), "Retry-After": RETRY_AFTER_503}
    return Response(
        orjson.dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def domain_problem(exc: ConveyorError) -> Response:
    for cls in type(exc).__mro__:
        if cls in _DOMAIN:
            status, title = _DOMAIN[cls]
            break
    else:
        status, title = 500, "Internal error"
    detail = exc.message
    if isinstance(exc, StoreUnavailable):
        # The message may name driver internals ("InternalClientError: cannot switch to
        # state 12..."): the log keeps it, the caller gets a plain sentence and Retry-After.
        log.warning("store unavailable", error=exc.message)
        detail = exc.public_message
    elif isinstance(exc, SchemaMissing):
        log.error("store schema missing", error=exc.message)
        detail = exc.public_message
    return problem(status, exc.code, title, detail, field=exc.field, headers=problem_headers(exc))


def problem_headers(exc: ConveyorError) -> dict[str, str] | None:
    """Retry-After for anything retryable (full queue, rate limit, limiter or store down), a bearer
    challenge on 401 (RFC 6750), and RateLimit-* on a rate-limit refusal."""
    headers: dict[str, str] = {}
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int | float):
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    if isinstance(exc, Unauthenticated):
        challenge = 'Bearer realm="conveyor"'
        if exc.message == "invalid token":
            challenge += ', error="invalid_token"'
        headers["WWW-Authenticate"] = challenge
    if isinstance(exc, RateLimited):
        if exc.limit is not None:
            headers["RateLimit-Limit"] = str(exc.limit)
        headers["RateLimit-Remaining"] = "0"
        headers["RateLimit-Reset"] = str(max(1, math.ceil(exc.reset_after)))
    return headers or None


def field_path(loc: Sequence[int | str]) -> str | None:
    """("body", "jobs", 2, "timeout") -> "jobs[2].timeout": the spelling the service uses."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out or None


def validation_problem(exc: RequestValidationError) -> Response:
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        first = errors[0]
        reason = (first.get("ctx") or {}).get("error", "invalid JSON")
        return problem(
            400, "malformed_json", "Malformed JSON", f"request body is not JSON: {reason}"
        )
    items = [
        {"field": field_path(e.get("loc", ())), "message": str(e.get("msg", ""))} for e in errors
    ]
    first_item = items[0] if items else {"field": None, "message": "invalid request"}
    where = first_item["field"] or "request"
    detail = f"{where}: {first_item['message']}"
    if len(items) > 1:
        detail += f" (and {len(items) - 1} more)"
    return problem(
        422, "invalid_input", "Invalid input", detail, field=first_item["field"], errors=items
    )


def http_problem(exc: StarletteHTTPException) -> Response:
    code, title = _HTTP_CODES.get(exc.status_code, ("http_error", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) else title
    return problem(exc.status_code, code, title, detail, headers=exc.headers)


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> str:
    """Every method some route takes at this path (Starlette names only the first route's).
    Probed per method because included routers do not expose their routes."""
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(
            isinstance(r, BaseRoute) and r.matches(scope)[0] == Match.FULL
            for r in request.app.router.routes
        ):
            allowed.append(method)
    return ", ".join(allowed)


_LOGGED = "_conveyor_logged"


def log_crash(path: str, exc: BaseException) -> None:
    """Log a bug with its traceback, once per exception: FastAPI's error handler logs it and
    Starlette re-raises it to the front gate, which must not log it again."""
    if getattr(exc, _LOGGED, False):
        return
    log.error("unhandled error", path=path, exc_info=exc)
    with contextlib.suppress(AttributeError, TypeError):  # an exception type without a __dict__
        setattr(exc, _LOGGED, True)


def crash_problem(path: str, exc: BaseException) -> Response:
    """A bug: logged with its traceback for operators, and a plain 500 problem for the caller."""
    log_crash(path, exc)
    return problem(500, "internal_error", "Internal error", "an unexpected error occurred")


def install(app: FastAPI) -> None:
    async def on_domain(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ConveyorError)
        return domain_problem(exc)

    async def on_validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return validation_problem(exc)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 405:
            exc.headers = {**(exc.headers or {}), "Allow": allowed_methods(request)}
        return http_problem(exc)

    async def on_crash(request: Request, exc: Exception) -> Response:
        return crash_problem(request.url.path, exc)

    app.add_exception_handler(ConveyorError, on_domain)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_crash)
