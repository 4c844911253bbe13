"""Demo handlers for `conveyor dev`: something to watch succeed, retry and die."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from conveyor.app import App
from conveyor.domain.retry import NonRetryable
from conveyor.worker.context import JobContext

app = App()


@app.job("demo.echo")
async def echo(payload: dict[str, Any]) -> dict[str, Any]:
    return {"echo": payload}


@app.job("demo.sleep", timeout=120)
async def sleep(payload: dict[str, Any], ctx: JobContext) -> dict[str, float]:
    seconds = float(payload.get("seconds", 1.0))
    await asyncio.sleep(seconds)
    return {"slept": seconds}


@app.job("demo.flaky", max_retries=5)
def flaky(payload: dict[str, Any], ctx: JobContext) -> str:
    """Fails with probability `p` (default 0.5): shows retries with backoff."""
    if random.random() < float(payload.get("p", 0.5)):
        raise RuntimeError(f"flaky failure on attempt {ctx.attempt}")
    return "ok"


@app.job("demo.fail", max_retries=1)
def fail(payload: dict[str, Any]) -> None:
    """Always fails: lands in the dead-letter queue."""
    if payload.get("fatal"):
        raise NonRetryable("refusing this payload")
    raise RuntimeError("this job always fails")
