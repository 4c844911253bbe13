"""Handler registry: what `@app.job(...)` records."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from conveyor.domain.errors import InvalidInput
from conveyor.domain.job import DEFAULT_MAX_RETRIES, DEFAULT_QUEUE, DEFAULT_TIMEOUT

Handler = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class JobDefinition:
    """A handler and the defaults its jobs are submitted with.

    `wants_context`: handlers may take `(payload)` or `(payload, ctx)`; the signature is
    inspected once here rather than on every call.
    """

    name: str
    handler: Handler
    queue: str = DEFAULT_QUEUE
    max_retries: int = DEFAULT_MAX_RETRIES
    timeout: float = DEFAULT_TIMEOUT
    priority: int = 0
    is_async: bool = False
    wants_context: bool = False


class Registry:
    def __init__(self) -> None:
        self._defs: dict[str, JobDefinition] = {}

    def register(
        self,
        name: str,
        handler: Handler,
        *,
        queue: str = DEFAULT_QUEUE,
        max_retries: int = DEFAULT_MAX_RETRIES,
        timeout: float = DEFAULT_TIMEOUT,
        priority: int = 0,
    ) -> JobDefinition:
        if name in self._defs:
            raise InvalidInput(f"job type {name!r} is already registered", field="type")
        params = [
            p
            for p in inspect.signature(handler).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        if not 1 <= len(params) <= 2:
            raise InvalidInput(
                f"handler for {name!r} must take (payload) or (payload, ctx)", field="type"
            )
        definition = JobDefinition(
            name=name,
            handler=handler,
            queue=queue,
            max_retries=max_retries,
            timeout=timeout,
            priority=priority,
            is_async=inspect.iscoroutinefunction(handler),
            wants_context=len(params) == 2,
        )
        self._defs[name] = definition
        return definition

    def get(self, name: str) -> JobDefinition | None:
        return self._defs.get(name)

    def names(self) -> list[str]:
        return list(self._defs)

    def queues(self) -> list[str]:
        return sorted({d.queue for d in self._defs.values()})

    def __iter__(self) -> Iterator[JobDefinition]:
        return iter(self._defs.values())

    def __len__(self) -> int:
        return len(self._defs)
