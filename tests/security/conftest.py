from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio
from argon2 import PasswordHasher as Argon2
from argon2 import profiles
from fastapi import FastAPI
from pydantic import SecretStr

from conveyor.api import create_app
from conveyor.config import Settings
from conveyor.domain.records import Role
from conveyor.security.passwords import PasswordHasher
from conveyor.security.tokens import TokenCodec, TokenType
from conveyor.store import Store
from tests.security.keys import TEST_SECRET


@pytest.fixture
def key_prefix() -> str:
    """A unique key prefix per test, so tests never share a window in the real Redis."""
    return f"conveyor-test-{uuid.uuid4().hex[:12]}"


def limiter_settings(**kw: Any) -> Settings:
    return Settings(**kw)


# -- an API app with auth on --------------------------------------------------------------


GENEROUS = "100000/second"


def secure_settings(url: str, **kw: Any) -> Settings:
    base: dict[str, Any] = {
        "store_url": url,
        "api_wait_interval": 0.02,
        "auth_enabled": True,
        "jwt_secret": SecretStr(TEST_SECRET),
        "rate_limit_admin": GENEROUS,
        "rate_limit_user": GENEROUS,
        "rate_limit_worker": GENEROUS,
        "rate_limit_anonymous": GENEROUS,
        "rate_limit_key_prefix": f"conveyor-test-{uuid.uuid4().hex[:12]}",
    }
    base.update(kw)
    return Settings(**base)


def cheap_hasher() -> PasswordHasher:
    """Argon2id at its cheapest: the suite tests the rules, not the KDF's cost (the production
    parameters are exercised by test_auth_service.test_hasher_verifies_and_rejects)."""
    return PasswordHasher(Argon2.from_parameters(profiles.CHEAPEST))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def access_token(
    settings: Settings, role: Role, tenant: str | None = None, name: str | None = None
) -> str:
    token, _ = TokenCodec.from_settings(settings).issue(
        sub=name or f"{role.value}-1",
        role=role,
        tenant=tenant,
        typ=TokenType.ACCESS,
        ttl=300,
    )
    return token


AppFactory = Callable[..., Awaitable[tuple[FastAPI, httpx.AsyncClient]]]


@pytest_asyncio.fixture
async def make_api(store: Store, store_url: str) -> AsyncIterator[AppFactory]:
    """Build an auth-on app over the test store with settings overrides; closed at the end."""
    stack: list[tuple[FastAPI, httpx.AsyncClient, Any]] = []

    async def make(**kw: Any) -> tuple[FastAPI, httpx.AsyncClient]:
        app = create_app(secure_settings(store_url, **kw), store=store)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        if app.state.auth is not None:
            app.state.auth.hasher = cheap_hasher()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
        stack.append((app, client, lifespan))
        return app, client

    try:
        yield make
    finally:
        for _app, client, lifespan in reversed(stack):
            await client.aclose()
            await lifespan.__aexit__(None, None, None)
