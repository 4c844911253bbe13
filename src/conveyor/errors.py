"""Typed errors. Every door (HTTP, gRPC, CLI) maps these to its own status codes in one place."""

from __future__ import annotations


class ConveyorError(Exception):
    """Base class; `code` is a stable machine-readable name used by the API error bodies."""

    code = "conveyor_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(ConveyorError):
    """The caller sent something we refuse; nothing was written."""

    code = "invalid_input"


class JobNotFound(ConveyorError):
    code = "job_not_found"


class ScheduleNotFound(ConveyorError):
    code = "schedule_not_found"


class IllegalTransition(ConveyorError):
    """A job cannot move from its status to the one asked for (e.g. cancel a completed job)."""

    code = "illegal_transition"


class QueueFull(ConveyorError):
    """The queue is over its depth limit; retry later."""

    code = "queue_full"

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreUnavailable(ConveyorError):
    code = "store_unavailable"
