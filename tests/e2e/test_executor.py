"""What the executor does once it holds a job: timeouts, handler threads, errors that end a job
at once, and payloads and outcomes on their way through the store. None of it depends on how the
job reached the worker, so these run on the store transport only (on both stores); what does
depend on the transport (claiming, ordering, retries and delays coming back, queue rules,
shutdown hand-backs) is in test_worker.py, test_queue_rules.py and test_processes.py, on every
transport."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from conveyor import App, JobContext, JobStatus, NonRetryable
from tests.e2e.test_worker import until_status
from tests.helpers import running


async def test_non_retryable_error_goes_straight_to_dead(app: App) -> None:
    @app.job("fatal", max_retries=10)
    async def fatal(payload: dict[str, Any]) -> None:
        raise NonRetryable("bad payload")

    job = await app.enqueue("fatal", {})
    async with running(app.worker()):
        dead = await until_status(app, job.id, JobStatus.DEAD)
    assert dead.attempt == 1
    assert "non-retryable" in dead.last_error


async def test_timeout_fails_the_attempt(app: App) -> None:
    @app.job("hangs", max_retries=0, timeout=0.2)
    async def hangs(payload: dict[str, Any]) -> None:
        await asyncio.Event().wait()

    job = await app.enqueue("hangs", {})
    async with running(app.worker()):
        dead = await until_status(app, job.id, JobStatus.DEAD)
    assert "timed out after 0.2s" in dead.last_error


async def test_sync_handlers_run_in_threads(app: App) -> None:
    threads: set[str] = set()

    @app.job("sync")
    def sync(payload: dict[str, Any], ctx: JobContext) -> int:
        threads.add(threading.current_thread().name)
        return int(payload["n"]) * 2

    jobs = await app.enqueue_many([app.new_job("sync", {"n": i}) for i in range(20)])
    async with running(app.worker(concurrency=4)):
        for j in jobs:
            await until_status(app, j.id, JobStatus.COMPLETED)
    results = [(await app.store.get_job(j.id)).result for j in jobs]
    assert results == [i * 2 for i in range(20)]
    assert threads and all(t.startswith("conveyor-job") for t in threads)


async def test_a_nul_character_in_an_error_or_a_result_is_kept_alike_on_every_store(
    app: App,
) -> None:
    """PostgreSQL keeps no NUL in text or jsonb: a handler's NUL must not sink the outcome
    batch (and every job in it) there while SQLite keeps it."""

    @app.job("nul.error", max_retries=0)
    async def nul_error(payload: dict[str, Any]) -> None:
        raise RuntimeError("bad\x00byte")

    @app.job("nul.result", max_retries=0)
    async def nul_result(payload: dict[str, Any]) -> dict[str, str]:
        return {"text": "bad\x00byte"}

    @app.job("fine")
    async def fine(payload: dict[str, Any]) -> str:
        return "ok"

    failing = await app.enqueue("nul.error", {})
    returning = await app.enqueue("nul.result", {})
    neighbour = await app.enqueue("fine", {})
    async with running(app.worker()):
        dead = await until_status(app, failing.id, JobStatus.DEAD)
        refused = await until_status(app, returning.id, JobStatus.DEAD)
        done = await until_status(app, neighbour.id, JobStatus.COMPLETED)
    assert "bad\\x00byte" in (dead.last_error or "")
    assert "NUL character" in (refused.last_error or "") and refused.result is None
    assert done.result == "ok"


async def test_handlers_get_any_json_payload_and_bytes_as_bytes(app: App) -> None:
    """App.enqueue takes any JSON value, and bytes (stored as the marker object); a handler
    receives what was enqueued, and a bytes result is kept as the marker (issue 17)."""
    seen: list[Any] = []

    @app.job("echo")
    def echo(payload: Any) -> Any:
        seen.append(payload)
        return payload

    payloads: list[Any] = ["user@example.com", [1, None], 7, None, b"\x00raw\xff"]
    jobs = [await app.enqueue("echo", p) for p in payloads]
    jobs.append(await app.enqueue("echo"))  # left out: {}
    assert jobs[-2].payload == {"$bytes": "AHJhd/8="}  # bytes are stored as the marker
    async with running(app.worker()):
        done = [await until_status(app, j.id, JobStatus.COMPLETED) for j in jobs]
    assert sorted(map(repr, seen)) == sorted(map(repr, [*payloads, {}]))
    assert [d.result for d in done] == [*payloads[:-1], {"$bytes": "AHJhd/8="}, {}]
