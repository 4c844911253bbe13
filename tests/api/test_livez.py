"""The server answers the liveness probe on /livez, as workers and schedulers do, so one probe
path fits every Conveyor pod; like /healthz it needs no credentials."""

from __future__ import annotations

import httpx
from fastapi import FastAPI


async def test_livez_answers_without_credentials(api_app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=api_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as anonymous:
        resp = await anonymous.get("/livez")
        assert resp.status_code == 200 and resp.json() == {"status": "ok"}
        assert (await anonymous.get("/v1/jobs")).status_code == 401
