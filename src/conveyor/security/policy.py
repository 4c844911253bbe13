"""The policy table: which role may do which action. The only place authorization is decided.

Every API route names one Action (through `conveyor.api.auth.require`); a test walks all routes
and checks each against this table for every role, so a route without an entry, or an entry
without a test, cannot slip in. Tenant confinement of USER principals is a separate rule that
lives in the service layer (JobService methods take the principal's tenant).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from conveyor.domain.errors import Forbidden, Unauthenticated
from conveyor.domain.records import Role
from conveyor.security.tokens import Claims, TokenType


class Action(enum.StrEnum):
    JOBS_SUBMIT = "jobs.submit"
    JOBS_READ = "jobs.read"
    JOBS_CANCEL = "jobs.cancel"
    JOBS_RETRY = "jobs.retry"
    DEAD_READ = "dead.read"
    DEAD_REQUEUE = "dead.requeue"
    DEAD_DISCARD = "dead.discard"
    QUEUES_READ = "queues.read"
    QUEUES_WRITE = "queues.write"
    SCHEDULES_READ = "schedules.read"
    SCHEDULES_WRITE = "schedules.write"
    WORKERS_READ = "workers.read"
    USERS_ADMIN = "users.admin"
    TOKENS_ADMIN = "tokens.admin"
    WORKER_PROTOCOL = "worker.protocol"  # fetch, heartbeat, finish (gRPC / remote workers)
    AUTH_SELF = "auth.self"  # who am I


_A = Action
POLICY: Mapping[Role, frozenset[Action]] = {
    Role.ADMIN: frozenset(Action),
    Role.USER: frozenset({_A.JOBS_SUBMIT, _A.JOBS_READ, _A.JOBS_CANCEL, _A.AUTH_SELF}),
    Role.WORKER: frozenset({_A.WORKER_PROTOCOL, _A.AUTH_SELF}),
}

# Roles whose job access is confined to their own tenant.
TENANT_SCOPED: frozenset[Role] = frozenset({Role.USER})


def allowed(role: Role, action: Action) -> bool:
    return action in POLICY.get(role, frozenset())


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as established by a verified token (or the auth-disabled stand-in)."""

    name: str
    role: Role
    tenant: str | None = None
    token_type: TokenType | None = None
    jti: str | None = None

    @classmethod
    def from_claims(cls, claims: Claims) -> Principal:
        if claims.role in TENANT_SCOPED and not claims.tenant:
            # A tenant-confined role without a tenant would read as "all tenants".
            raise Unauthenticated("invalid token")
        return cls(claims.sub, claims.role, claims.tenant, claims.typ, claims.jti)

    @property
    def scope(self) -> str | None:
        """The tenant this principal's job access is confined to; None means every tenant."""
        return self.tenant if self.role in TENANT_SCOPED else None

    def can(self, action: Action) -> bool:
        return allowed(self.role, action)


# Stands in for a caller when auth is explicitly disabled (tests, trusted embedded use).
AUTH_DISABLED_PRINCIPAL = Principal("anonymous", Role.ADMIN)


def check(principal: Principal | None, action: Action) -> Principal:
    """Raise Unauthenticated (no principal) or Forbidden (role may not); return the principal."""
    if principal is None:
        raise Unauthenticated("authentication required: send Authorization: Bearer <token>")
    if not principal.can(action):
        raise Forbidden(f"role {principal.role.value!r} may not {action.value}")
    return principal
