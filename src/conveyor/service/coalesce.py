"""SubmitCoalescer: concurrent single submits share one store round trip and one commit.

Each submit on PostgreSQL costs a commit, and a commit costs a WAL flush: measured on the
dev VM, single-job submits top out near 700/s while batches of 1,000 reach ~11,000 jobs/s.
Submits that arrive while a batch is being written wait for it and go together in the next
one ("natural batching"). Each caller still gets its own result: a batch the store refuses
as a whole (e.g. one job's queue is full) is retried job by job, so one job's problem never
becomes its neighbours'.

Under concurrent load the writer also lingers a moment (`linger`; the service passes
`Settings.submit_linger`, 5 ms) before each batch, so batches grow: a group commit, like
PostgreSQL's own commit_delay, and for the same reason. Measured at 2,000 submits/s over
HTTP, batches grew from ~3 to ~16 jobs and PostgreSQL's CPU per job halved, which on a
shared machine cut the tail latency more than the linger adds to the median. It applies only
when the previous batch had company: an idle server, or one seeing one submit at a time,
writes every submit at once.
"""

from __future__ import annotations

import asyncio

from conveyor.domain.errors import ConveyorError
from conveyor.domain.job import NewJob
from conveyor.domain.records import Enqueued
from conveyor.store.base import Store


class SubmitCoalescer:
    def __init__(self, store: Store, *, max_batch: int = 500, linger: float = 0.0) -> None:
        self.store = store
        self.max_batch = max_batch
        self.linger = linger
        self._pending: list[tuple[NewJob, asyncio.Future[Enqueued]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, job: NewJob) -> Enqueued:
        fut: asyncio.Future[Enqueued] = asyncio.get_running_loop().create_future()
        self._pending.append((job, fut))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        return await fut

    async def _write(self) -> None:
        crowded = False  # did the previous batch have company?
        while self._pending:
            if crowded and self.linger > 0 and len(self._pending) < self.max_batch:
                await asyncio.sleep(self.linger)
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            crowded = len(batch) > 1
            try:
                results = await self.store.enqueue_many([job for job, _ in batch])
            except ConveyorError as exc:
                if len(batch) == 1:
                    _fail(batch[0][1], exc)
                    continue
                for job, fut in batch:
                    await self._one(job, fut)
            except Exception as exc:  # the store is down: every caller hears it
                for _, fut in batch:
                    _fail(fut, exc)
            else:
                for (_, fut), result in zip(batch, results, strict=True):
                    if not fut.done():
                        fut.set_result(result)

    async def _one(self, job: NewJob, fut: asyncio.Future[Enqueued]) -> None:
        try:
            (result,) = await self.store.enqueue_many([job])
        except Exception as exc:
            _fail(fut, exc)
        else:
            if not fut.done():
                fut.set_result(result)


def _fail(fut: asyncio.Future[Enqueued], exc: BaseException) -> None:
    if not fut.done():  # a caller that gave up (client disconnected) is not told
        fut.set_exception(exc)
