"""OutcomeBatcher: handlers finish one at a time, the store hears about them in batches.

Flushes are at least `max_delay` apart unless `max_batch` outcomes are waiting, so a busy
worker writes one statement per ~100 jobs; an outcome arriving after a quiet spell (no flush
for `max_delay`) is written at once. Waiting for company only pays when company is coming:
at 200 jobs/s (one job per `max_delay`), holding each lone completion for `max_delay` merely
moved its statement and commit onto the next job's arrival and claim. Outcomes are kept (and
their leases heart-beaten) until a flush succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable

import structlog

from conveyor.domain.records import Completion, Failure, Release
from conveyor.worker.store import WorkerStore

Outcome = Completion | Failure | Release
log = structlog.get_logger("conveyor.worker")


class OutcomeBatcher:
    def __init__(
        self,
        store: WorkerStore,
        *,
        max_batch: int = 100,
        max_delay: float = 0.005,
        on_flushed: Callable[[list[Outcome], set[uuid.UUID]], None] | None = None,
    ) -> None:
        self.store = store
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.on_flushed = on_flushed
        self._pending: list[Outcome] = []
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._closing = False
        self._flushed_at = float("-inf")  # loop time of the last flush's start

    def add(self, outcome: Outcome) -> None:
        self._pending.append(outcome)
        self._arrived.set()
        if len(self._pending) >= self.max_batch:
            self._full.set()

    def pending_ids(self) -> set[uuid.UUID]:
        return {o.job_id for o in self._pending}

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while not (self._closing and not self._pending):
            await self._arrived.wait()
            wait = self._flushed_at + self.max_delay - loop.time()
            if wait > 0 and not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), wait)
            self._flushed_at = loop.time()
            await self.flush()

    async def close(self) -> None:
        """Flush everything still pending; the caller awaits `run()` to finish."""
        self._closing = True
        self._arrived.set()
        self._full.set()  # no waiting out the delay

    async def flush(self) -> None:
        batch, self._pending = self._pending, []
        self._arrived.clear()
        self._full.clear()
        if not batch:
            return
        completions = [o for o in batch if isinstance(o, Completion)]
        failures = [o for o in batch if isinstance(o, Failure)]
        releases = [o for o in batch if isinstance(o, Release)]
        applied: set[uuid.UUID] = set()
        delay = 0.05
        while True:
            try:
                if completions:
                    applied.update(await self.store.complete_many(completions))
                    completions = []
                if failures:
                    applied.update(await self.store.fail_many(failures))
                    failures = []
                if releases:
                    applied.update(await self.store.release_many(releases))
                    releases = []
                break
            except Exception:
                # The store is unreachable: keep the outcomes and try again; the leases stay
                # heart-beaten meanwhile, so nothing is lost or run twice needlessly.
                log.exception("flushing job outcomes failed; retrying", retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        if self.on_flushed is not None:
            self.on_flushed(batch, applied)
