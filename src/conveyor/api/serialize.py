"""Domain records to JSON bytes, straight from the dataclasses with orjson.

Responses skip pydantic on the way out: building a JobOut per job costs more than the whole
insert on the submit path. The response models in schemas.py document the shape, and the
schema-conformance tests (schemathesis) hold these functions to it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from conveyor.domain.job import WAITING, JobStatus
from conveyor.domain.records import JobEvent, Schedule, WorkerInfo
from conveyor.service.jobs import QueueView
from conveyor.wire import job_out, json_default

__all__ = ["JSONBytes", "event_out", "job_out", "queue_out", "schedule_out", "worker_out"]


class JSONBytes(Response):
    """A JSON response built and sent with no more work than it needs (this is every submit's
    response): the body encoded once by orjson, the two headers written directly."""

    media_type = "application/json"

    def __init__(self, content: Any, status_code: int = 200) -> None:
        self.status_code = status_code
        self.background = None
        self.body = orjson.dumps(content, default=json_default)
        self.raw_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self.body)).encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send({"type": "http.response.body", "body": self.body})
        if self.background is not None:
            await self.background()


def event_out(e: JobEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "job_id": e.job_id,
        "at": e.at,
        "from_status": e.from_status.value if e.from_status else None,
        "to_status": e.to_status.value,
        "attempt": e.attempt,
        "worker_id": e.worker_id,
        "message": e.message,
    }


def queue_out(q: QueueView) -> dict[str, Any]:
    counts = {s.value: int(q.counts.get(s, 0)) for s in JobStatus}
    waiting = {JobStatus.QUEUED, *WAITING}
    return {
        "name": q.settings.name,
        "paused": q.settings.paused,
        "max_depth": q.settings.max_depth,
        "concurrency": q.settings.concurrency,
        "counts": counts,
        "depth": sum(counts[s.value] for s in waiting),
        "consumers": q.consumers,
        "unconsumed": q.unconsumed,
        "transport": None
        if q.held is None
        else {"ready": q.held.ready, "processing": q.held.processing},
    }


def schedule_out(s: Schedule) -> dict[str, Any]:
    return {
        "name": s.name,
        "cron": s.cron,
        "timezone": s.timezone,
        "type": s.type,
        "payload": s.payload,
        "queue": s.queue,
        "priority": s.priority,
        "max_retries": s.max_retries,
        "timeout": float(s.timeout),
        "enabled": s.enabled,
        "next_run_at": s.next_run_at,
        "last_run_at": s.last_run_at,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
    }


def worker_out(w: WorkerInfo, now: datetime) -> dict[str, Any]:
    return {
        "id": w.id,
        "hostname": w.hostname,
        "pid": w.pid,
        "queues": w.queues,
        "concurrency": w.concurrency,
        "running": w.running,
        "started_at": w.started_at,
        "last_seen_at": w.last_seen_at,
        "heartbeat_age": max(0.0, (now - w.last_seen_at).total_seconds()),
        "meta": w.meta,
    }
