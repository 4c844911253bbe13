"""/readyz is 503 (problem+json) when the store is unmigrated or gone; /healthz stays 200."""

from __future__ import annotations

import httpx

from conveyor.api import create_app
from conveyor.store import open_store
from tests.api.conftest import api_settings, assert_problem


async def test_unmigrated_store_is_not_ready(store_url: str) -> None:
    store = open_store(store_url)
    await store.connect()
    app = create_app(api_settings(store_url), store=store)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as api:
                assert (await api.get("/healthz")).status_code == 200
                body = assert_problem(await api.get("/readyz"), 503, code="not_ready")
                assert "migrate" in body["detail"]
                await store.close()  # the store goes away entirely
                assert_problem(await api.get("/readyz"), 503)
    finally:
        await store.close()
