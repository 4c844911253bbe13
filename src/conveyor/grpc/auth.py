"""Who is calling a gRPC method, and may they: the gRPC twin of `conveyor.api.auth`.

Every RPC names one Action in `RPC_ACTIONS` (tests/grpc/test_auth.py walks the service
descriptors, so an RPC without an entry fails the suite). The bearer token comes from the
`authorization` metadata and is verified by the same AuthService as HTTP (API tokens checked
for revocation); the decision is `conveyor.security.policy.check`, the one place; the same
per-principal rate limits apply. `Guard.unary` / `Guard.stream` also route every exception
through `conveyor.grpc.errors`, so a servicer method is only its translation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

import structlog
from grpc import aio

from conveyor.domain.errors import RateLimited, Unauthenticated
from conveyor.grpc import errors
from conveyor.security.policy import AUTH_DISABLED_PRINCIPAL, Action, Principal, check
from conveyor.security.ratelimit import RateLimiter
from conveyor.service.auth import AuthService

log = structlog.get_logger("conveyor.grpc")

T = TypeVar("T")
Context = aio.ServicerContext[Any, Any]

_A = Action
RPC_ACTIONS: Mapping[str, Action] = {
    "conveyor.v1.JobService/SubmitJob": _A.JOBS_SUBMIT,
    "conveyor.v1.JobService/SubmitJobs": _A.JOBS_SUBMIT,
    "conveyor.v1.JobService/GetJob": _A.JOBS_READ,
    "conveyor.v1.JobService/ListJobs": _A.JOBS_READ,
    "conveyor.v1.JobService/WatchJob": _A.JOBS_READ,
    "conveyor.v1.JobService/CancelJob": _A.JOBS_CANCEL,
    "conveyor.v1.WorkerService/RegisterWorker": _A.WORKER_PROTOCOL,
    "conveyor.v1.WorkerService/DeregisterWorker": _A.WORKER_PROTOCOL,
    "conveyor.v1.WorkerService/Fetch": _A.WORKER_PROTOCOL,
    "conveyor.v1.WorkerService/Complete": _A.WORKER_PROTOCOL,
    "conveyor.v1.WorkerService/Fail": _A.WORKER_PROTOCOL,
    "conveyor.v1.WorkerService/Release": _A.WORKER_PROTOCOL,
    "conveyor.v1.WorkerService/Heartbeat": _A.WORKER_PROTOCOL,
    "conveyor.v1.WorkerService/Reclaim": _A.WORKER_PROTOCOL,
    # platform C's drop-in (conveyor.grpc.taskqueue)
    "taskqueue.TaskQueueService/SubmitTask": _A.JOBS_SUBMIT,
    "taskqueue.TaskQueueService/GetTaskStatus": _A.JOBS_READ,
    "taskqueue.TaskQueueService/RegisterWorker": _A.WORKER_PROTOCOL,
}


def bearer(context: Context) -> str | None:
    """The token of `authorization: Bearer …` metadata; "" for any other scheme."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            text = value if isinstance(value, str) else value.decode("latin-1")
            scheme, _, token = text.partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return None


class Guard:
    """Authenticates, authorizes and rate-limits one call, then runs it with errors mapped.
    `auth` None means auth is disabled by configuration: every caller is the stand-in admin,
    as on the HTTP API."""

    def __init__(self, auth: AuthService | None, limiter: RateLimiter | None = None) -> None:
        self.auth = auth
        self.limiter = limiter

    async def principal(self, context: Context, rpc: str) -> Principal:
        action = RPC_ACTIONS[rpc]
        if self.auth is None:
            return check(AUTH_DISABLED_PRINCIPAL, action)
        token = bearer(context)
        if not token:
            raise Unauthenticated(
                "authentication required: send metadata authorization: Bearer <token>"
                if token is None
                else "use authorization: Bearer <token>"
            )
        try:
            who = await self.auth.authenticate(token)
        except Unauthenticated as exc:
            cause = exc.__cause__
            log.info(
                "authentication failed",
                rpc=rpc,
                reason=type(cause).__name__ if cause else exc.message,
            )
            raise
        principal = check(who, action)
        await self._limit(principal)
        return principal

    async def _limit(self, principal: Principal) -> None:
        limiter = self.limiter
        if limiter is None:
            return
        item = limiter.by_role[principal.role]
        decision = await limiter.hit(item, "principal", principal.role.value, principal.name)
        if decision is not None and not decision.allowed:
            raise RateLimited(
                f"rate limit of {item} exceeded; retry after {decision.retry_after}s",
                retry_after=decision.reset_after,
                limit=decision.limit,
                reset_after=decision.reset_after,
            )

    async def unary(
        self, context: Context, rpc: str, call: Callable[[Principal], Awaitable[T]]
    ) -> T:
        try:
            return await call(await self.principal(context, rpc))
        except aio.AbortError:
            raise
        except Exception as exc:
            await errors.abort(context, exc)

    async def stream(
        self, context: Context, rpc: str, call: Callable[[Principal], AsyncIterator[T]]
    ) -> AsyncIterator[T]:
        try:
            async for item in call(await self.principal(context, rpc)):
                yield item
        except aio.AbortError:
            raise
        except Exception as exc:
            await errors.abort(context, exc)
