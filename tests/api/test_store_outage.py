"""A store outage under a running server: every 503 says when to retry, and no answer carries
the driver's own words (they stay in the log)."""

from __future__ import annotations

import uuid

import httpx
from structlog.testing import capture_logs

from conveyor.api import create_app
from conveyor.domain.errors import StoreUnavailable
from tests.api.conftest import admin_headers, api_settings, assert_problem
from tests.helpers import store_to_take_down


async def test_store_outage_is_a_503_with_retry_after_and_no_driver_detail(
    store_url: str,
) -> None:
    async with store_to_take_down(store_url) as (store, take_down):
        app = create_app(api_settings(store_url), store=store)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            headers = admin_headers(app.state.settings)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://t", headers=headers
            ) as api:
                assert (await api.post("/v1/jobs", json={"type": "t"})).status_code == 201
                detail = await take_down()
                calls = [
                    ("submit (direct)", api.post("/v1/jobs", json={"type": "t"})),
                    ("batch (direct)", api.post("/v1/jobs/batch", json={"jobs": [{"type": "t"}]})),
                    ("list (routed)", api.get("/v1/jobs")),
                    ("get (routed)", api.get(f"/v1/jobs/{uuid.uuid4()}")),
                    ("queues (routed)", api.get("/v1/queues")),
                ]
                with capture_logs() as logs:
                    for what, call in calls:
                        resp = await call
                        body = assert_problem(resp, 503, code="store_unavailable")
                        assert body["detail"] == StoreUnavailable.public_message, what
                        assert 1 <= int(resp.headers["Retry-After"]) <= 2, what
                        # Neither the store's message nor the driver's exception class name.
                        assert detail not in resp.text, what
                        assert "Error" not in resp.text and "Errno" not in resp.text, what
                    ready = await api.get("/readyz")
                    assert_problem(ready, 503)
                    assert 1 <= int(ready.headers["Retry-After"]) <= 2
    # The detail went to the log instead, once per refused call.
    outages = [e for e in logs if e["event"] == "store unavailable"]
    assert len(outages) == len(calls)
    assert all(e["log_level"] == "warning" and e["error"] for e in outages)
