"""Apps the process-level tests run with `conveyor worker tests.e2e.apps:<name>`.
The store URL comes from CONVEYOR_STORE_URL, as in production."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from conveyor import App, JobContext

app = App()


@app.job("proc.slow", timeout=60)
async def slow(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Marks that it started (a file per attempt), then works for `seconds`."""
    Path(payload["marker_dir"], f"{ctx.job_id}.{ctx.attempt}").touch()
    await asyncio.sleep(payload["seconds"] if ctx.attempt == 1 else 0)
    return {"attempt": ctx.attempt, "pid_done_at": time.time()}


@app.job("proc.sync_slow", timeout=120)
def sync_slow(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """A sync handler that ignores ctx.cancelled: appends `start <pid> <time>` to its log,
    works for `seconds` on the first attempt, then appends `end <pid> <time>`."""
    log = Path(payload["log"])
    with log.open("a") as f:
        f.write(f"start {os.getpid()} {time.time()!r} {ctx.attempt}\n")
    time.sleep(payload["seconds"] if ctx.attempt == 1 else 0)
    with log.open("a") as f:
        f.write(f"end {os.getpid()} {time.time()!r} {ctx.attempt}\n")
    return {"attempt": ctx.attempt}
