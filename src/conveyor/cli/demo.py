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


# The job types of the other platforms' documented requests (docs/migrating.md), so each runs
# to completion on a fresh `conveyor dev`.


@app.job("email", queue="email")
async def email(payload: Any) -> dict[str, Any]:
    """Platform A: `POST /jobs {"queue_name": "email", ...}`; the queue names the work."""
    return {"sent": payload}


@app.job("demo")
async def demo(payload: Any) -> Any:
    """Platform B (`{"payload": {"type": "demo", ...}}`) and platform C (`SubmitTask` with raw
    bytes, which come back upper-cased as bytes)."""
    if isinstance(payload, bytes):
        return payload.upper()
    return {"processed": payload}


@app.job("email-notification")
async def email_notification(payload: Any) -> dict[str, Any]:
    """Platform D: `POST /task {"type": "email-notification", "payload": "user@example.com"}`."""
    return {"notified": payload}
