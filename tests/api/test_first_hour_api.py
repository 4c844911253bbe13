"""Issue 18 at the HTTP door (both stores): schedules are created by POST (409 on a taken name)
and created or replaced by PUT; a job type no handler is known for is accepted, as by every
door; a queue with ready jobs and no live worker consuming it is flagged."""

from __future__ import annotations

from datetime import timedelta

import httpx

from conveyor.domain.job import ALL_QUEUES
from conveyor.domain.records import WorkerInfo
from conveyor.store import Store
from tests.api.conftest import assert_problem, snapshot
from tests.helpers import utcnow

NIGHTLY = {"name": "nightly", "cron": "0 3 * * *", "type": "report.build"}


async def test_post_creates_a_schedule_and_refuses_a_taken_name(
    api: httpx.AsyncClient, store: Store
) -> None:
    created = await api.post("/v1/schedules", json=NIGHTLY)
    assert created.status_code == 201, created.text
    before = await snapshot(store)
    again = await api.post("/v1/schedules", json={**NIGHTLY, "cron": "*/5 * * * *"})
    body = assert_problem(again, 409, field="name", code="already_exists")
    assert "nightly" in body["detail"]
    assert await snapshot(store) == before
    assert (await api.get("/v1/schedules/nightly")).json()["cron"] == "0 3 * * *"


async def test_put_creates_then_replaces_a_schedule(api: httpx.AsyncClient) -> None:
    body = {k: v for k, v in NIGHTLY.items() if k != "name"}
    created = await api.put("/v1/schedules/nightly", json=body)
    assert created.status_code == 201, created.text
    replaced = await api.put("/v1/schedules/nightly", json={**body, "cron": "*/5 * * * *"})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["cron"] == "*/5 * * * *"
    assert [s["name"] for s in (await api.get("/v1/schedules")).json()["schedules"]] == ["nightly"]
    bad = await api.put("/v1/schedules/nightly", json={**body, "cron": "every day"})
    assert_problem(bad, 422, field="cron")


async def test_the_server_accepts_a_type_no_handler_is_known_for(api: httpx.AsyncClient) -> None:
    resp = await api.post("/v1/jobs", json={"type": "email.send", "queue": "email"})
    assert resp.status_code == 201, resp.text
    assert resp.json()["status"] == "queued"


def _worker(wid: str, queues: list[str], seen_ago: float = 0.0) -> WorkerInfo:
    now = utcnow()
    return WorkerInfo(
        id=wid,
        hostname="h",
        pid=1,
        queues=queues,
        concurrency=1,
        started_at=now,
        last_seen_at=now - timedelta(seconds=seen_ago),
    )


async def _queues(api: httpx.AsyncClient) -> dict[str, dict[str, object]]:
    resp = await api.get("/v1/queues")
    assert resp.status_code == 200, resp.text
    return {q["name"]: q for q in resp.json()["queues"]}


async def test_queues_flag_ready_jobs_that_no_live_worker_consumes(
    api: httpx.AsyncClient, store: Store
) -> None:
    for queue in ("email", "reports", "paused-one"):
        assert (await api.post("/v1/jobs", json={"type": "t", "queue": queue})).status_code == 201
    await api.patch("/v1/queues/paused-one", json={"paused": True})
    await store.register_worker(_worker("reports-worker", ["reports"]))
    # Heard from long ago: not alive, so it consumes nothing.
    await store.register_worker(_worker("gone", ["email"], seen_ago=3600))

    queues = await _queues(api)
    assert (queues["email"]["unconsumed"], queues["email"]["consumers"]) == (True, 0)
    assert (queues["reports"]["unconsumed"], queues["reports"]["consumers"]) == (False, 1)
    assert queues["paused-one"]["unconsumed"] is False  # paused on purpose
    assert queues["default"]["unconsumed"] is False  # nothing ready
    overview = await api.get("/v1/dashboard/overview")
    assert {q["name"]: q["unconsumed"] for q in overview.json()["queues"]}["email"] is True

    await store.register_worker(_worker("dev", [ALL_QUEUES]))
    queues = await _queues(api)
    assert not any(q["unconsumed"] for q in queues.values())
    assert queues["email"]["consumers"] == 1 and queues["reports"]["consumers"] == 2
