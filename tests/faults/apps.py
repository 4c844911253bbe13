"""The handlers the fault tests run in real `conveyor worker tests.faults.apps:app` processes.

Each run appends one JSON line when it starts and one when it ends (finished, failed or
cancelled) to the history file named in its payload, opened O_APPEND so lines from many
processes never interleave. A run killed with its process leaves only its start line.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import orjson

from conveyor import App, JobContext

app = App()
POLL = 0.05


def _released(payload: dict[str, Any]) -> bool:
    """A run works for `seconds`, or until the file `release` (when named) exists: a test lets
    the runs it no longer needs finish early."""
    release = payload.get("release")
    return release is not None and os.path.exists(release)


def record(path: str, event: str, ctx: JobContext) -> None:
    line = orjson.dumps(
        {
            "event": event,
            "job": str(ctx.job_id),
            "attempt": ctx.attempt,
            "pid": os.getpid(),
            "at": time.time(),
        }
    )
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, line + b"\n")
    finally:
        os.close(fd)


@app.job("faults.work", timeout=300)
async def work(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Works for `seconds` (async: cancellable), recording its start and end."""
    record(payload["history"], "start", ctx)
    outcome = "cancelled"
    try:
        deadline = time.monotonic() + payload.get("seconds", 0)
        # The release is a file another process makes: polled, there is no event to await.
        while time.monotonic() < deadline and not _released(payload):  # noqa: ASYNC110
            await asyncio.sleep(min(POLL, max(0.0, deadline - time.monotonic())))
        outcome = "finish"
    finally:
        record(payload["history"], outcome, ctx)
    return {"pid": os.getpid(), "attempt": ctx.attempt}


@app.job("faults.sync_work", timeout=300)
def sync_work(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Works for `seconds` in a thread, ignoring cancellation (as most sync code does)."""
    record(payload["history"], "start", ctx)
    deadline = time.monotonic() + payload.get("seconds", 0)
    while time.monotonic() < deadline and not _released(payload):
        time.sleep(min(POLL, max(0.0, deadline - time.monotonic())))
    record(payload["history"], "finish", ctx)
    return {"pid": os.getpid(), "attempt": ctx.attempt}


@app.job("faults.tick", timeout=60)
async def tick(payload: dict[str, Any]) -> None:
    """What a cron schedule fires: nothing to do, the job itself is the record."""
