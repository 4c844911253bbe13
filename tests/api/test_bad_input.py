"""Every kind of bad request gets a clear 4xx problem+json naming the field, and writes nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from conveyor.api import create_app
from conveyor.domain.job import JobStatus
from conveyor.domain.limits import MAX_DELAY
from conveyor.store import Store
from tests.api.conftest import admin_headers, api_settings, assert_problem, snapshot
from tests.helpers import dead_job

GOOD = {"type": "t"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "t", "bogus": 1}, "bogus"),  # unknown field
        ({}, "type"),
        ({"type": ""}, "type"),
        ({"type": "bad type!"}, "type"),
        ({"type": 5}, "type"),
        ({"type": "t", "payload": ["x" * 300_000]}, "payload"),  # any JSON value, within limits
        ({"type": "t", "payload": "x" * 300_000}, "payload"),
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


# -- issue 19: NUL, ambiguous JSON text, far-off execute_at --------------------------------

NUL = "a\u0000b"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "t", "payload": {"x": NUL}}, "payload"),
        ({"type": "t", "payload": {NUL: 1}}, "payload"),
        ({"type": "t", "payload": {"x": {"y": [1, NUL]}}}, "payload"),
        ({"type": "t", "unique_key": NUL}, "unique_key"),
        ({"type": "t", "queue": NUL}, "queue"),
        ({"type": "t", "tags": [NUL]}, "tags"),
    ],
)
async def test_nul_character_is_a_422_on_every_store(
    api: httpx.AsyncClient, store: Store, body: dict[str, Any], field: str
) -> None:
    """PostgreSQL keeps NUL in neither text nor jsonb (it was a 500 there, and accepted by
    SQLite): refused at validation, alike on both."""
    before = await snapshot(store)
    problem = assert_problem(await api.post("/v1/jobs", json=body), 422, field, "invalid_input")
    if field in ("payload", "unique_key"):  # names refuse it with their syntax rule
        assert "NUL" in problem["detail"], problem
    batch = {"jobs": [GOOD, body]}
    assert_problem(await api.post("/v1/jobs/batch", json=batch), 422, f"jobs[1].{field}")
    assert await snapshot(store) == before


async def test_nul_in_an_idempotency_key_names_the_header(api: httpx.AsyncClient) -> None:
    # The ASGI test transport passes the header as is (a real HTTP parser refuses NUL itself).
    resp = await api.post("/v1/jobs", json=GOOD, headers={"Idempotency-Key": "k\u0000"})
    assert_problem(resp, 422, field="Idempotency-Key")


async def test_nul_in_a_retry_payload_is_a_422_and_the_job_stays_dead(
    api: httpx.AsyncClient, store: Store
) -> None:
    job = await dead_job(store, payload={"x": 1})
    resp = await api.post(f"/v1/jobs/{job.id}/retry", json={"payload": {"x": NUL}})
    assert_problem(resp, 422, field="payload")
    after = await store.get_job(job.id)
    assert after.status == JobStatus.DEAD and after.payload == {"x": 1}


async def test_nul_in_a_schedule_payload_is_a_422(api: httpx.AsyncClient, store: Store) -> None:
    before = await snapshot(store)
    body = {"name": "s", "cron": "* * * * *", "type": "t", "payload": {"x": NUL}}
    assert_problem(await api.post("/v1/schedules", json=body), 422, field="payload")
    assert await snapshot(store) == before
    ok = {"name": "s", "cron": "* * * * *", "type": "t", "payload": {"x": 1}}
    assert (await api.post("/v1/schedules", json=ok)).status_code == 201
    before = await snapshot(store)
    patch = {"payload": {"x": {NUL: True}}}
    assert_problem(await api.patch("/v1/schedules/s", json=patch), 422, field="payload")
    assert await snapshot(store) == before
    assert (await store.get_schedule("s")).payload == {"x": 1}


async def test_an_escaped_backslash_before_u0000_is_not_a_nul(
    api: httpx.AsyncClient, store: Store
) -> None:
    """The six characters \\u0000 (a backslash, then u0000) are ordinary text."""
    payload = {"path": "C:\\u0000\\dir", "\\u0000": "key"}
    resp = await api.post("/v1/jobs", json={"type": "t", "payload": payload})
    assert resp.status_code == 201, resp.text
    assert (await store.get_job(uuid.UUID(resp.json()["id"]))).payload == payload


@pytest.mark.parametrize(
    ("url", "content"),
    [
        ("/v1/jobs", b'{"type": "a", "type": "b"}'),
        ("/v1/jobs", b'{"type": "t", "payload": {"x": 1, "y": 2, "x": 3}}'),
        ("/v1/jobs", b'{"type": "t", "payload": {"n": {"k": 1, "k": 1}}}'),
        ("/v1/jobs", b'{"type": "t", "\\u0074ype": "u"}'),  # the same key, written escaped
        ("/v1/jobs", b'{"type": "t", "payload": {"a": "x\\"y", "a": 2}}'),
        ("/v1/jobs", b'{"type": "t", "payload": {"a": NaN, "a": 2}}'),
        ("/v1/jobs/batch", b'{"jobs": [{"type": "t"}, {"type": "t", "queue": "a", "queue": "b"}]}'),
        ("/v1/jobs/batch", b'{"jobs": [{"type": "t"}], "jobs": [{"type": "u"}]}'),
        ("/v1/schedules", b'{"name": "s", "cron": "* * * * *", "type": "t", "type": "u"}'),
        ("/v1/auth/login", b'{"username": "a", "username": "b", "password": "p"}'),
    ],
)
async def test_duplicate_keys_are_a_400(
    api: httpx.AsyncClient, store: Store, url: str, content: bytes
) -> None:
    """Parsers disagree on duplicate keys (first wins, last wins, error): refused, not read
    one way here and another way by the caller's own tools."""
    before = await snapshot(store)
    resp = await api.post(url, content=content, headers={"content-type": "application/json"})
    problem = assert_problem(resp, 400, code="malformed_json")
    assert problem["title"] == "Malformed JSON"
    assert "twice" in problem["detail"]
    assert await snapshot(store) == before


