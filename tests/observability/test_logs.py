"""Every log line is one JSON object, whoever logs it (structlog, or the standard library's
logging as uvicorn, asyncpg and conveyor.store.* use it), secrets are redacted in all of
them, a traceback stays inside its line, and a 500 is logged once (issue 19).

Each test runs a fresh interpreter, as `conveyor server` is: logging is process-wide state.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJl"
SECRETS = (JWT, "opaque-bearer-secret123", "hunter2-hunter2")


def run(script: str, tmp_path: Path) -> list[dict[str, Any]]:
    """Run `script` in a fresh interpreter; every line it writes to stderr, parsed as JSON
    (failing the test on any line that is not one JSON object)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines, "nothing was logged"
    events = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            raise AssertionError(
                f"not a JSON line: {line!r}\n--- stderr ---\n{done.stderr}"
            ) from None
        assert isinstance(event, dict), line
        events.append(event)
    for secret in SECRETS:
        assert secret not in done.stderr, f"{secret} was logged:\n{done.stderr}"
    return events


def test_standard_library_logging_is_json_and_redacted(tmp_path: Path) -> None:
    events = run(
        f"""
        import logging, warnings
        import structlog
        from conveyor.runtime.logs import configure_logging

        configure_logging("INFO", "json")
        try:
            1 / 0
        except ZeroDivisionError:
            logging.getLogger("uvicorn.error").error(
                "Exception in ASGI application\\n", exc_info=True
            )
        logging.getLogger("asyncpg").warning(
            "reconnecting with Authorization: Bearer opaque-bearer-secret123 token=%s", "{JWT}"
        )
        logging.getLogger("conveyor.store.postgres").warning("LISTEN failed: %s", "boom")
        logging.getLogger("asyncpg").debug("below the level: not shown")
        warnings.warn("a library warning")
        structlog.get_logger("conveyor.test").info("login", password="hunter2-hunter2")
        """,
        tmp_path,
    )
    by_logger = {e.get("logger"): e for e in events}
    crash = by_logger["uvicorn.error"]
    assert crash["level"] == "error" and crash["timestamp"]
    assert "Traceback (most recent call last)" in crash["exception"]
    assert "ZeroDivisionError" in crash["exception"]
    assert by_logger["asyncpg"]["level"] == "warning"
    assert "[redacted]" in by_logger["asyncpg"]["event"]
    assert by_logger["conveyor.store.postgres"]["event"] == "LISTEN failed: boom"
    assert "a library warning" in by_logger["py.warnings"]["event"]
    assert not any("below the level" in e["event"] for e in events)
    login = next(e for e in events if e["event"] == "login")
    assert login["password"] == "[redacted]"


def test_a_500_under_uvicorn_is_one_json_line(tmp_path: Path) -> None:
    """The route's bug is logged once, by Conveyor, with its traceback in one JSON line; the
    server does not log it again (uvicorn's "Exception in ASGI application")."""
    events = run(
        """
        import asyncio
        import httpx, uvicorn
        from conveyor.api import create_app
        from conveyor.cli.common import http_options
        from conveyor.config import Settings
        from conveyor.runtime.logs import configure_logging
        from conveyor.service.jobs import JobService
        from conveyor.store import open_store

        async def broken(*args, **kwargs):
            raise RuntimeError("the-route-bug")

        async def main():
            settings = Settings(store_url="sqlite:///conveyor.db", auth_enabled=False)
            store = open_store(settings.store_url)
            await store.connect()
            await store.migrate()
            await store.close()
            JobService.list_jobs = broken
            config = uvicorn.Config(
                create_app(settings), host="127.0.0.1", port=0, lifespan="on",
                **http_options(settings, access_log=True),
            )
            server = uvicorn.Server(config)
            task = asyncio.create_task(server.serve())
            for _ in range(500):
                if server.started:
                    break
                await asyncio.sleep(0.01)
            port = server.servers[0].sockets[0].getsockname()[1]
            async with httpx.AsyncClient() as http:
                resp = await http.get(f"http://127.0.0.1:{port}/v1/jobs")
            assert resp.status_code == 500, resp.text
            assert "the-route-bug" not in resp.text
            server.should_exit = True
            await task

        configure_logging("INFO", "json")
        asyncio.run(main())
        """,
        tmp_path,
    )
    crashes = [e for e in events if "the-route-bug" in json.dumps(e)]
    assert len(crashes) == 1, crashes
    (crash,) = crashes
    assert crash["event"] == "unhandled error" and crash["path"] == "/v1/jobs"
    assert "Traceback (most recent call last)" in crash["exception"]
    assert not any("Exception in ASGI application" in e["event"] for e in events)
    # uvicorn's own lines (start-up, the access log) are JSON like the rest.
    assert any(e.get("logger") == "uvicorn.error" for e in events)
    access = [e for e in events if e.get("logger") == "uvicorn.access"]
    assert len(access) == 1 and "/v1/jobs" in access[0]["event"] and "500" in access[0]["event"]


# A script embedding an App that runs one no-op job with a worker; {open} opens the App.
APP_SCRIPT = """
import asyncio, contextlib, io
import conveyor

app = conveyor.App("sqlite:///jobs.db")
done = asyncio.Event()

@app.job("noop")
async def noop(payload, ctx):
    done.set()

async def main():
    {open}
    await app.enqueue("noop", {{}})
    worker = app.worker(concurrency=1)
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(done.wait(), 30)
    worker.stop()
    await task
    await app.close()

asyncio.run(main())
"""


def test_an_app_in_a_script_logs_json_at_info(tmp_path: Path) -> None:
    """A program that embeds an App and configures no logging still gets JSON lines at the
    settings' level: structlog's defaults would print a console line per job run."""
    events = run(APP_SCRIPT.format(open="await app.open(migrate=True)"), tmp_path)
    assert any(e["event"] == "worker started" for e in events), events
    assert all(e["level"] != "debug" for e in events), events


def test_an_app_logs_to_the_stderr_of_the_moment(tmp_path: Path) -> None:
    """Conveyor's lines go to whatever sys.stderr is when they are written, not to the stream
    of the moment logging was set up: an App first opened under a test's capture (closed when
    that test ends) or a redirect_stderr() must not take every later line with it."""
    opened_under_capture = (
        "captured = io.StringIO()\n"
        "    with contextlib.redirect_stderr(captured):\n"
        "        await app.open(migrate=True)\n"
        "    captured.close()"
    )
    events = run(APP_SCRIPT.format(open=opened_under_capture), tmp_path)
    assert any(e["event"] == "worker started" for e in events), events
