from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
from fastapi import FastAPI

from conveyor.api import create_app
from conveyor.config import Settings
from conveyor.domain.records import Role
from conveyor.security.tokens import TokenCodec, TokenType
from conveyor.store import Store

# Auth stays on here, as in production: these tests call as an admin (tests/security covers
# the other roles and the refusals).
API_TEST_SECRET = "api-tests-secret-0123456789-abcdefghijklmnop"


def api_settings(url: str, **kw: Any) -> Settings:
    base: dict[str, Any] = {
        "store_url": url,
        "api_wait_interval": 0.02,
        "jwt_secret": API_TEST_SECRET,
        # property-based runs send many unauthenticated probes from one "IP"
        "rate_limit_anonymous": "100000/second",
    }
    base.update(kw)
    return Settings(**base)


def admin_headers(settings: Settings) -> dict[str, str]:
    token, _ = TokenCodec.from_settings(settings).issue(
        sub="test-admin", role=Role.ADMIN, tenant=None, typ=TokenType.ACCESS, ttl=3600
    )
    return {"Authorization": f"Bearer {token}"}


@pytest_asyncio.fixture
async def api_app(store: Store, store_url: str) -> AsyncIterator[FastAPI]:
    app = create_app(api_settings(store_url), store=store)
    async with app.router.lifespan_context(app):
        yield app


@pytest_asyncio.fixture
async def api(api_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=api_app)
    headers = admin_headers(api_app.state.settings)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers=headers
    ) as client:
        yield client


async def snapshot(store: Store) -> tuple[Any, ...]:
    """Everything a bad request could have written."""
    return (
        await store.count_by_queue_status(),
        [q.__dict__ for q in await store.list_queue_settings()],
        [(s.name, s.cron, s.enabled) for s in await store.list_schedules()],
    )


def assert_problem(
    resp: httpx.Response, status: int, field: str | None = None, code: str | None = None
) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json"), resp.headers
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:conveyor:problem:")
    assert body["title"] and body["detail"]
    if field is not None:
        assert body["field"] == field, body
    if code is not None:
        assert body["code"] == code, body
    return body
