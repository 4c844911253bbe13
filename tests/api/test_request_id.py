"""Every response names its request: the caller's (or the gateway's) X-Request-ID, or a new one."""

from __future__ import annotations

import httpx


async def test_the_callers_request_id_comes_back(api: httpx.AsyncClient) -> None:
    resp = await api.post(
        "/v1/jobs", json={"type": "t.rid"}, headers={"X-Request-ID": "gw-0123abcd"}
    )
    assert resp.status_code == 201, resp.text
    assert resp.headers["x-request-id"] == "gw-0123abcd"
    problem = await api.get("/v1/jobs/not-an-id", headers={"X-Request-ID": "gw-err-1"})
    assert problem.status_code in (404, 422)
    assert problem.headers["x-request-id"] == "gw-err-1"


async def test_a_request_without_one_gets_a_fresh_id(api: httpx.AsyncClient) -> None:
    first = (await api.get("/healthz")).headers["x-request-id"]
    second = (await api.get("/healthz", headers={"X-Request-ID": "bad id"})).headers["x-request-id"]
    assert len(first) == 32 and len(second) == 32 and first != second
