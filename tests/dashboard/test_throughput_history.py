"""The overview's throughput chart is read from the store: jobs finished before the server
started are on it, and a restart loses nothing."""

from __future__ import annotations

import httpx

from conveyor.store import open_store
from tests.helpers import completed_job, dead_job
from tests.observability.stack import Stack


async def finished_last_hour(stack: Stack) -> tuple[int, int]:
    await stack.wait_ready()
    async with httpx.AsyncClient(base_url=stack.api) as http:
        resp = await http.get("/v1/dashboard/overview")
    assert resp.status_code == 200, resp.text
    history = resp.json()["history"]
    assert history["bucket_seconds"] == 60 and len(history["points"]) == 60
    return (
        sum(p["completed"] for p in history["points"]),
        sum(p["dead"] for p in history["points"]),
    )


async def test_history_survives_a_restart(server: Stack) -> None:
    store = open_store(server.store_url)
    await store.connect()
    try:
        for _ in range(3):
            await completed_job(store)
        await dead_job(store)
    finally:
        await store.close()

    assert await finished_last_hour(server) == (3, 1)
    server.stop()
    server.spawn("server", "server", "--port", str(server.api_port))
    assert await finished_last_hour(server) == (3, 1)
