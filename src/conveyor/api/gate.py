"""The front gate: everything every request goes through, in one pure-ASGI layer in front of
FastAPI's own stack (see ConveyorAPI).

In order: time it and count it (HTTP metrics), give it a request id (X-Request-ID, bound to
every log line of the request and echoed back), add the security headers to whatever answers,
authenticate the caller and apply its rate limit before any body is read, read the body
within its size limit and refuse non-JSON bodies, then hand the request on. A bug anywhere
below that escapes becomes a 500 problem, never a bare text error, and is logged once.

These were four middlewares; each layer wrapped `send` again and re-scanned the headers, and
on the submit path the stack cost more than the insert. Each concern's logic stays in its own
module (auth, limits, headers, observability); this module only sequences them.

Direct routes: a handful of hot endpoints (job submission) can be answered here from the
already-read body, skipping routing and FastAPI's per-request dependency solving, which
profiling showed to be most of a submit's CPU. A direct handler declines (returns None)
anything it does not serve in the common way (query parameters, a body its model refuses),
and the FastAPI route of the same path answers instead, with the standard error, so every
error still has one source. The FastAPI routes also stay the documented API (OpenAPI).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping

import structlog
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.api.auth import EXEMPT_PATHS, PRINCIPAL_KEY, authenticate_and_limit
from conveyor.api.errors import crash_problem, domain_problem, log_crash
from conveyor.api.headers import Header, security_headers
from conveyor.api.limits import BODY_METHODS, BodyRefused, read_body
from conveyor.api.observability import RequestMetrics
from conveyor.api.requestid import HEADER as REQUEST_ID
from conveyor.api.requestid import request_id
from conveyor.domain.errors import ConveyorError
from conveyor.security.policy import Principal

# (scope, body, caller) -> a response, or None to let the FastAPI route answer.
DirectHandler = Callable[[Scope, bytes, Principal | None], Awaitable[Response | None]]


class Gate:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        direct: Mapping[tuple[str, str], DirectHandler] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.direct = dict(direct or {})
        self.metrics = RequestMetrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid = request_id(scope["headers"])
        extra = [*security_headers(scope["path"]), (REQUEST_ID, rid.encode())]
        status = 0  # no response started yet
        route = _Route()

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers", [])
                present = {name.lower() for name, _ in headers}
                message = {
                    **message,
                    "headers": [
                        *headers,
                        *(h for h in extra + route.headers if h[0] not in present),
                    ],
                }
            await send(message)

        bound = structlog.contextvars.bind_contextvars(request_id=rid)
        try:
            await self._handle(scope, receive, send_with_headers, route)
        except Exception as exc:
            if status:
                # The app below answered and re-raised: FastAPI sends its 500 itself, after its
                # error handler logged the bug. Re-raising would have the server log it again.
                log_crash(scope["path"], exc)  # a no-op when it was logged
                return
            await crash_problem(scope["path"], exc)(scope, receive, send_with_headers)
        finally:
            structlog.contextvars.reset_contextvars(**bound)
            template = route.template or getattr(scope.get("route"), "path", None)
            self.metrics.observe(
                scope["method"], template, status or 500, time.perf_counter() - start
            )

    async def _handle(self, scope: Scope, receive: Receive, send: Send, route: _Route) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        principal = None
        if path not in EXEMPT_PATHS:
            try:
                principal, route.headers = await authenticate_and_limit(scope)
            except ConveyorError as exc:
                await domain_problem(exc)(scope, receive, send)
                return
            scope.setdefault("state", {})[PRINCIPAL_KEY] = principal
        if method not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        try:
            body = await read_body(scope, receive, self.max_bytes)
        except BodyRefused as refused:
            if refused.response is not None:
                await refused.response(scope, receive, send)
            return
        handler = self.direct.get((method, path))
        if handler is not None:
            route.template = path
            try:
                response = await handler(scope, body, principal)
            except ConveyorError as exc:
                response = domain_problem(exc)
            if response is not None:
                await response(scope, receive, send)
                return
            route.template = None  # declined: the FastAPI route's template applies
        await self.app(scope, _replay(body, receive), send)


class _Route:
    """What the gate learnt about a request on the way in, for the way out."""

    __slots__ = ("headers", "template")

    def __init__(self) -> None:
        self.headers: list[Header] = []  # RateLimit-*
        self.template: str | None = None  # set when a direct handler answered


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body was read here; the app downstream gets it back as one message."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