async def test_repeated_keys_in_different_objects_are_fine(api: httpx.AsyncClient) -> None:
    body = {"jobs": [{"type": "t", "payload": {"a": {"a": 1}}}, {"type": "t", "payload": {"a": 2}}]}
    assert (await api.post("/v1/jobs/batch", json=body)).status_code == 201


JOB_TEXT = '{"type": "t", "payload": {"name": "Zo\u00eb"}}'


@pytest.mark.parametrize(
    ("url", "content"),
    [
        ("/v1/jobs", JOB_TEXT.encode("utf-16")),  # with its byte order mark
        ("/v1/jobs", JOB_TEXT.encode("utf-16-le")),
        ("/v1/jobs", JOB_TEXT.encode("utf-16-be")),
        ("/v1/jobs", JOB_TEXT.encode("utf-32")),
        ("/v1/jobs", b"\xef\xbb\xbf" + JOB_TEXT.encode()),  # UTF-8 with a byte order mark
        ("/v1/jobs", JOB_TEXT.encode("latin-1")),
        ("/v1/jobs/batch", f'{{"jobs": [{JOB_TEXT}]}}'.encode("utf-16")),
        ("/v1/schedules", '{"name": "s", "cron": "* * * * *", "type": "t"}'.encode("utf-16")),
        ("/v1/schedules", b'\xef\xbb\xbf{"name": "s", "cron": "* * * * *", "type": "t"}'),
    ],
)
async def test_json_that_is_not_utf8_is_a_400(
    api: httpx.AsyncClient, store: Store, url: str, content: bytes
) -> None:
    """RFC 8259 section 8.1: JSON between systems is UTF-8, without a byte order mark."""
    before = await snapshot(store)
    resp = await api.post(url, content=content, headers={"content-type": "application/json"})
    problem = assert_problem(resp, 400, code="malformed_json")
    assert "UTF-8" in problem["detail"]
    assert await snapshot(store) == before


async def test_utf8_json_is_read_as_utf8(api: httpx.AsyncClient, store: Store) -> None:
    resp = await api.post(
        "/v1/jobs", content=JOB_TEXT.encode(), headers={"content-type": "application/json"}
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["payload"] == {"name": "Zo\u00eb"}


def _rfc3339(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    "execute_at",
    ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "horizon+1d", "horizon-1d"],
)
async def test_execute_at_beyond_the_delay_horizon_is_a_422(
    api: httpx.AsyncClient, store: Store, execute_at: str
) -> None:
    """execute_at has the horizon delay has (MAX_DELAY, about ten years), past or future."""
    beyond = timedelta(seconds=MAX_DELAY, days=1)
    if execute_at == "horizon+1d":
        execute_at = _rfc3339(datetime.now(UTC) + beyond)
    elif execute_at == "horizon-1d":
        execute_at = _rfc3339(datetime.now(UTC) - beyond)
    before = await snapshot(store)
    body = {"type": "t", "execute_at": execute_at}
    problem = assert_problem(await api.post("/v1/jobs", json=body), 422, "execute_at")
    assert "ten years" in problem["detail"]
    batch = {"jobs": [GOOD, body]}
    assert_problem(await api.post("/v1/jobs/batch", json=batch), 422, "jobs[1].execute_at")
    assert await snapshot(store) == before


async def test_execute_at_within_the_horizon_is_accepted(api: httpx.AsyncClient) -> None:
    now = datetime.now(UTC)
    for when in (now + timedelta(days=9 * 365), now - timedelta(days=1)):
        resp = await api.post("/v1/jobs", json={"type": "t", "execute_at": _rfc3339(when)})
        assert resp.status_code == 201, resp.text
