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
    """The store cannot answer (down, restarting, out of connections); retry shortly.

    `message` says why, for the log: it may carry driver internals, so the doors tell the
    caller `public_message` instead, with a retry hint of `retry_after` seconds."""

    code = "store_unavailable"
    public_message = "the job store is unavailable; retry shortly"
    retry_after: float = 1.0


class SchemaMissing(ConveyorError):
    """The store answers but holds no Conveyor schema (or an older one): `conveyor migrate` was
    not run on it, or a relative SQLite path points at another directory. Says which store
    and the command to run; retrying does not help."""

    code = "schema_missing"
    # What a remote caller is told (the message names the store: the operator's, not theirs).
    public_message = "the job store's schema is not migrated: run `conveyor migrate`"

    def __init__(self, store: str, pending: int, *, resolved: str | None = None) -> None:
        """`store`: the URL as given, password masked; `resolved`: where a relative SQLite
        path pointed."""
        at = f" (the file {resolved})" if resolved else ""
        super().__init__(
            f"the store {store}{at} is missing Conveyor's schema ({pending} migration(s) not "
            f"applied): run `conveyor migrate --store-url '{store}'`"
        )
        self.store = store


class AlreadyExists(ConveyorError):
    """A user (or other named thing) with this name exists; nothing was written."""

    code = "already_exists"


class UserNotFound(ConveyorError):
    code = "user_not_found"


class TokenNotFound(ConveyorError):
    code = "token_not_found"


class Unauthenticated(ConveyorError):
    """No credentials, or credentials we cannot trust (expired, tampered, revoked...).

    The message stays generic on purpose: telling a caller *why* a token failed helps an
    attacker more than an honest client, which only needs to log in again.
    """

    code = "unauthenticated"


class Forbidden(ConveyorError):
    """Authenticated, but the policy table does not allow this action for the role."""

    code = "forbidden"


class RateLimited(ConveyorError):
    """Too many requests (or failed logins) in the window; retry after `retry_after` s."""

    code = "rate_limited"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float = 1.0,
        limit: int | None = None,
        reset_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.limit = limit
        self.reset_after = reset_after if reset_after is not None else retry_after


class LimiterUnavailable(ConveyorError):
    """The rate limiter's storage is down and the settings say to fail closed."""

    code = "rate_limiter_unavailable"

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConfigError(ConveyorError):
    """Settings that cannot work (e.g. auth on without a signing key); raised at start-up."""

    code = "config_error"
