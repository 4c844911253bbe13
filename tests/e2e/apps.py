"""Apps the process-level tests run with `conveyor worker tests.e2e.apps:<name>`.
The store URL comes from CONVEYOR_STORE_URL, as in production."""

from __future__ import annotations

import asyncio
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
