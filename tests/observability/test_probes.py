"""The worker/scheduler probe server: /livez and /readyz answer 503 with the reason when a
check fails (or raises), /metrics serves the exposition text."""

from __future__ import annotations

import httpx

from conveyor.runtime.probes import probe_app, store_reachable


async def test_probe_answers() -> None:
    state: dict[str, str | None] = {"live": None, "ready": "store unreachable: boom"}

    async def live() -> str | None:
        return state["live"]

    async def ready() -> str | None:
        if state["ready"] == "raise":
            raise RuntimeError("check crashed")
        return state["ready"]

    transport = httpx.ASGITransport(app=probe_app(live, ready))
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as http:
        assert (await http.get("/livez")).json() == {"status": "ok"}
        resp = await http.get("/readyz")
        assert resp.status_code == 503
        assert resp.json() == {"status": "fail", "detail": "store unreachable: boom"}
        state["live"] = "fetch loop has not run for 90s"
        assert (await http.get("/livez")).status_code == 503
        state["ready"] = "raise"
        resp = await http.get("/readyz")
        assert resp.status_code == 503 and "check crashed" in resp.json()["detail"]
        metrics = await http.get("/metrics")
        assert metrics.status_code == 200 and "conveyor_jobs_started_total" in metrics.text


async def test_store_reachable_times_out_into_a_reason() -> None:
    async def ok() -> None:
        return None

    async def down() -> None:
        raise ConnectionRefusedError("refused")

    assert await store_reachable(ok) is None
    reason = await store_reachable(down)
    assert reason is not None and "ConnectionRefusedError" in reason
