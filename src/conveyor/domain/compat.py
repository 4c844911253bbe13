"""The translation rules of the compatibility surfaces (issue 17): each platform Conveyor
replaces, its status names, and how a job it submits without a type gets one.

Only those surfaces (`conveyor.api.compat`, `conveyor.grpc.taskqueue`) use these names; /v1,
the native gRPC service, the client and the dashboard keep Conveyor's own. docs/migrating.md
tells users the same rules. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conveyor.domain.errors import InvalidInput
from conveyor.domain.job import JobStatus

_S = JobStatus

# Platforms A and B (`/jobs`): pending, processing, completed, failed, dead-lettered. A failed
# attempt waiting for its retry reads `failed`; it reads `pending` again once due.
JOBS_STATUS: Mapping[JobStatus, str] = {
    _S.SCHEDULED: "pending",
    _S.QUEUED: "pending",
    _S.RUNNING: "processing",
    _S.RETRYING: "failed",
    _S.COMPLETED: "completed",
    _S.DEAD: "dead-lettered",
    _S.CANCELLED: "cancelled",
}

# Platform C (`taskqueue.TaskQueueService`): pending -> running -> completed; a failed attempt is
# `failed`, then `pending` again for its retry; a task out of retries stays `failed`.
TASKQUEUE_STATUS: Mapping[JobStatus, str] = {
    _S.SCHEDULED: "pending",
    _S.QUEUED: "pending",
    _S.RUNNING: "running",
    _S.RETRYING: "failed",
    _S.COMPLETED: "completed",
    _S.DEAD: "failed",
    _S.CANCELLED: "cancelled",
}

# Platform D (`/task`, `/stats`): a task is queued, processing, then completed or in the
# dead-letter list.
TASK_STATUS: Mapping[JobStatus, str] = {
    _S.SCHEDULED: "queued",
    _S.QUEUED: "queued",
    _S.RUNNING: "processing",
    _S.RETRYING: "failed",
    _S.COMPLETED: "completed",
    _S.DEAD: "dead_letter",
    _S.CANCELLED: "cancelled",
}


def task_stats(counts: Mapping[JobStatus, int]) -> dict[str, int]:
    """Platform D's `GET /stats` from job counts by status: `pending` is every job waiting to
    run (queued, scheduled, or waiting out a retry's backoff), `processing` the running ones,
    `dead_letter` the dead ones."""
    return {
        "pending": sum(counts.get(s, 0) for s in (_S.QUEUED, _S.SCHEDULED, _S.RETRYING)),
        "processing": counts.get(_S.RUNNING, 0),
        "dead_letter": counts.get(_S.DEAD, 0),
    }


def jobs_type(type: str | None, queue: str | None, payload: Any) -> str:
    """The type of a job submitted on `POST /jobs`, by the documented rule:

    1. an explicit `type` wins;
    2. else a named queue (`queue_name`, platform A) names the work: the type is the queue;
    3. else the payload's `type` member (platform B), which stays in the payload.
    """
    if type is not None:
        return type
    if queue is not None:
        return queue
    if isinstance(payload, dict) and isinstance(payload.get("type"), str):
        return str(payload["type"])
    raise InvalidInput(
        "the job has no type: give `type`, or `queue_name` (the queue names the work), or a "
        "payload object with a string `type` member",
        field="type",
    )
