"""Apps the first-hour process tests run (`conveyor worker tests.cli.apps:app`)."""

from __future__ import annotations

from conveyor import App
from conveyor.config import Settings

# Built with its own Settings, as a service would: `conveyor worker` must keep them unless the
# environment or a flag says otherwise.
app = App(settings=Settings(concurrency=7, heartbeat_interval=0.2, poll_interval=0.1))


@app.job("cli.echo")
async def echo(payload: dict[str, object]) -> dict[str, object]:
    return payload
