"""Handlers for the observability and dashboard tests: quick successes, a job that fails once
then succeeds (a retry), and one that always fails (dead after its retries)."""

from __future__ import annotations

import asyncio
from typing import Any

from conveyor import App, JobContext, NonRetryable

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


@app.job("obs.fail", queue="critical", max_retries=1)
def fail(payload: dict[str, Any]) -> None:
    raise RuntimeError(f"permanent failure for {payload.get('n')}")


@app.job("obs.check", queue="critical", max_retries=0)
def check(payload: dict[str, Any]) -> dict[str, Any]:
    """Dead-letters until an operator fixes the payload (edit-and-requeue in the dashboard)."""
    if not payload.get("fixed"):
        raise NonRetryable(f"order {payload.get('order')} has no shipping address")
    return {"shipped": payload.get("order")}
