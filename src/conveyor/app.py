"""App: the in-process entry point users write against.

    app = conveyor.App("postgresql://…")

    @app.job("email.send", queue="email", max_retries=5, timeout=30)
    async def send(payload, ctx): ...

    await app.enqueue("email.send", {"to": "a@b.c"})

`conveyor worker module:app` imports such an object and runs its handlers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

from conveyor.config import Settings
from conveyor.domain.errors import InvalidInput
from conveyor.domain.job import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_QUEUE,
    DEFAULT_TIMEOUT,
    Job,
    NewJob,
    Payload,
)
from conveyor.domain.limits import MAX_BATCH
from conveyor.domain.payload import to_json
from conveyor.domain.retry import RetryPolicy
from conveyor.runtime.logs import adopt_logging
from conveyor.service.jobs import JobService
from conveyor.service.maintenance import run_maintenance
from conveyor.service.startup import ensure_migrated
from conveyor.store import Store, open_store
from conveyor.transport import Transport, open_transport
from conveyor.worker.executor import Housekeeping, Worker
from conveyor.worker.registry import Registry

F = TypeVar("F", bound=Callable[..., Any])

# A payload left out is {}; None is a payload too (JSON null).
_NO_PAYLOAD: Any = object()


class App:
    def __init__(
        self,
        store_url: str | None = None,
        *,
        settings: Settings | None = None,
        retry_policy: RetryPolicy | None = None,
        check_types: bool = False,
    ) -> None:
        """`check_types`: refuse to enqueue types this app has no handler for (opt-in). By
        default every door follows one rule: any valid type is accepted, and a job whose type
        the worker that claims it does not know is dead-lettered with an error naming the
        types it knows, so `conveyor dev` and `conveyor server` answer a request alike."""
        self.check_types = check_types
        self.settings = settings or Settings()
        if store_url is not None:
            self.settings = self.settings.model_copy(update={"store_url": store_url})
        self.retry_policy = retry_policy
        self.registry = Registry()
        self._store: Store | None = None
        self._transport: Transport | None = None
        self._service: JobService | None = None

    def job(
        self,
        name: str,
        *,
        queue: str = "default",
        max_retries: int = 3,
        timeout: float = 300.0,
        priority: int = 0,
    ) -> Callable[[F], F]:
        """Register a handler taking `(payload)` or `(payload, ctx)`; sync or async."""

        def register(fn: F) -> F:
            self.registry.register(
                name, fn, queue=queue, max_retries=max_retries, timeout=timeout, priority=priority
            )
            return fn

        return register

    # -- store lifecycle ---------------------------------------------------------------
    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("App is not open: use `async with app:` or `await app.open()`")
        return self._store

    @property
    def transport(self) -> Transport:
        """How this app's jobs reach its workers (`Settings.transport`)."""
        if self._transport is None:
            self._transport = open_transport(self.settings)
        return self._transport

    @property
    def service(self) -> JobService:
        if self._service is None:
            known = self.registry.names if self.check_types else None
            self._service = JobService(
                self.store, self.settings, known_types=known, transport=self.transport
            )
        return self._service

    async def open(self, *, migrate: bool = False) -> App:
        """Connect; `migrate` applies pending migrations, else a store without its schema
        raises SchemaMissing (naming the store and the command to run) and stays closed."""
        adopt_logging(self.settings.log_level, self.settings.log_format)
        if self._store is not None:
            if migrate:
                await self._store.migrate()
            return self
        store = open_store(self.settings.store_url, publish_events=self.settings.publishes_events)
        await store.connect()
        try:
            if migrate:
                await store.migrate()
            else:
                await ensure_migrated(store)
        except BaseException:
            await store.close()
            raise
        self._store = store
        return self

    async def close(self) -> None:
        self._service = None
        if self._transport is not None:
            await self._transport.close()
            self._transport = None
        if self._store is not None:
            await self._store.close()
            self._store = None
            self._service = None

    async def __aenter__(self) -> App:
        return await self.open()

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- submitting --------------------------------------------------------------------
    def new_job(
        self,
        type: str,
        payload: Payload = _NO_PAYLOAD,
        *,
        queue: str | None = None,
        priority: int | None = None,
        run_at: datetime | None = None,
        max_retries: int | None = None,
        timeout: float | None = None,
        unique_key: str | None = None,
        tags: Sequence[str] = (),
    ) -> NewJob:
        """A submission with the handler's registered defaults filled in. `payload` is any JSON
        value (bytes become the marker object of conveyor.domain.payload); left out, {}."""
        d = self.registry.get(type)
        return NewJob(
            type=type,
            payload={} if payload is _NO_PAYLOAD else to_json(payload),
            queue=queue or (d.queue if d else "default"),
            priority=priority if priority is not None else (d.priority if d else 0),
            run_at=run_at,
            max_retries=max_retries if max_retries is not None else (d.max_retries if d else 3),
            timeout=timeout if timeout is not None else (d.timeout if d else 300.0),
            unique_key=unique_key,
            tags=list(tags),
        )

    async def enqueue(self, type: str, payload: Payload = _NO_PAYLOAD, **options: Any) -> Job:
        return (await self.service.submit(self.new_job(type, payload, **options))).job

    def _with_registered_defaults(self, job: NewJob) -> NewJob:
        """`job` with each field left at NewJob's default (queue, priority, max_retries,
        timeout) taken from its handler's registration, as `new_job` does: a bulk submit of
        `NewJob("t", …)` lands on the queue where `t`'s workers look."""
        d = self.registry.get(job.type)
        if d is None:
            return job
        return replace(
            job,
            queue=d.queue if job.queue == DEFAULT_QUEUE else job.queue,
            priority=d.priority if job.priority == 0 else job.priority,
            max_retries=d.max_retries
            if job.max_retries == DEFAULT_MAX_RETRIES
            else job.max_retries,
            timeout=d.timeout if job.timeout == DEFAULT_TIMEOUT else job.timeout,
        )

    async def enqueue_many(self, jobs: Sequence[NewJob]) -> list[Job]:
        """Submit any number of jobs, in batches of at most MAX_BATCH (1,000): each batch is
        validated whole and written in one transaction (all or nothing); a batch refused
        stops the call, and the batches before it stay written."""
        filled = [self._with_registered_defaults(j) for j in jobs]
        if not filled:
            raise InvalidInput("no jobs given", field="jobs")
        out: list[Job] = []
        for start in range(0, len(filled), MAX_BATCH):
            chunk = filled[start : start + MAX_BATCH]
            out += [e.job for e in await self.service.submit_many(chunk)]
        return out

    # -- running -----------------------------------------------------------------------
    def worker(
        self,
        *,
        queues: Sequence[str] | None = None,
        concurrency: int | None = None,
        maintenance: Housekeeping | bool = True,
        **kwargs: Any,
    ) -> Worker:
        """A worker on this app's store, through its transport. `maintenance` True (the
        default) also promotes due jobs, reaps expired leases and sweeps the transport, so a
        lone worker needs no scheduler; False: none; or the housekeeping to run instead."""
        housekeeping: Housekeeping | None
        if maintenance is True:
            housekeeping = functools.partial(run_maintenance, self.store, self.transport)
        else:
            housekeeping = maintenance or None
        return Worker(
            self.transport.worker_store(self.store),
            self.registry,
            queues=queues,
            concurrency=concurrency,
            settings=self.settings,
            retry_policy=self.retry_policy,
            maintenance=housekeeping,
            **kwargs,
        )
