"""Jobs over HTTP, against both stores."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from conveyor.domain.job import Job, JobStatus
from conveyor.domain.records import Completion
from conveyor.store import Store
from tests.api.conftest import assert_problem
from tests.helpers import dead_job, running_job, wait_until

JOB_FIELDS = {
    "id", "queue", "type", "payload", "priority", "status", "run_at", "attempt", "max_retries",
    "timeout", "unique_key", "tags", "tenant", "result", "last_error", "worker_id",
    "lease_expires_at", "created_at", "started_at", "finished_at", "updated_at",
}  # fmt: skip


async def test_submit_returns_the_job(api: httpx.AsyncClient, store: Store) -> None:
    resp = await api.post(
        "/v1/jobs",
        json={
            "type": "email.send",
            "payload": {"to": "ada@example.com"},
            "queue_name": "email",
            "priority": 5,
            "max_retries": 7,
            "timeout": 12.5,
            "tags": ["welcome"],
        },
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert set(body) == JOB_FIELDS  # lease_token is never shown
    assert body["status"] == "queued"
    assert (body["queue"], body["priority"], body["max_retries"]) == ("email", 5, 7)
    assert body["timeout"] == 12.5 and body["tags"] == ["welcome"]
    stored = await store.get_job(uuid.UUID(body["id"]))
    assert stored.payload == {"to": "ada@example.com"}


async def test_execute_at_and_delay_schedule_the_job(api: httpx.AsyncClient) -> None:
    at = datetime.now(UTC) + timedelta(hours=1)
    resp = await api.post("/v1/jobs", json={"type": "t", "execute_at": at.isoformat()})
    assert resp.status_code == 201
    assert resp.json()["status"] == "scheduled"
    run_at = datetime.fromisoformat(resp.json()["run_at"])
    assert abs((run_at - at).total_seconds()) < 0.01
    resp = await api.post("/v1/jobs", json={"type": "t", "delay": 60})
    assert resp.json()["status"] == "scheduled"


async def test_unique_key_and_idempotency_key_return_the_live_job(
    api: httpx.AsyncClient,
) -> None:
    first = await api.post("/v1/jobs", json={"type": "t", "unique_key": "k"})
    again = await api.post("/v1/jobs", json={"type": "t", "unique_key": "k"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    h = {"Idempotency-Key": "req-1"}
    one = await api.post("/v1/jobs", json={"type": "t"}, headers=h)
    two = await api.post("/v1/jobs", json={"type": "t"}, headers=h)
    assert (one.status_code, two.status_code) == (201, 200)
    assert one.json()["id"] == two.json()["id"]


async def test_batch_submits_all(api: httpx.AsyncClient, store: Store) -> None:
    jobs = [{"type": "t", "payload": {"i": i}} for i in range(50)]
    jobs.append({"type": "t", "unique_key": "u"})
    jobs.append({"type": "t", "unique_key": "u"})
    resp = await api.post("/v1/jobs/batch", json={"jobs": jobs})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert len(body["jobs"]) == 52
    assert body["created"] == [True] * 51 + [False]
    assert [j["payload"].get("i") for j in body["jobs"][:50]] == list(range(50))
    counts = await store.count_by_queue_status()
    assert counts["default"][JobStatus.QUEUED] == 51


async def test_get_and_long_poll(
    api: httpx.AsyncClient, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = await running_job(store)
    resp = await api.get(f"/v1/jobs/{job.id}")
    assert resp.status_code == 200 and resp.json()["status"] == "running"

    reads: list[JobStatus] = []
    get_job = store.get_job

    async def counted(job_id: uuid.UUID) -> Job:
        read = await get_job(job_id)
        reads.append(read.status)
        return read

    monkeypatch.setattr(store, "get_job", counted)

    async def finish() -> None:
        # Once the request has seen the job running, it is waiting: complete the job then.
        await wait_until(lambda: JobStatus.RUNNING in reads, message="the long poll's first read")
        await store.complete_many([Completion(job.id, job.lease_token, {"ok": True})])

    task = asyncio.create_task(finish())
    resp = await api.get(f"/v1/jobs/{job.id}", params={"wait": 5})
    await task
    assert resp.json()["status"] == "completed" and resp.json()["result"] == {"ok": True}
    assert reads[0] == JobStatus.RUNNING and reads[-1] == JobStatus.COMPLETED


async def test_long_poll_returns_the_job_at_the_deadline(api: httpx.AsyncClient) -> None:
    job = (await api.post("/v1/jobs", json={"type": "t"})).json()
    resp = await api.get(f"/v1/jobs/{job['id']}", params={"wait": 0.1})
    assert resp.status_code == 200 and resp.json()["status"] == "queued"


async def test_list_filters_and_pages(api: httpx.AsyncClient) -> None:
    for i in range(7):
        await api.post("/v1/jobs", json={"type": "a" if i % 2 else "b", "tags": [f"n{i}"]})
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/v1/jobs", params=params)).json()
        seen += [j["id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 7
    assert seen == sorted(seen, reverse=True)  # newest first
    only_a = (await api.get("/v1/jobs", params={"type": "a"})).json()["jobs"]
    assert len(only_a) == 3
    tagged = (await api.get("/v1/jobs", params={"tag": "n4"})).json()["jobs"]
    assert [j["tags"] for j in tagged] == [["n4"]]
    queued = (await api.get("/v1/jobs", params={"status": "queued", "queue": "default"})).json()
    assert len(queued["jobs"]) == 7
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await api.get("/v1/jobs", params={"created_after": future})).json()["jobs"] == []


async def test_events_cancel_and_retry(api: httpx.AsyncClient, store: Store) -> None:
    job = (await api.post("/v1/jobs", json={"type": "t"})).json()
    resp = await api.post(f"/v1/jobs/{job['id']}/cancel")
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
    events = (await api.get(f"/v1/jobs/{job['id']}/events")).json()["events"]
    assert [(e["from_status"], e["to_status"]) for e in events] == [
        (None, "queued"),
        ("queued", "cancelled"),
    ]
    assert_problem(await api.post(f"/v1/jobs/{job['id']}/cancel"), 409, code="illegal_transition")

    dead = await dead_job(store)
    resp = await api.post(f"/v1/jobs/{dead.id}/retry", json={"payload": {"fixed": True}})
    assert resp.status_code == 200
    assert resp.json()["status"] == "queued" and resp.json()["payload"] == {"fixed": True}
    assert_problem(await api.post(f"/v1/jobs/{dead.id}/retry"), 409, code="illegal_transition")


async def test_unknown_job_is_404(api: httpx.AsyncClient) -> None:
    missing = uuid.uuid4()
    for resp in (
        await api.get(f"/v1/jobs/{missing}"),
        await api.get(f"/v1/jobs/{missing}/events"),
        await api.post(f"/v1/jobs/{missing}/cancel"),
        await api.post(f"/v1/jobs/{missing}/retry"),
    ):
        assert_problem(resp, 404, code="job_not_found")


ANY_JSON = ["user@example.com", [1, "two", None], 42, 2.5, True, None, {}]


async def test_payload_may_be_any_json_value(api: httpx.AsyncClient, store: Store) -> None:
    for payload in ANY_JSON:
        resp = await api.post("/v1/jobs", json={"type": "t", "payload": payload})
        assert resp.status_code == 201, resp.text
        assert resp.json()["payload"] == payload
        assert (await store.get_job(uuid.UUID(resp.json()["id"]))).payload == payload
        got = await api.get(f"/v1/jobs/{resp.json()['id']}")
        assert got.json()["payload"] == payload
    batch = await api.post(
        "/v1/jobs/batch", json={"jobs": [{"type": "t", "payload": p} for p in ANY_JSON]}
    )
    assert batch.status_code == 201, batch.text
    assert [j["payload"] for j in batch.json()["jobs"]] == ANY_JSON
    assert (await api.post("/v1/jobs", json={"type": "t"})).json()["payload"] == {}  # default


async def test_a_dead_job_is_requeued_with_any_json_payload(
    api: httpx.AsyncClient, store: Store
) -> None:
    dead = await dead_job(store, payload={"x": 1})
    resp = await api.post(f"/v1/jobs/{dead.id}/retry", json={"payload": ["fixed"]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["payload"] == ["fixed"]
