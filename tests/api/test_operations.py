"""Queues, dead letters, schedules, workers and probes over HTTP, against both stores."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from conveyor.domain.records import WorkerInfo
from conveyor.store import Store
from tests.api.conftest import assert_problem
from tests.helpers import dead_job, running_job


async def test_queues_show_depth_and_take_settings(api: httpx.AsyncClient, store: Store) -> None:
    await api.post("/v1/jobs", json={"type": "t", "queue": "email"})
    await api.post("/v1/jobs", json={"type": "t", "queue": "email", "delay": 60})
    queues = {q["name"]: q for q in (await api.get("/v1/queues")).json()["queues"]}
    assert set(queues) >= {"default", "email"}
    email = queues["email"]
    assert email["counts"]["queued"] == 1 and email["counts"]["scheduled"] == 1
    assert email["depth"] == 2 and email["paused"] is False

    resp = await api.patch("/v1/queues/email", json={"paused": True, "max_depth": 2})
    assert resp.status_code == 200, resp.text
    assert resp.json()["paused"] is True and resp.json()["max_depth"] == 2
    assert (await store.get_queue_settings("email")).paused is True
    full = await api.post("/v1/jobs", json={"type": "t", "queue": "email"})
    assert_problem(full, 429, code="queue_full")
    assert int(full.headers["retry-after"]) >= 1
    resp = await api.patch("/v1/queues/email", json={"paused": False, "max_depth": None})
    assert resp.json()["paused"] is False and resp.json()["max_depth"] is None


async def test_dead_letter_queue(api: httpx.AsyncClient, store: Store) -> None:
    a = await dead_job(store)
    b = await dead_job(store)
    c = await dead_job(store)
    live = (await api.post("/v1/jobs", json={"type": "t"})).json()
    dead = (await api.get("/v1/dead")).json()["jobs"]
    assert {j["id"] for j in dead} == {str(a.id), str(b.id), str(c.id)}

    resp = await api.post("/v1/dead/requeue", json={"ids": [str(a.id), live["id"]]})
    body = resp.json()
    assert [j["id"] for j in body["requeued"]] == [str(a.id)]
    assert [(f["id"], f["code"]) for f in body["failed"]] == [(live["id"], "illegal_transition")]

    resp = await api.post("/v1/dead/discard", json={"ids": [str(b.id), live["id"]]})
    assert resp.json() == {"discarded": 1}
    assert [j["id"] for j in (await api.get("/v1/dead")).json()["jobs"]] == [str(c.id)]


async def test_schedule_lifecycle(api: httpx.AsyncClient) -> None:
    body = {
        "name": "nightly",
        "expression": "0 3 * * *",
        "timezone": "Europe/Paris",
        "type": "report.build",
        "payload": {"kind": "daily"},
        "queue": "reports",
    }
    resp = await api.post("/v1/schedules", json=body)
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["cron"] == "0 3 * * *" and created["next_run_at"] is not None
    assert [s["name"] for s in (await api.get("/v1/schedules")).json()["schedules"]] == ["nightly"]
    resp = await api.patch("/v1/schedules/nightly", json={"enabled": False, "cron": "0 4 * * *"})
    assert resp.json()["enabled"] is False and resp.json()["cron"] == "0 4 * * *"
    assert (await api.get("/v1/schedules/nightly")).json()["enabled"] is False

    job = await api.post("/v1/schedules/nightly/trigger")
    assert job.status_code == 201
    assert job.json()["type"] == "report.build" and job.json()["queue"] == "reports"
    assert job.json()["payload"] == {"kind": "daily"}

    assert (await api.delete("/v1/schedules/nightly")).status_code == 204
    for resp in (
        await api.get("/v1/schedules/nightly"),
        await api.delete("/v1/schedules/nightly"),
        await api.post("/v1/schedules/nightly/trigger"),
    ):
        assert_problem(resp, 404, code="schedule_not_found")


async def test_workers_are_listed(api: httpx.AsyncClient, store: Store) -> None:
    now = datetime.now(UTC)
    await store.register_worker(
        WorkerInfo(
            id="w1", hostname="h", pid=1, queues=["default"], concurrency=4,
            started_at=now, last_seen_at=now,
        )
    )  # fmt: skip
    await running_job(store, worker_id="w1")
    await store.touch_worker("w1", 1)
    (w,) = (await api.get("/v1/workers")).json()["workers"]
    assert w["id"] == "w1" and w["concurrency"] == 4 and w["running"] == 1
    assert 0 <= w["heartbeat_age"] < 60


async def test_probes(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    assert (await api.get("/readyz")).json() == {"status": "ok"}
    spec = (await api.get("/openapi.json")).json()
    assert "/v1/jobs" in spec["paths"] and "Problem" in spec["components"]["schemas"]
    assert (await api.get("/docs")).status_code == 200
