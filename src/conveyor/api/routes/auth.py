"""/v1/auth (login, refresh, who am I), /v1/users and /v1/tokens (ADMIN)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from conveyor.api.auth import public, require
from conveyor.api.docs import problems
from conveyor.api.serialize import JSONBytes
from conveyor.domain.errors import ConfigError
from conveyor.domain.records import ApiToken, Role, User
from conveyor.security.policy import Action, Principal
from conveyor.service.auth import AuthService, TokenPair

router = APIRouter(tags=["auth"])


def get_auth(request: Request) -> AuthService:
    auth: AuthService | None = getattr(request.app.state, "auth", None)
    if auth is None:
        raise ConfigError("auth is disabled on this server (CONVEYOR_AUTH_ENABLED=false)")
    return auth


Auth = Annotated[AuthService, Depends(get_auth)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(_In):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class RefreshIn(_In):
    refresh_token: str = Field(min_length=1, max_length=8192)


class TokenPairOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int
    refresh_expires_in: int


class MeOut(BaseModel):
    name: str
    role: Role
    tenant: str | None
    token_type: str | None


class UserIn(_In):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=8, max_length=1024)
    role: Role
    tenant: str | None = Field(default=None, max_length=128)


class UserPatch(_In):
    password: str | None = Field(default=None, min_length=8, max_length=1024)
    role: Role | None = None
    tenant: str | None = Field(default=None, max_length=128)
    disabled: bool | None = None


class UserOut(BaseModel):
    username: str
    role: Role
    tenant: str | None
    disabled: bool
    created_at: datetime | None
    updated_at: datetime | None


class UserList(BaseModel):
    users: list[UserOut]


class TokenIn(_In):
    name: str = Field(min_length=1, max_length=128)
    role: Role
    tenant: str | None = Field(default=None, max_length=128)
    ttl_days: float | None = Field(default=None, gt=0, le=3650)


class TokenOut(BaseModel):
    jti: str
    name: str
    role: Role
    tenant: str | None
    created_by: str | None
    created_at: datetime | None
    expires_at: datetime
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="shown once: only its jti is stored")


class TokenList(BaseModel):
    tokens: list[TokenOut]


def pair_out(p: TokenPair) -> dict[str, Any]:
    return {
        "access_token": p.access_token,
        "refresh_token": p.refresh_token,
        "token_type": p.token_type,
        "expires_in": p.expires_in,
        "refresh_expires_in": p.refresh_expires_in,
    }


def _user(u: User) -> dict[str, Any]:
    # Never the password hash.
    return {
        "username": u.username,
        "role": u.role.value,
        "tenant": u.tenant,
        "disabled": u.disabled,
        "created_at": u.created_at,
        "updated_at": u.updated_at,
    }


def _token(t: ApiToken) -> dict[str, Any]:
    return {
        "jti": t.jti,
        "name": t.name,
        "role": t.role.value,
        "tenant": t.tenant,
        "created_by": t.created_by,
        "created_at": t.created_at,
        "expires_at": t.expires_at,
        "revoked_at": t.revoked_at,
    }


PUBLIC = [Depends(public)]


@router.post(
    "/v1/auth/login",
    response_model=TokenPairOut,
    dependencies=PUBLIC,
    summary="Exchange a username and password for an access and a refresh token",
    responses=problems(401, 422, 429),
)
async def login(body: LoginIn, auth: Auth, request: Request) -> Any:
    # Failed logins are throttled per (username, client address): the peer address as the
    # ASGI server reports it (uvicorn takes X-Forwarded-For only from forwarded_allow_ips).
    address = request.client.host if request.client else "unknown"
    return JSONBytes(pair_out(await auth.login(body.username, body.password, address)))


@router.post(
    "/v1/auth/refresh",
    response_model=TokenPairOut,
    dependencies=PUBLIC,
    summary="Exchange a refresh token for a new pair",
    responses=problems(401, 422),
)
async def refresh(body: RefreshIn, auth: Auth) -> Any:
    return JSONBytes(pair_out(await auth.refresh(body.refresh_token)))


@router.get("/v1/auth/me", response_model=MeOut, summary="Who the token belongs to")
async def me(principal: Annotated[Principal, Depends(require(Action.AUTH_SELF))]) -> Any:
    return JSONBytes(
        {
            "name": principal.name,
            "role": principal.role.value,
            "tenant": principal.tenant,
            "token_type": principal.token_type.value if principal.token_type else None,
        }
    )


UsersAdmin = Annotated[Principal, Depends(require(Action.USERS_ADMIN))]
TokensAdmin = Annotated[Principal, Depends(require(Action.TOKENS_ADMIN))]
Username = Annotated[str, Path(max_length=64)]


@router.get("/v1/users", response_model=UserList, tags=["users"], summary="All users")
async def list_users(auth: Auth, _: UsersAdmin) -> Any:
    return JSONBytes({"users": [_user(u) for u in await auth.list_users()]})


@router.post(
    "/v1/users",
    status_code=201,
    response_model=UserOut,
    tags=["users"],
    summary="Create a user",
    responses=problems(409, 422),
)
async def create_user(body: UserIn, auth: Auth, _: UsersAdmin) -> Any:
    u = await auth.create_user(body.username, body.password, body.role, body.tenant)
    return JSONBytes(_user(u), status_code=201)


@router.patch(
    "/v1/users/{username}",
    response_model=UserOut,
    tags=["users"],
    summary="Change a user's password, role, tenant, or disable it",
    responses=problems(404, 422),
)
async def update_user(username: Username, body: UserPatch, auth: Auth, _: UsersAdmin) -> Any:
    changes = body.model_dump(exclude_unset=True)
    u = await auth.update_user(username, **changes)
    return JSONBytes(_user(u))


@router.get("/v1/tokens", response_model=TokenList, tags=["tokens"], summary="All API tokens")
async def list_tokens(auth: Auth, _: TokensAdmin) -> Any:
    return JSONBytes({"tokens": [_token(t) for t in await auth.list_api_tokens()]})


@router.post(
    "/v1/tokens",
    status_code=201,
    response_model=TokenCreated,
    tags=["tokens"],
    summary="Create a long-lived API token (returned once)",
    responses=problems(422),
)
async def create_token(body: TokenIn, auth: Auth, principal: TokensAdmin) -> Any:
    issued = await auth.create_api_token(
        body.name, body.role, body.tenant, ttl_days=body.ttl_days, created_by=principal.name
    )
    return JSONBytes({**_token(issued.record), "token": issued.token}, status_code=201)


@router.delete(
    "/v1/tokens/{jti}",
    response_model=TokenOut,
    tags=["tokens"],
    summary="Revoke an API token (effective within api_token_cache_seconds everywhere)",
    responses=problems(404, 422),
)
async def revoke_token(jti: Annotated[str, Path(max_length=64)], auth: Auth, _: TokensAdmin) -> Any:
    return JSONBytes(_token(await auth.revoke_api_token(jti)))
