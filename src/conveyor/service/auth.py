"""The auth use cases every door shares (HTTP routes, the CLI): log in, refresh, authenticate a
bearer token, manage users and API tokens. Rules live here, not in routes.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from conveyor.config import Settings
from conveyor.domain.errors import InvalidInput, RateLimited, Unauthenticated, UserNotFound
from conveyor.domain.records import ApiToken, Role, User
from conveyor.security.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, PasswordHasher
from conveyor.security.policy import TENANT_SCOPED, Principal
from conveyor.security.ratelimit import RateLimiter
from conveyor.security.tokens import Claims, TokenCodec, TokenType
from conveyor.store.base import Store

log = structlog.get_logger("conveyor.auth")

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,63}$")
TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")
MAX_API_TOKEN_DAYS = 3650.0
_UNSET: object = object()


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int  # seconds the access token is valid
    refresh_expires_in: int
    token_type: str = "bearer"


@dataclass(frozen=True, slots=True)
class IssuedApiToken:
    token: str  # shown once; only its jti is stored
    record: ApiToken


def generate_password() -> str:
    return secrets.token_urlsafe(18)


def _role(value: object) -> Role:
    try:
        return Role(str(value))
    except ValueError:
        raise InvalidInput(
            f"role must be one of {', '.join(r.value for r in Role)} (got {value!r})", field="role"
        ) from None


def _tenant_for(role: Role, tenant: str | None) -> str | None:
    if tenant is not None and not TENANT_RE.match(tenant):
        raise InvalidInput(
            "tenant must be 1-128 characters of letters, digits and _ . : -", field="tenant"
        )
    if role in TENANT_SCOPED and not tenant:
        raise InvalidInput(f"a {role.value} account needs a tenant", field="tenant")
    return tenant


def _password(password: object) -> str:
    if not isinstance(password, str) or not (
        MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH
    ):
        raise InvalidInput(
            f"password must be {MIN_PASSWORD_LENGTH}-{MAX_PASSWORD_LENGTH} characters",
            field="password",
        )
    return password


class AuthService:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        codec: TokenCodec | None = None,
        hasher: PasswordHasher | None = None,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`codec` is built from settings on first use (managing users needs no signing key);
        a server calls `check_config()` at start so a missing key fails before it serves."""
        self.store = store
        self.settings = settings
        self._codec = codec
        self.hasher = hasher or PasswordHasher()
        self.limiter = limiter or RateLimiter(settings)
        self.clock = clock
        self._api_cache: dict[str, tuple[float, ApiToken]] = {}
        self._api_lookups: dict[str, asyncio.Future[ApiToken | None]] = {}
        self._claims_cache: dict[str, Claims] = {}

    @property
    def codec(self) -> TokenCodec:
        if self._codec is None:
            self._codec = TokenCodec.from_settings(self.settings)
        return self._codec

    def check_config(self) -> None:
        """Raise ConfigError now if tokens could not be issued or verified."""
        _ = self.codec

    # -- logging in --------------------------------------------------------------------
    async def login(self, username: str, password: str, address: str = "unknown") -> TokenPair:
        """Failures are throttled per (username, client `address`), never per account alone,
        so nobody can lock an account out for its owner elsewhere (issue 19). After
        `login_max_failures` in a row, that address waits 1, 2, 4 ... s (capped at
        `login_lockout_seconds`) before its next try, even with the right password: guessing
        must not get faster by being lucky late. A success clears the count. Known and unknown
        usernames take the same path (one hash verification, one count)."""
        name = username.lower()[:128]
        limiter = self.limiter
        gate = await limiter.login_gate(name, address)
        if gate is not None and not gate.allowed:
            log.warning("login throttled", username=username[:64], address=address[:64])
            raise RateLimited(
                "too many failed logins for this account from this address; try again later",
                retry_after=gate.retry_after,
                limit=gate.limit,
                reset_after=gate.reset_after,
            )
        user = await self.store.get_user(username) if USERNAME_RE.match(username) else None
        ok = self.hasher.verify(user.password_hash if user else None, password)
        if user is None or not ok or user.disabled:
            await limiter.login_failed(name, address)
            log.info("login failed", username=username[:64], address=address[:64])
            raise Unauthenticated("invalid username or password")
        await limiter.login_succeeded(name, address)
        if self.hasher.needs_rehash(user.password_hash):
            user.password_hash = self.hasher.hash(password)
            user = await self.store.set_user(user)
        return self._pair(user)

    async def refresh(self, refresh_token: str) -> TokenPair:
        """A new pair from a refresh token, with role and tenant re-read from the user row: a
        disabled or deleted user, or one changed since the token was issued, gets nothing."""
        claims = self.codec.decode(refresh_token)
        if claims.typ is not TokenType.REFRESH:
            raise Unauthenticated("invalid token")
        user = await self.store.get_user(claims.sub)
        if user is None or user.disabled:
            raise Unauthenticated("invalid token")
        if user.updated_at is not None and int(user.updated_at.timestamp()) > int(
            claims.iat.timestamp()
        ):
            # Password, role or tenant changed after this refresh token was issued.
            raise Unauthenticated("invalid token")
        return self._pair(user)

    def _pair(self, user: User) -> TokenPair:
        s = self.settings
        access, _ = self.codec.issue(
            sub=user.username,
            role=user.role,
            tenant=user.tenant,
            typ=TokenType.ACCESS,
            ttl=s.access_token_ttl,
        )
        refresh, _ = self.codec.issue(
            sub=user.username,
            role=user.role,
            tenant=user.tenant,
            typ=TokenType.REFRESH,
            ttl=s.refresh_token_ttl,
        )
        return TokenPair(access, refresh, int(s.access_token_ttl), int(s.refresh_token_ttl))

    # -- every request ----------------------------------------------------------------
    async def authenticate(self, token: str) -> Principal:
        """The principal behind a bearer token. Access tokens need no lookup (they expire soon);
        API tokens are checked against the store (revocation), with a short per-process cache.
        Refresh tokens are not bearer credentials."""
        claims = self._verified(token)
        if claims.typ is TokenType.API:
            record = await self._api_token(claims.jti)
            now = datetime.now(UTC)
            if (
                record is None
                or record.revoked_at is not None
                or record.expires_at <= now
                or record.role != claims.role
                or record.tenant != claims.tenant
            ):
                raise Unauthenticated("invalid token")
        elif claims.typ is not TokenType.ACCESS:
            raise Unauthenticated("invalid token")
        return Principal.from_claims(claims)

    def _verified(self, token: str) -> Claims:
        """Signature checks are the costliest step of a request (~15% of a submit, profiled),
        and a client sends the same token many times. A token string that verified once maps
        to its claims until it expires: any other string, tampered ones included, is verified
        in full. Revocation of API tokens is still checked on every request by the caller."""
        hit = self._claims_cache.get(token)
        if hit is not None and hit.exp > datetime.now(UTC):
            return hit
        claims = self.codec.decode(token)
        if len(self._claims_cache) > 10_000:
            self._claims_cache.clear()
        self._claims_cache[token] = claims
        return claims

    async def _api_token(self, jti: str) -> ApiToken | None:
        hit = self._api_cache.get(jti)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        # One lookup per token at a time: when the entry expires under load, the requests that
        # arrive meanwhile wait for it instead of each querying the store.
        pending = self._api_lookups.get(jti)
        if pending is None:
            pending = self._api_lookups[jti] = asyncio.ensure_future(self._lookup_api_token(jti))
            pending.add_done_callback(
                lambda done: (
                    self._api_lookups.pop(jti, None) if self._api_lookups.get(jti) is done else None
                )
            )
        return await asyncio.shield(pending)

    async def _lookup_api_token(self, jti: str) -> ApiToken | None:
        ttl = self.settings.api_token_cache_seconds
        record = await self.store.get_api_token(jti)
        if self._api_lookups.get(jti) is not asyncio.current_task():
            return record  # revoked meanwhile: answer this lookup's callers, but do not cache
        if record is not None and ttl > 0:
            if len(self._api_cache) > 10_000:
                self._api_cache.clear()
            self._api_cache[jti] = (time.monotonic() + ttl, record)
        return record

    # -- users --------------------------------------------------------------------------
    async def create_user(
        self, username: str, password: str, role: Role | str, tenant: str | None = None
    ) -> User:
        if not isinstance(username, str) or not USERNAME_RE.match(username):
            raise InvalidInput(
                "username must be 1-64 characters of letters, digits and _ . @ -",
                field="username",
            )
        r = _role(role)
        user = User(
            username=username,
            role=r,
            tenant=_tenant_for(r, tenant),
            password_hash=self.hasher.hash(_password(password)),
        )
        created = await self.store.create_user(user)
        log.info("user created", username=username, role=r.value, tenant=tenant)
        return created

    async def list_users(self) -> list[User]:
        return await self.store.list_users()

    async def update_user(
        self,
        username: str,
        *,
        password: str | None = None,
        role: Role | str | None = None,
        tenant: str | object | None = _UNSET,
        disabled: bool | None = None,
    ) -> User:
        user = await self.store.get_user(username)
        if user is None:
            raise UserNotFound(f"user {username!r} not found", field="username")
        if role is not None:
            user.role = _role(role)
        if tenant is not _UNSET:
            user.tenant = tenant if isinstance(tenant, str) else None
        user.tenant = _tenant_for(user.role, user.tenant)
        if password is not None:
            user.password_hash = self.hasher.hash(_password(password))
        if disabled is not None:
            user.disabled = bool(disabled)
        saved = await self.store.set_user(user)
        log.info("user updated", username=username, role=saved.role.value, disabled=saved.disabled)
        return saved

    # -- API tokens ---------------------------------------------------------------------
    async def create_api_token(
        self,
        name: str,
        role: Role | str,
        tenant: str | None = None,
        *,
        ttl_days: float | None = None,
        created_by: str | None = None,
    ) -> IssuedApiToken:
        if not isinstance(name, str) or not 0 < len(name) <= 128:
            raise InvalidInput("name must be 1-128 characters", field="name")
        r = _role(role)
        tenant = _tenant_for(r, tenant)
        days = self.settings.api_token_ttl_days if ttl_days is None else ttl_days
        if not 0 < days <= MAX_API_TOKEN_DAYS:
            raise InvalidInput(f"ttl_days must be in (0, {MAX_API_TOKEN_DAYS:g}]", field="ttl_days")
        token, claims = self.codec.issue(
            sub=f"token:{name}",
            role=r,
            tenant=tenant,
            typ=TokenType.API,
            ttl=timedelta(days=days).total_seconds(),
        )
        record = await self.store.create_api_token(
            ApiToken(
                jti=claims.jti,
                name=name,
                role=r,
                tenant=tenant,
                created_by=created_by,
                expires_at=claims.exp,
            )
        )
        log.info("API token created", jti=claims.jti, name=name, role=r.value, tenant=tenant)
        return IssuedApiToken(token, record)

    async def list_api_tokens(self) -> list[ApiToken]:
        return await self.store.list_api_tokens()

    async def revoke_api_token(self, jti: str) -> ApiToken:
        record = await self.store.revoke_api_token(jti)
        self._api_cache.pop(jti, None)
        self._api_lookups.pop(jti, None)  # a lookup begun before the revocation must not cache
        log.info("API token revoked", jti=jti)
        return record
