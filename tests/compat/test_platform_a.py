"""Platform A (Kafka + PostgreSQL + Redis, JWT): `POST /login` for a JWT, then `POST /jobs`
with a queue name and no type: the queue names the work. Bodies verbatim from issue 17."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from conveyor.domain.records import Role
from conveyor.service.auth import AuthService
from tests.compat.conftest import Stack, read_until

JOB = {"queue_name": "email", "payload": {"id": 1}, "execute_at": "2026-05-20T10:00:00Z"}


async def test_login_then_submit_by_queue_name_runs_to_completion(stack: Stack) -> None:
    await AuthService(stack.service.store, stack.settings).create_user(
        "alice", "correct horse battery", Role.USER, tenant="acme"
    )
    async with stack.http() as anonymous:
        login = await anonymous.post(
            "/login", json={"username": "alice", "password": "correct horse battery"}
        )
        assert login.status_code == 200, login.text
        token = login.json()["token"]
        assert token == login.json()["access_token"] and token.count(".") == 2  # a JWT

        refused = await anonymous.post("/jobs", json=JOB)  # no token, and auth is on
        assert refused.status_code == 401
        assert refused.headers["content-type"].startswith("application/problem+json")

    async with stack.http(token) as client:
        resp = await client.post("/jobs", json=JOB)
        assert resp.status_code == 201, resp.text
        job = resp.json()
        assert job["type"] == "email" and job["queue_name"] == "email"  # the queue names it
        assert job["payload"] == {"id": 1}
        assert job["status"] == "pending" and job["id"] == job["job_id"]
        # execute_at has passed on this clock: the job is due at once.
        assert datetime.now(UTC) > datetime(2026, 5, 20, 10, tzinfo=UTC)

        async def read() -> dict[str, Any]:
            r = await client.get(f"/jobs/{job['id']}")
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            return body

        done = await read_until(read, "completed")
    assert done["result"] == {"sent": {"id": 1}}
    assert done["attempts"] == 1 and done["completed_at"] is not None
    assert (await stack.service.get(uuid.UUID(job["id"]))).tenant == "acme"  # as on /v1


async def test_a_user_of_another_tenant_cannot_read_the_job(stack: Stack) -> None:
    async with stack.http(stack.token(Role.USER, "acme")) as acme:
        made = (await acme.post("/jobs", json=JOB)).json()
    async with stack.http(stack.token(Role.USER, "globex")) as globex:
        resp = await globex.get(f"/jobs/{made['id']}")
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/problem+json")
