"""Conveyor: distributed job processing for Python.

The names below are the public API. `App`, `Client` and `AsyncClient` load on first use, so
`import conveyor.client` (or `from conveyor import Client`) brings in no server package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from conveyor.domain.errors import (
    ConveyorError,
    IllegalTransition,
    InvalidInput,
    JobNotFound,
    QueueFull,
    ScheduleNotFound,
)
from conveyor.domain.job import Job, JobStatus, NewJob
from conveyor.domain.retry import NonRetryable, RetryPolicy

if TYPE_CHECKING:
    from conveyor.app import App
    from conveyor.client import AsyncClient, Client
    from conveyor.worker.context import JobContext

_LAZY = {
    "App": "conveyor.app",
    "AsyncClient": "conveyor.client",
    "Client": "conveyor.client",
    "JobContext": "conveyor.worker.context",
}

__all__ = [
    "App",
    "AsyncClient",
    "Client",
    "ConveyorError",
    "IllegalTransition",
    "InvalidInput",
    "Job",
    "JobContext",
    "JobNotFound",
    "JobStatus",
    "NewJob",
    "NonRetryable",
    "QueueFull",
    "RetryPolicy",
    "ScheduleNotFound",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'conveyor' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
