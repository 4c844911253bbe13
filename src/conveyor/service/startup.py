"""Start-up against a store that may not answer yet: long-running processes (`conveyor server`,
`worker`, `scheduler`) wait for it with capped backoff instead of exiting, which under an
orchestrator would be a crash loop. One-shot commands (`conveyor migrate`, `dev`) still fail
fast: they should say what is wrong."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from conveyor.domain.errors import StoreUnavailable
from conveyor.domain.retry import retry_until_ok
from conveyor.security.redact import redact_text
from conveyor.store.base import Store
from conveyor.store.location import schema_missing

log = structlog.get_logger("conveyor.startup")

Connect = Callable[[], Awaitable[object]]


async def until_store_answers(
    connect: Connect,
    *,
    store_url: str,
    stop: asyncio.Event | None = None,
    retrying: asyncio.Event | None = None,
) -> bool:
    """Call `connect` until the store answers (True), retrying StoreUnavailable with capped,
    jittered backoff and one log line per failed attempt; False if `stop` was set first.
    Any other error (bad credentials, a bad URL) propagates. `retrying` is set at the first
    failed attempt."""
    where = redact_text(store_url)
    failed = 0

    def on_retry(attempt: int, delay: float, exc: BaseException) -> None:
        nonlocal failed
        failed = attempt
        log.warning(
            "store unreachable; retrying",
            store=where,
            attempt=attempt,
            retry_in=round(delay, 2),
            error=redact_text(getattr(exc, "message", None) or str(exc)),
        )
        if retrying is not None:
            retrying.set()

    ok = await retry_until_ok(connect, retry_on=(StoreUnavailable,), on_retry=on_retry, stop=stop)
    if ok and failed:
        log.info("store reachable", store=where, attempts=failed + 1)
    return ok


async def connect_soon(connect: Connect, *, store_url: str) -> asyncio.Task[bool] | None:
    """Connect now if the store answers (None); otherwise return the task that keeps trying in
    the background, so a server can serve (/healthz 200, /readyz and store calls 503) in the
    meantime. The caller cancels that task before closing the store."""
    retrying = asyncio.Event()
    task = asyncio.create_task(
        until_store_answers(connect, store_url=store_url, retrying=retrying),
        name="conveyor-store-connect",
    )
    flagged = asyncio.create_task(retrying.wait())
    try:
        await asyncio.wait({task, flagged}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        flagged.cancel()
    if task.done():
        task.result()  # connected, or an error that is not worth retrying
        return None
    return task


async def stop_connecting(task: asyncio.Task[bool] | None) -> None:
    """Cancel a background `connect_soon` task and wait for it to end."""
    if task is None or task.done():
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        if (current := asyncio.current_task()) is not None and current.cancelling():
            raise


async def ensure_migrated(store: Store) -> None:
    """Raise SchemaMissing (naming the store and the command to run) unless every migration
    is applied: without it the first query fails with a driver's "no such table"."""
    pending = await store.pending_migrations()
    if pending:
        raise schema_missing(store.url, len(pending))
