"""The app the Kafka worker-process tests run (`conveyor worker tests.kafka.apps:app`)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from conveyor import App, JobContext

app = App()


@app.job("k.mark", timeout=60)
async def mark(payload: dict[str, Any], ctx: JobContext) -> None:
    """Appends `<job id> <attempt> <pid>` to the file `log` (one write of a short line with
    O_APPEND, so lines of several processes never interleave), then sleeps `sleep` seconds."""
    fd = os.open(payload["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{ctx.job_id} {ctx.attempt} {os.getpid()}\n".encode())
    finally:
        os.close(fd)
    await asyncio.sleep(payload.get("sleep", 0))
