"""Lifecycle events on the wire: CloudEvents 1.0 in structured JSON mode, one per outbox row.

`id` is the job id and the outbox number (unique, and the same when the relay publishes a row
again, so consumers dedupe by it); `subject` is the job id, which is also the Kafka key, so a
job's events share a partition and stay in order; `time` is when the transition committed (the
job's updated_at); `data` is the job exactly as the HTTP API shows it (conveyor.wire.job_out).
"""

from __future__ import annotations

from typing import Any

import orjson

from conveyor.domain.events import TYPE_PREFIX, OutboxRow, event_name, event_type
from conveyor.wire import job_out, json_default

SPEC_VERSION = "1.0"
# Below Kafka's default message.max.bytes (1 MiB) and the producer's batch size.
MAX_EVENT_BYTES = 900 * 1024
# The CloudEvents Kafka binding's header for structured mode.
HEADERS = [("content-type", b"application/cloudevents+json; charset=utf-8")]


def cloud_event(row: OutboxRow, source: str) -> dict[str, Any]:
    job = row.job
    subject = str(job.id)
    return {
        "specversion": SPEC_VERSION,
        "id": f"{subject}.{row.seq}",
        "source": source,
        "type": event_type(event_name(row.from_status, job.status)),
        "subject": subject,
        "time": job.updated_at,
        "datacontenttype": "application/json",
        "data": job_out(job),
    }


def encode(event: dict[str, Any], limit: int = MAX_EVENT_BYTES) -> bytes:
    """The event's JSON; one over `limit` bytes (a large payload or result) goes without them,
    marked `conveyortruncated: true`, as one the broker refuses would stop the relay for good
    (the job, whole, is in the store and the API)."""
    value = orjson.dumps(event, default=json_default)
    if len(value) <= limit:
        return value
    data = {**event["data"], "payload": None, "result": None}
    value = orjson.dumps({**event, "data": data, "conveyortruncated": True}, default=json_default)
    if len(value) > limit:  # only last_error is left that can be long
        data["last_error"] = (data.get("last_error") or "")[: limit // 2]
        value = orjson.dumps(
            {**event, "data": data, "conveyortruncated": True}, default=json_default
        )
    return value


def source_for(prefix: str) -> str:
    """The CloudEvents `source` of a deployment: its topic prefix names it."""
    return f"/{prefix}/jobs"


def matches(event: dict[str, Any], *, queue: str | None = None, type: str | None = None) -> bool:
    """The `conveyor events` filters: a queue name, and a type given whole
    (`conveyor.job.dead`) or by its last part (`dead`)."""
    if queue is not None and (event.get("data") or {}).get("queue") != queue:
        return False
    if type is not None:
        wanted = type if type.startswith(TYPE_PREFIX) else event_type(type)
        if event.get("type") != wanted:
            return False
    return True
