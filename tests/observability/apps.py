"""Handlers for the observability and dashboard tests: quick successes, a job that fails once
then succeeds (a retry), and one that always fails (dead after its retries)."""

from __future__ import annotations

import asyncio
from typing import Any

from conveyor import App, JobContext

app = App()


@app.job("obs.ok")
async def ok(payload: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(float(payload.get("sleep", 0.0)))
    return {"ok": True}


@app.job("obs.flaky")
async def flaky(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    if ctx.attempt == 1:
        raise RuntimeError("transient failure on the first attempt")
    return {"attempt": ctx.attempt}


@app.job("obs.fail", max_retries=1)
def fail(payload: dict[str, Any]) -> None:
    raise RuntimeError(f"permanent failure for {payload.get('n')}")
