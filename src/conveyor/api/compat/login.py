"""`POST /login` (platform A): a username and password for a JWT, exactly /v1/auth/login
(same throttling of failures), with the access token also under `token`, the name platform
A's clients read."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from conveyor.api.auth import public
from conveyor.api.docs import problems
from conveyor.api.routes.auth import Auth, LoginIn, TokenPairOut, pair_out
from conveyor.api.serialize import JSONBytes

router = APIRouter(tags=["compatibility"])


class CompatTokenOut(TokenPairOut):
    token: str = Field(description="the access token again (platform A's name for it)")


@router.post(
    "/login",
    response_model=CompatTokenOut,
    dependencies=[Depends(public)],
    summary="Log in (platform A): a JWT for a username and password",
    responses=problems(401, 422, 429),
)
async def login(body: LoginIn, auth: Auth, request: Request) -> Any:
    address = request.client.host if request.client else "unknown"
    pair = pair_out(await auth.login(body.username, body.password, address))
    return JSONBytes({"token": pair["access_token"], **pair})
