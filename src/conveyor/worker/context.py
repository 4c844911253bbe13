"""What a handler can see of the job it runs."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import structlog


class JobContext:
    """Built for every job, so cheap: the logger and the cancel flag are made on first use."""

    __slots__ = (
        "_cancelled",
        "_log",
        "attempt",
        "job_id",
        "max_retries",
        "queue",
        "type",
        "worker_id",
    )

    def __init__(
        self,
        *,
        job_id: uuid.UUID,
        type: str,
        queue: str,
        attempt: int,
        max_retries: int,
        worker_id: str,
    ) -> None:
        self.job_id = job_id
        self.type = type
        self.queue = queue
        self.attempt = attempt
        self.max_retries = max_retries
        self.worker_id = worker_id
        self._log: Any = None
        self._cancelled: threading.Event | None = None

    @property
    def log(self) -> Any:
        """A structlog logger carrying job_id, type, queue, attempt and worker_id."""
        if self._log is None:
            self._log = structlog.get_logger("conveyor.job").bind(
                job_id=str(self.job_id),
                job_type=self.type,
                queue=self.queue,
                attempt=self.attempt,
                worker_id=self.worker_id,
            )
        return self._log

    @property
    def cancelled(self) -> threading.Event:
        """Set when the job was cancelled, timed out or its lease was lost. Long handlers (sync
        ones especially: a thread cannot be interrupted) should check it and return early."""
        if self._cancelled is None:
            self._cancelled = threading.Event()
        return self._cancelled

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt > self.max_retries

    def __repr__(self) -> str:
        return f"JobContext(job_id={self.job_id}, type={self.type!r}, attempt={self.attempt})"
