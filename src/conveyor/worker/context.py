"""What a handler can see of the job it runs."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import structlog


@dataclass(slots=True)
class JobContext:
    job_id: uuid.UUID
    type: str
    queue: str
    attempt: int
    max_retries: int
    worker_id: str
    log: Any = field(repr=False)  # structlog BoundLogger carrying job_id/type/queue/attempt
    # Set when the job was cancelled or its lease lost; long handlers (sync ones especially, as
    # a thread cannot be interrupted) should check it and return early.
    cancelled: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt > self.max_retries

    @classmethod
    def bind(
        cls,
        *,
        job_id: uuid.UUID,
        type: str,
        queue: str,
        attempt: int,
        max_retries: int,
        worker_id: str,
    ) -> JobContext:
        log = structlog.get_logger("conveyor.job").bind(
            job_id=str(job_id), job_type=type, queue=queue, attempt=attempt, worker_id=worker_id
        )
        return cls(job_id, type, queue, attempt, max_retries, worker_id, log)
