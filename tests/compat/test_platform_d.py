"""Platform D (Redis reliable queue, HTML dashboard): `POST /task` with a payload that is any
JSON value (202 Accepted), `GET /stats`, and `GET /` the dashboard. Bodies verbatim from
issue 17."""

from __future__ import annotations

from typing import Any

from conveyor.domain.records import Role
from tests.compat.conftest import Stack, StackFactory, read_until

TASK = {"type": "email-notification", "payload": "user@example.com"}


async def test_task_with_a_string_payload_runs_to_completion(stack: Stack) -> None:
    async with stack.http(stack.token()) as client:
        resp = await client.post("/task", json=TASK)
        assert resp.status_code == 202, resp.text
        accepted = resp.json()
        assert set(accepted) == {"status", "task_id"} and accepted["status"] == "queued"

        stats = await client.get("/stats")
        assert stats.status_code == 200
        assert set(stats.json()) == {"pending", "processing", "dead_letter"}
        assert all(isinstance(n, int) and n >= 0 for n in stats.json().values())

        async def read() -> dict[str, Any]:
            r = await client.get(f"/task/{accepted['task_id']}")
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            return body

        done = await read_until(read, "completed")
        assert done["payload"] == "user@example.com"
        assert done["result"] == {"notified": "user@example.com"}
        assert (await client.get("/stats")).json() == {
            "pending": 0,
            "processing": 0,
            "dead_letter": 0,
        }
        # The same job through /v1: the payload is the JSON string it was sent as.
        v1 = (await client.get(f"/v1/jobs/{accepted['task_id']}")).json()
        assert v1["payload"] == "user@example.com" and v1["status"] == "completed"

    async with stack.http() as browser:
        page = await browser.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]


async def test_stats_count_dead_letters_and_need_the_queue_reading_right(stack: Stack) -> None:
    async with stack.http(stack.token()) as admin:
        resp = await admin.post("/task", json={"type": "demo.fail", "payload": {"fatal": True}})
        task_id = resp.json()["task_id"]

        async def read() -> dict[str, Any]:
            body: dict[str, Any] = (await admin.get(f"/task/{task_id}")).json()
            return body

        await read_until(read, "dead_letter")
        assert (await admin.get("/stats")).json()["dead_letter"] == 1
    async with stack.http(stack.token(Role.USER, "acme")) as user:
        refused = await user.get("/stats")  # counts span tenants: ADMIN only, as /v1/queues
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")


async def test_anonymous_tasks_when_mapped_to_an_admin(make_stack: StackFactory) -> None:
    stack = await make_stack(compat_anonymous="admin")
    async with stack.http() as client:
        resp = await client.post("/task", json=TASK)
        assert resp.status_code == 202, resp.text
        assert (await client.get("/stats")).status_code == 200


async def test_a_full_queue_answers_429_as_v1_does(stack: Stack) -> None:
    await stack.service.update_queue("held", {"max_depth": 1})  # no worker listens to it
    held = {**TASK, "queue": "held"}
    async with stack.http(stack.token()) as client:
        assert (await client.post("/task", json=held)).status_code == 202
        full = await client.post("/task", json=held)
    assert full.status_code == 429 and int(full.headers["Retry-After"]) >= 1
    assert full.headers["content-type"].startswith("application/problem+json")
    assert full.json()["code"] == "queue_full"
