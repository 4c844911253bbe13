"""The one place errors become gRPC status codes (and, for clients, back again).

Trailing metadata carries what a status code cannot: `conveyor-code` (the stable code the HTTP
API's problem bodies use), `conveyor-field` (the offending input) and `retry-after` (seconds,
with RESOURCE_EXHAUSTED and UNAVAILABLE). Anything that is not a ConveyorError is INTERNAL
with a generic message: tracebacks go to the log, never to the caller.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, NoReturn

import grpc
import structlog
from grpc import aio

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

log = structlog.get_logger("conveyor.grpc")

CODE_KEY = "conveyor-code"
FIELD_KEY = "conveyor-field"
RETRY_AFTER_KEY = "retry-after"

# ConveyorError subclasses not listed map through their nearest listed base class.
_CODES: dict[type[ConveyorError], grpc.StatusCode] = {
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    JobNotFound: grpc.StatusCode.NOT_FOUND,
    ScheduleNotFound: grpc.StatusCode.NOT_FOUND,
    UserNotFound: grpc.StatusCode.NOT_FOUND,
    TokenNotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    IllegalTransition: grpc.StatusCode.FAILED_PRECONDITION,
    QueueFull: grpc.StatusCode.RESOURCE_EXHAUSTED,
    RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    Forbidden: grpc.StatusCode.PERMISSION_DENIED,
    StoreUnavailable: grpc.StatusCode.UNAVAILABLE,
    LimiterUnavailable: grpc.StatusCode.UNAVAILABLE,
    ConfigError: grpc.StatusCode.INTERNAL,
    SchemaMissing: grpc.StatusCode.FAILED_PRECONDITION,
}

# The reverse, for clients: the most specific error a status code can stand for.
_ERRORS: dict[grpc.StatusCode, type[ConveyorError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidInput,
    grpc.StatusCode.NOT_FOUND: JobNotFound,
    grpc.StatusCode.FAILED_PRECONDITION: IllegalTransition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: QueueFull,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: Forbidden,
    grpc.StatusCode.UNAVAILABLE: StoreUnavailable,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
}
_BY_NAME: dict[str, type[ConveyorError]] = {cls.code: cls for cls in _CODES}


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str, tuple[tuple[str, str], ...]]:
    """Status code, details and trailing metadata for an exception raised by a handler."""
    if not isinstance(exc, ConveyorError):
        return grpc.StatusCode.INTERNAL, "internal error", ((CODE_KEY, "internal_error"),)
    code = grpc.StatusCode.INTERNAL
    for cls in type(exc).__mro__:
        if cls in _CODES:
            code = _CODES[cls]
            break
    trailers: list[tuple[str, str]] = [(CODE_KEY, exc.code)]
    if exc.field:
        trailers.append((FIELD_KEY, exc.field))
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int | float):
        trailers.append((RETRY_AFTER_KEY, str(max(1, math.ceil(retry_after)))))
    if code is grpc.StatusCode.INTERNAL:
        message = "internal error"
    elif isinstance(exc, StoreUnavailable | SchemaMissing):
        message = exc.public_message  # exc.message may name driver internals: the log's
    else:
        message = exc.message
    return code, message, tuple(trailers)


async def abort(context: aio.ServicerContext[Any, Any], exc: BaseException) -> NoReturn:
    """End the call with the status `exc` maps to (logging what the caller is not told)."""
    code, message, trailers = status_of(exc)
    if code is grpc.StatusCode.INTERNAL:
        log.error("unhandled error in gRPC handler", exc_info=exc)
    elif isinstance(exc, StoreUnavailable):
        log.warning("store unavailable", error=exc.message)
    await context.abort(code, message, trailing_metadata=trailers)
    raise AssertionError("unreachable: context.abort raises")  # pragma: no cover


def from_rpc_error(exc: grpc.RpcError) -> ConveyorError:
    """The ConveyorError a failed call stands for, so a gRPC client raises the same types as
    in-process callers (UNAVAILABLE, e.g. a server that cannot be reached, is StoreUnavailable);
    statuses with no domain meaning become a plain ConveyorError."""
    if not isinstance(exc, aio.AioRpcError):
        return ConveyorError(f"gRPC call failed: {exc}")
    code = exc.code()
    details = exc.details() or code.name
    trailers: dict[str, str] = {}
    for key, value in exc.trailing_metadata() or ():
        trailers[key] = value if isinstance(value, str) else value.decode()
    cls = _BY_NAME.get(trailers.get(CODE_KEY, "")) or _ERRORS.get(code, ConveyorError)
    if cls in (QueueFull, RateLimited, LimiterUnavailable):
        retry = float(trailers.get(RETRY_AFTER_KEY) or 1)
        return cls(details, retry_after=retry)
    error = cls(details, field=trailers.get(FIELD_KEY))
    if isinstance(error, StoreUnavailable):
        with contextlib.suppress(ValueError):  # absent or garbled: the class's default stays
            error.retry_after = float(trailers.get(RETRY_AFTER_KEY, ""))
    return error
