"""Wire messages to domain records and back. Pure translation: every rule is the service's.

JSON travels as UTF-8 text in `bytes` fields (see proto/conveyor/v1/jobs.proto for why);
times as google.protobuf.Timestamp, always UTC; ids as canonical UUID text.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from google.protobuf.timestamp_pb2 import Timestamp

from conveyor.domain.errors import InvalidInput
from conveyor.domain.job import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_QUEUE,
    DEFAULT_TIMEOUT,
    Job,
    JobStatus,
    NewJob,
)
from conveyor.domain.limits import duplicate_key, run_at_from
from conveyor.grpc.gen.conveyor.v1 import jobs_pb2 as pb

STATUS_TO_PB: dict[JobStatus, pb.JobStatus.ValueType] = {
    s: pb.JobStatus.Value(f"JOB_STATUS_{s.name}") for s in JobStatus
}
STATUS_FROM_PB: dict[int, JobStatus] = {v: k for k, v in STATUS_TO_PB.items()}


# -- scalars ----------------------------------------------------------------------------------
def ts(value: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(value.astimezone(UTC))
    return t


def from_ts(value: Timestamp) -> datetime:
    return value.ToDatetime(tzinfo=UTC)


def job_id(text: str, field: str = "id") -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise InvalidInput(f"{field} must be a UUID (got {text[:64]!r})", field=field) from None


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_fallback)


def _fallback(value: Any) -> str:
    if isinstance(value, uuid.UUID):  # asyncpg's own UUID class
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def loads(raw: bytes, field: str, *, empty: Any = None, unique_keys: bool = False) -> Any:
    """Parse JSON text; `empty` stands for a field left unset. Refuses text that is not JSON
    (orjson reads UTF-8 only, without a byte order mark), so a malformed payload is
    INVALID_ARGUMENT rather than a surprise in a handler; with `unique_keys` (a caller's input),
    also an object with a key twice, which parsers read differently (the HTTP door refuses
    such a body too)."""
    if not raw:
        return empty
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{field} is not valid JSON: {exc}", field=field) from None
    if unique_keys:
        key = duplicate_key(raw, value)
        if key is not None:
            raise InvalidInput(
                f"{field} is not valid JSON: the key {key!r} appears twice in one object",
                field=field,
            )
    return value


# -- jobs -------------------------------------------------------------------------------------
def job_to_pb(j: Job) -> pb.Job:
    msg = pb.Job(
        id=str(j.id),
        queue=j.queue,
        type=j.type,
        payload_json=dumps(j.payload),
        priority=j.priority,
        status=STATUS_TO_PB[j.status],
        run_at=ts(j.run_at),
        attempt=j.attempt,
        max_retries=j.max_retries,
        timeout=float(j.timeout),
        tags=j.tags,
        result_json=b"" if j.result is None else dumps(j.result),
        created_at=ts(j.created_at),
        updated_at=ts(j.updated_at),
    )
    if j.unique_key is not None:
        msg.unique_key = j.unique_key
    if j.tenant is not None:
        msg.tenant = j.tenant
    if j.last_error is not None:
        msg.last_error = j.last_error
    if j.worker_id is not None:
        msg.worker_id = j.worker_id
    if j.lease_expires_at is not None:
        msg.lease_expires_at.CopyFrom(ts(j.lease_expires_at))
    if j.started_at is not None:
        msg.started_at.CopyFrom(ts(j.started_at))
    if j.finished_at is not None:
        msg.finished_at.CopyFrom(ts(j.finished_at))
    return msg


def job_from_pb(m: pb.Job, lease_token: int = 0) -> Job:
    """The domain Job a remote worker runs (the server already validated it)."""
    return Job(
        id=uuid.UUID(m.id),
        queue=m.queue,
        type=m.type,
        payload=loads(m.payload_json, "payload_json", empty={}),
        priority=m.priority,
        status=STATUS_FROM_PB[m.status],
        run_at=from_ts(m.run_at),
        attempt=m.attempt,
        max_retries=m.max_retries,
        timeout=m.timeout,
        unique_key=m.unique_key if m.HasField("unique_key") else None,
        tags=list(m.tags),
        tenant=m.tenant if m.HasField("tenant") else None,
        result=loads(m.result_json, "result_json"),
        last_error=m.last_error if m.HasField("last_error") else None,
        worker_id=m.worker_id if m.HasField("worker_id") else None,
        lease_expires_at=from_ts(m.lease_expires_at) if m.HasField("lease_expires_at") else None,
        lease_token=lease_token,
        created_at=from_ts(m.created_at),
        started_at=from_ts(m.started_at) if m.HasField("started_at") else None,
        finished_at=from_ts(m.finished_at) if m.HasField("finished_at") else None,
        updated_at=from_ts(m.updated_at),
    )


def spec_to_new_job(spec: pb.JobSpec, now: datetime) -> NewJob:
    """A submission as the service expects it; the service validates every field."""
    run_at = run_at_from(
        from_ts(spec.run_at) if spec.HasField("run_at") else None,
        spec.delay_seconds if spec.HasField("delay_seconds") else None,
        now,
        field="delay_seconds",
    )
    return NewJob(
        type=spec.type,
        payload=loads(spec.payload_json, "payload", empty={}, unique_keys=True),
        queue=spec.queue or DEFAULT_QUEUE,
        priority=spec.priority,
        run_at=run_at,
        max_retries=spec.max_retries if spec.HasField("max_retries") else DEFAULT_MAX_RETRIES,
        timeout=spec.timeout if spec.HasField("timeout") else DEFAULT_TIMEOUT,
        unique_key=spec.unique_key if spec.HasField("unique_key") else None,
        tags=list(spec.tags),
    )
