"""Every kind of bad request gets a clear 4xx problem+json naming the field, and writes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from conveyor.api import create_app
from conveyor.store import Store
from tests.api.conftest import admin_headers, api_settings, assert_problem, snapshot

GOOD = {"type": "t"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "t", "bogus": 1}, "bogus"),  # unknown field
        ({}, "type"),
        ({"type": ""}, "type"),
        ({"type": "bad type!"}, "type"),
        ({"type": 5}, "type"),
        ({"type": "t", "payload": [1, 2]}, "payload"),
        ({"type": "t", "payload": "x"}, "payload"),
        ({"type": "t", "payload": {"big": "x" * 300_000}}, "payload"),
        ({"type": "t", "priority": 10**12}, "priority"),
        ({"type": "t", "priority": "5"}, "priority"),
        ({"type": "t", "priority": 1.5}, "priority"),
        ({"type": "t", "max_retries": -1}, "max_retries"),
        ({"type": "t", "max_retries": True}, "max_retries"),
        ({"type": "t", "timeout": 0}, "timeout"),
        ({"type": "t", "timeout": -5}, "timeout"),
        ({"type": "t", "timeout": 1e12}, "timeout"),
        ({"type": "t", "delay": -1}, "delay"),
        ({"type": "t", "delay": 1e300}, "delay"),
        ({"type": "t", "execute_at": "tomorrow"}, "execute_at"),
        ({"type": "t", "execute_at": "2030-01-01T00:00:00"}, "execute_at"),  # no offset
        ({"type": "t", "execute_at": 1893456000}, "execute_at"),  # epoch number
        ({"type": "t", "execute_at": "2030-02-30T00:00:00Z"}, "execute_at"),
        ({"type": "t", "execute_at": "2030-01-01T00:00:00Z", "delay": 5}, "delay"),
        ({"type": "t", "queue": "bad queue"}, "queue"),
        ({"type": "t", "unique_key": ""}, "unique_key"),
        ({"type": "t", "tags": ["ok", "not ok"]}, "tags"),
        ({"type": "t", "tags": [f"t{i}" for i in range(40)]}, "tags"),
    ],
)
async def test_bad_job_is_422(
    api: httpx.AsyncClient, store: Store, body: dict[str, Any], field: str
) -> None:
    before = await snapshot(store)
    resp = await api.post("/v1/jobs", json=body)
    problem = assert_problem(resp, 422, code="invalid_input")
    assert problem["field"] == field or problem["field"].startswith(field + "["), problem
    assert await snapshot(store) == before


async def test_non_finite_numbers_are_refused(api: httpx.AsyncClient, store: Store) -> None:
    before = await snapshot(store)
    for raw in (b'{"type": "t", "payload": {"x": NaN}}', b'{"type": "t", "timeout": Infinity}'):
        resp = await api.post("/v1/jobs", content=raw, headers={"content-type": "application/json"})
        assert_problem(resp, 422)
    assert await snapshot(store) == before


async def test_idempotency_key_errors_name_the_header(api: httpx.AsyncClient) -> None:
    resp = await api.post("/v1/jobs", json=GOOD, headers={"Idempotency-Key": "k" * 300})
    assert_problem(resp, 422, field="Idempotency-Key")


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "malformed_json"),
        (b"", "application/json", 422, "invalid_input"),
        (b"[1, 2]", "application/json", 422, "invalid_input"),
        (b'{"type": "t"}', "text/plain", 415, "unsupported_media_type"),
        (b'{"type": "t"}', "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b'{"type": "t"}', "", 415, "unsupported_media_type"),
    ],
)
async def test_malformed_requests(
    api: httpx.AsyncClient,
    store: Store,
    content: bytes,
    content_type: str,
    status: int,
    code: str,
) -> None:
    before = await snapshot(store)
    headers = {"content-type": content_type} if content_type else {}
    resp = await api.post("/v1/jobs", content=content, headers=headers)
    assert_problem(resp, status, code=code)
    assert await snapshot(store) == before


async def test_body_over_the_limit_is_413(store: Store, store_url: str) -> None:
    app = create_app(api_settings(store_url, api_max_body_bytes=1000), store=store)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = admin_headers(app.state.settings)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers=headers
        ) as api:
            before = await snapshot(store)
            body = {"type": "t", "payload": {"x": "y" * 2000}}
            assert_problem(await api.post("/v1/jobs", json=body), 413, code="payload_too_large")

            async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked
                yield b'{"type": "t", "payload": {"x": "'
                yield b"y" * 2000
                yield b'"}}'

            resp = await api.post(
                "/v1/jobs", content=chunks(), headers={"content-type": "application/json"}
            )
            assert_problem(resp, 413)
            assert await snapshot(store) == before


async def test_batch_is_all_or_nothing(api: httpx.AsyncClient, store: Store) -> None:
    before = await snapshot(store)
    jobs = [GOOD, GOOD, {"type": "t", "timeout": -1}]
    assert_problem(await api.post("/v1/jobs/batch", json={"jobs": jobs}), 422, "jobs[2].timeout")
    jobs = [GOOD, {"type": "t", "delay": 1, "execute_at": "2030-01-01T00:00:00Z"}]
    assert_problem(await api.post("/v1/jobs/batch", json={"jobs": jobs}), 422, "jobs[1].delay")
    assert_problem(await api.post("/v1/jobs/batch", json={"jobs": []}), 422, "jobs")
    assert_problem(await api.post("/v1/jobs/batch", json={"jobs": [GOOD] * 1001}), 422, "jobs")
    assert_problem(await api.post("/v1/jobs/batch", json={"jobs": [GOOD], "x": 1}), 422, "x")
    assert await snapshot(store) == before


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/v1/jobs/not-a-uuid", "job_id"),
        ("/v1/jobs/not-a-uuid/events", "job_id"),
        ("/v1/jobs?limit=100000", "limit"),
        ("/v1/jobs?limit=0", "limit"),
        ("/v1/jobs?limit=-3", "limit"),
        ("/v1/jobs?cursor=nope", "cursor"),
        ("/v1/jobs?status=sleeping", "status"),
        ("/v1/jobs?created_after=yesterday", "created_after"),
        ("/v1/jobs?created_before=2030-01-01T00:00:00", "created_before"),
        ("/v1/jobs?queue=%00", "queue"),
        ("/v1/dead?limit=501", "limit"),
    ],
)
async def test_bad_query_or_path(api: httpx.AsyncClient, url: str, field: str) -> None:
    assert_problem(await api.get(url), 422, field=field)


@pytest.mark.parametrize("wait", ["-1", "nan", "inf", "1e9", "soon"])
async def test_bad_wait(api: httpx.AsyncClient, wait: str) -> None:
    job = (await api.post("/v1/jobs", json=GOOD)).json()
    assert_problem(await api.get(f"/v1/jobs/{job['id']}?wait={wait}"), 422, field="wait")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "s", "cron": "not a cron", "type": "t"}, "cron"),
        ({"name": "s", "cron": "99 * * * *", "type": "t"}, "cron"),
        ({"name": "s", "cron": "* * * * *", "timezone": "Nowhere/X", "type": "t"}, "timezone"),
        ({"name": "bad name", "cron": "* * * * *", "type": "t"}, "name"),
        ({"name": "s", "cron": "* * * * *", "type": "t", "priority": -(10**9)}, "priority"),
        ({"name": "s", "cron": "* * * * *", "type": "t", "extra": 1}, "extra"),
        ({"name": "s", "type": "t"}, "cron"),
    ],
)
async def test_bad_schedule(
    api: httpx.AsyncClient, store: Store, body: dict[str, Any], field: str
) -> None:
    before = await snapshot(store)
    assert_problem(await api.post("/v1/schedules", json=body), 422, field=field)
    assert await snapshot(store) == before


async def test_bad_schedule_patch(api: httpx.AsyncClient, store: Store) -> None:
    body = {"name": "s", "cron": "* * * * *", "type": "t"}
    assert (await api.post("/v1/schedules", json=body)).status_code == 201
    before = await snapshot(store)
    for patch, field in [
        ({"cron": "61 * * * *"}, "cron"),
        ({"expression": None}, "expression"),
        ({"timezone": None}, "timezone"),
        ({"enabled": "yes"}, "enabled"),
        ({"name": "other"}, "name"),
    ]:
        assert_problem(await api.patch("/v1/schedules/s", json=patch), 422, field=field)
    assert_problem(await api.patch("/v1/schedules/missing", json={}), 404)
    assert await snapshot(store) == before


async def test_bad_queue_patch(api: httpx.AsyncClient, store: Store) -> None:
    before = await snapshot(store)
    for patch, field in [
        ({"paused": "yes"}, "paused"),
        ({"paused": None}, "paused"),
        ({"max_depth": 0}, "max_depth"),
        ({"concurrency": -1}, "concurrency"),
        ({"speed": 3}, "speed"),
    ]:
        assert_problem(await api.patch("/v1/queues/default", json=patch), 422, field=field)
    assert_problem(await api.patch("/v1/queues/bad%20name", json={"paused": True}), 422, "queue")
    assert await snapshot(store) == before


async def test_bad_dead_letter_bodies(api: httpx.AsyncClient, store: Store) -> None:
    before = await snapshot(store)
    assert_problem(await api.post("/v1/dead/requeue", json={"ids": []}), 422, "ids")
    assert_problem(await api.post("/v1/dead/requeue", json={"ids": ["x"]}), 422, "ids[0]")
    assert_problem(await api.post("/v1/dead/discard", json={"ids": ["x"] * 1001}), 422, "ids")
    assert await snapshot(store) == before


async def test_unknown_routes_and_methods(api: httpx.AsyncClient) -> None:
    assert_problem(await api.get("/v1/nothing"), 404, code="not_found")
    resp = await api.delete("/v1/jobs")
    assert_problem(resp, 405, code="method_not_allowed")
    assert resp.headers["allow"] == "GET, POST"
    resp = await api.get("/v1/jobs/batch")
    assert_problem(resp, 405)
    assert resp.headers["allow"] == "POST"


async def test_unknown_query_parameter_is_refused(api: httpx.AsyncClient, store: Store) -> None:
    before = await snapshot(store)
    resp = await api.get("/v1/jobs", params={"stauts": "dead"})
    problem = assert_problem(resp, 422, code="invalid_input")
    assert problem["field"] == "stauts"
    assert "unknown query parameter" in problem["detail"]
    assert await snapshot(store) == before
