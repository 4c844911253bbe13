"""The submit routes answered by the front gate's direct handlers behave exactly like the
FastAPI routes of the same paths (which still answer whatever a direct handler declines)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from conveyor.api import create_app
from conveyor.api.routes import jobs
from conveyor.domain.records import Role
from conveyor.security.tokens import TokenCodec, TokenType
from conveyor.service.jobs import JobService
from conveyor.store import Store
from tests.api.conftest import admin_headers, api_settings, assert_problem

# Answers that carry ids or times differ by nature; everything else must match.
_VARYING = {"id", "run_at", "created_at", "updated_at", "unique_key"}


def requests(prefix: str) -> list[tuple[str, dict[str, str], Any]]:
    """Submissions to replay; keys carry `prefix` so that two passes over one store don't meet."""
    k, i = f"{prefix}-k1", f"{prefix}-i1"
    return [
        ("/v1/jobs", {}, {"type": "a.b", "payload": {"n": 1}, "queue": "q", "priority": 5}),
        ("/v1/jobs", {}, {"type": "a.b", "queue_name": "q2", "delay": 30, "tags": ["x"]}),
        ("/v1/jobs", {}, {"type": "a.b", "unique_key": k}),
        ("/v1/jobs", {}, {"type": "a.b", "unique_key": k}),  # the repeat: 200, the same job
        ("/v1/jobs", {"Idempotency-Key": i}, {"type": "a.b"}),
        ("/v1/jobs", {"Idempotency-Key": i}, {"type": "a.b"}),
        ("/v1/jobs", {"Idempotency-Key": "x" * 300}, {"type": "a.b"}),  # the service refuses
        ("/v1/jobs", {}, {"type": "bad type!"}),
        ("/v1/jobs", {}, {"type": "a.b", "payload": {"x": float("nan")}}),
        ("/v1/jobs", {}, {"type": "a.b", "surprise": 1}),
        ("/v1/jobs", {}, {"type": "a.b", "execute_at": "yesterday"}),
        ("/v1/jobs", {}, {"type": "a.b", "execute_at": "2030-01-01T00:00:00Z", "delay": 1}),
        ("/v1/jobs", {}, "not json"),
        ("/v1/jobs", {}, []),
        ("/v1/jobs?queue=q", {}, {"type": "a.b"}),  # unknown query parameter
        ("/v1/jobs", {"Authorization": "Bearer nope"}, {"type": "a.b"}),
        ("/v1/jobs", {"Authorization": "Basic eDp5"}, {"type": "a.b"}),
        ("/v1/jobs", {"Authorization": ANONYMOUS}, {"type": "a.b"}),
        ("/v1/jobs", {"Authorization": ANONYMOUS}, "{not json"),  # 400 for anyone
        ("/v1/jobs", {"Authorization": ANONYMOUS}, {"type": "a.b", "surprise": 1}),
        ("/v1/jobs", {"Authorization": WORKER}, {"type": "a.b"}),
        ("/v1/jobs", {"Authorization": WORKER}, "{not json"),
        ("/v1/jobs/batch", {"Authorization": WORKER}, {"jobs": [{"type": "a.b"}]}),
        ("/v1/jobs/batch", {}, {"jobs": [{"type": "a.b"}, {"type": "c.d", "queue": "q"}]}),
        ("/v1/jobs/batch", {}, {"jobs": [{"type": "a.b"}, {"type": "c.d", "timeout": -1}]}),
        ("/v1/jobs/batch", {}, {"jobs": []}),
        ("/v1/jobs/batch", {}, {"jobs": [{"type": "a.b", "unique_key": k}]}),
    ]


ANONYMOUS = "<no Authorization header>"
WORKER = "<a WORKER's token>"


def comparable(value: Any) -> Any:
    """An answer without what differs by nature (ids, times, the per-pass keys)."""
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items() if k not in _VARYING}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


async def answers(app: FastAPI, prefix: str) -> list[tuple[int, Any]]:
    transport = httpx.ASGITransport(app=app)
    base = {"Content-Type": "application/json", **admin_headers(app.state.settings)}
    worker, _ = TokenCodec.from_settings(app.state.settings).issue(
        sub="w", role=Role.WORKER, tenant=None, typ=TokenType.ACCESS, ttl=3600
    )
    out = []
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for path, headers, body in requests(prefix):
            content = body if isinstance(body, str) else json.dumps(body)  # NaN stays NaN
            sent = {**base, **headers}
            if sent["Authorization"] == ANONYMOUS:
                del sent["Authorization"]
            elif sent["Authorization"] == WORKER:
                sent["Authorization"] = f"Bearer {worker}"
            r = await client.post(path, content=content, headers=sent)
            out.append((r.status_code, comparable(r.json())))
    return out


async def test_direct_and_routed_submits_answer_alike(store: Store, store_url: str) -> None:
    results = {}
    for direct in (False, True):
        with pytest.MonkeyPatch.context() as mp:
            if not direct:
                mp.setattr(jobs, "DIRECT", {})
            app = create_app(api_settings(store_url), store=store)
        async with app.router.lifespan_context(app):
            results[direct] = await answers(app, prefix=str(direct))
    routed = results[False]
    assert [status for status, _ in routed] == [
        201, 201, 201, 200, 201, 200, 422, 422, 422, 422, 422, 422, 400, 422, 422, 401, 401,
        401, 400, 401, 403, 400, 403,
        201, 422, 422, 201,
    ]  # fmt: skip
    assert results[True] == routed


async def test_a_bug_in_a_direct_handler_is_a_problem_500(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, store: Store
) -> None:
    async def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(JobService, "submit", broken)
    r = await api.post("/v1/jobs", json={"type": "a.b"})
    body = assert_problem(r, 500, code="internal_error")
    assert "boom" not in r.text and body["detail"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
