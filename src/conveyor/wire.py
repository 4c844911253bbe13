"""Wire models of the HTTP API. pydantic only (no FastAPI), so conveyor.client can share them.

Input models reject unknown fields and check only the wire format (types, RFC 3339 dates);
the rules (name syntax, ranges, payload size) are JobService's. Their bounds appear here as
documentation only (`json_schema_extra`), taken from the service's own constants, so the
OpenAPI spec tells clients the truth without a second copy of the checks.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
)

from conveyor.domain.job import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_QUEUE,
    DEFAULT_TIMEOUT,
    Job,
    JobStatus,
)
from conveyor.domain.limits import (
    MAX_BATCH,
    MAX_DELAY,
    MAX_IDS,
    MAX_PRIORITY,
    MAX_RETRIES_LIMIT,
    MAX_TAGS,
    MAX_UNIQUE_KEY,
    NAME_RE,
)

NAME_PATTERN = NAME_RE.pattern

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


def parse_rfc3339(value: object) -> datetime:
    """An RFC 3339 date-time with an offset, as aware UTC. No epoch numbers, no naive times:
    a time without a zone means different instants to different servers."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("must carry a time-zone offset (RFC 3339)")
        return value.astimezone(UTC)
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("must be an RFC 3339 date-time with offset, e.g. 2030-01-01T09:00:00Z")
    text = value
    frac = re.search(r"\.(\d+)", text)
    if frac and len(frac.group(1)) > 6:  # Python keeps microseconds
        text = text.replace(frac.group(0), "." + frac.group(1)[:6], 1)
    try:
        return datetime.fromisoformat(text.replace("z", "Z")).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"not a valid date-time: {exc}") from exc


Rfc3339 = Annotated[datetime, BeforeValidator(parse_rfc3339)]


NAME_DOC: dict[str, Any] = {"pattern": NAME_PATTERN}


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class JobIn(_In):
    type: Annotated[str, Field(strict=True, json_schema_extra={"pattern": NAME_PATTERN})]
    payload: Any = Field(
        default_factory=dict,
        description="any JSON value (object, array, string, number, boolean, null); default {}",
    )
    queue: Annotated[
        str,
        Field(
            strict=True,
            validation_alias=AliasChoices("queue", "queue_name"),
            json_schema_extra={"pattern": NAME_PATTERN},
        ),
    ] = DEFAULT_QUEUE
    priority: Annotated[
        int,
        Field(
            strict=True,
            description="higher runs first",
            json_schema_extra={"minimum": -MAX_PRIORITY, "maximum": MAX_PRIORITY},
        ),
    ] = 0
    run_at: Annotated[
        Rfc3339 | None,
        Field(
            validation_alias=AliasChoices("execute_at", "run_at"),
            description="when it may run (RFC 3339 with offset); alias run_at",
        ),
    ] = None
    delay: Annotated[
        float | None,
        Field(
            strict=True,
            ge=0,
            le=MAX_DELAY,
            allow_inf_nan=False,
            description="seconds from now; instead of execute_at",
        ),
    ] = None
    max_retries: Annotated[
        int,
        Field(strict=True, json_schema_extra={"minimum": 0, "maximum": MAX_RETRIES_LIMIT}),
    ] = DEFAULT_MAX_RETRIES
    timeout: Annotated[
        float,
        Field(
            strict=True,
            description="seconds one attempt may run",
            json_schema_extra={"exclusiveMinimum": 0},
        ),
    ] = DEFAULT_TIMEOUT
    unique_key: Annotated[
        str | None,
        Field(
            strict=True,
            description="a repeat while the first job is not terminal returns the first",
            json_schema_extra={"minLength": 1, "maxLength": MAX_UNIQUE_KEY},
        ),
    ] = None
    tags: Annotated[
        list[Annotated[str, Field(strict=True, json_schema_extra={"pattern": NAME_PATTERN})]],
        Field(json_schema_extra={"maxItems": MAX_TAGS}),
    ] = Field(default_factory=list)


class BatchIn(_In):
    jobs: Annotated[list[JobIn], Field(json_schema_extra={"minItems": 1, "maxItems": MAX_BATCH})]


class RetryIn(_In):
    payload: Any = Field(
        default=None,
        description="replace the payload before requeueing: any JSON value (null or absent "
        "keeps the payload)",
    )


class IdsIn(_In):
    ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=MAX_IDS)]


def _present(**extra: Any) -> Any:
    """JSON Schema for a PATCH field that may be absent but never null."""

    def edit(schema: dict[str, Any]) -> None:
        options = [o for o in schema.pop("anyOf", []) if o.get("type") != "null"]
        if len(options) == 1:
            schema.update(options[0])
        schema.pop("default", None)
        schema.update(extra)

    return edit


def _refuse_null(value: object) -> object:
    """Absent means "keep"; an explicit null would reach the service as a value."""
    if value is None:
        raise ValueError("must not be null (leave the field out to keep its value)")
    return value


class QueuePatch(_In):
    """Only the fields sent change. `paused` is never null; a null limit removes the limit."""

    paused: Annotated[bool | None, Field(strict=True, json_schema_extra=_present())] = None
    max_depth: Annotated[int | None, Field(strict=True, json_schema_extra={"minimum": 1})] = None
    concurrency: Annotated[int | None, Field(strict=True, json_schema_extra={"minimum": 1})] = None

    refuse_null = field_validator("paused", mode="before")(_refuse_null)


class _ScheduleFields(_In):
    cron: Annotated[
        str,
        Field(
            strict=True,
            validation_alias=AliasChoices("cron", "expression"),
            description="5 fields, or 6 with seconds last; alias expression",
        ),
    ]
    timezone: Annotated[str, Field(strict=True)] = "UTC"
    type: Annotated[str, Field(strict=True, json_schema_extra={"pattern": NAME_PATTERN})]
    payload: dict[str, Any] = Field(default_factory=dict)
    queue: Annotated[str, Field(strict=True, json_schema_extra={"pattern": NAME_PATTERN})] = (
        DEFAULT_QUEUE
    )
    priority: Annotated[
        int,
        Field(strict=True, json_schema_extra={"minimum": -MAX_PRIORITY, "maximum": MAX_PRIORITY}),
    ] = 0
    max_retries: Annotated[
        int,
        Field(strict=True, json_schema_extra={"minimum": 0, "maximum": MAX_RETRIES_LIMIT}),
    ] = DEFAULT_MAX_RETRIES
    timeout: Annotated[float, Field(strict=True, json_schema_extra={"exclusiveMinimum": 0})] = (
        DEFAULT_TIMEOUT
    )
    enabled: Annotated[bool, Field(strict=True)] = True


class ScheduleIn(_ScheduleFields):
    name: Annotated[str, Field(strict=True, json_schema_extra={"pattern": NAME_PATTERN})]


class ScheduleFields(_ScheduleFields):
    """PUT /v1/schedules/{name}: the name comes from the path."""


class SchedulePatch(_In):
    """Only the fields sent change; none of them takes null."""

    cron: Annotated[
        str | None,
        Field(
            strict=True,
            validation_alias=AliasChoices("cron", "expression"),
            json_schema_extra=_present(),
        ),
    ] = None
    timezone: Annotated[str | None, Field(strict=True, json_schema_extra=_present())] = None
    type: Annotated[str | None, Field(strict=True, json_schema_extra=_present(**NAME_DOC))] = None
    payload: Annotated[dict[str, Any] | None, Field(json_schema_extra=_present())] = None
    queue: Annotated[str | None, Field(strict=True, json_schema_extra=_present(**NAME_DOC))] = None
    priority: Annotated[
        int | None,
        Field(
            strict=True,
            json_schema_extra=_present(minimum=-MAX_PRIORITY, maximum=MAX_PRIORITY),
        ),
    ] = None
    max_retries: Annotated[
        int | None,
        Field(strict=True, json_schema_extra=_present(minimum=0, maximum=MAX_RETRIES_LIMIT)),
    ] = None
    timeout: Annotated[
        float | None, Field(strict=True, json_schema_extra=_present(exclusiveMinimum=0))
    ] = None
    enabled: Annotated[bool | None, Field(strict=True, json_schema_extra=_present())] = None

    refuse_null = field_validator("*", mode="before")(_refuse_null)


# -- responses ---------------------------------------------------------------------------


class JobOut(BaseModel):
    """A job as the API shows it: models.Job without the lease token (a worker's secret)."""

    id: uuid.UUID
    queue: str
    type: str
    payload: Any = Field(description="any JSON value")
    priority: int
    status: JobStatus
    run_at: datetime
    attempt: int
    max_retries: int
    timeout: float
    unique_key: str | None
    tags: list[str]
    tenant: str | None
    result: Any = None
    last_error: str | None
    worker_id: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


def json_default(value: Any) -> str:
    """orjson's fallback: asyncpg returns its own UUID class, which orjson does not take for a
    uuid.UUID."""
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def job_out(j: Job) -> dict[str, Any]:
    """The JSON of JobOut straight from the record (responses skip pydantic on the way out:
    see api/serialize.py); lifecycle events carry the same object as their data."""
    return {
        "id": j.id,
        "queue": j.queue,
        "type": j.type,
        "payload": j.payload,
        "priority": j.priority,
        "status": j.status.value,
        "run_at": j.run_at,
        "attempt": j.attempt,
        "max_retries": j.max_retries,
        "timeout": float(j.timeout),
        "unique_key": j.unique_key,
        "tags": j.tags,
        "tenant": j.tenant,
        "result": j.result,
        "last_error": j.last_error,
        "worker_id": j.worker_id,
        "lease_expires_at": j.lease_expires_at,
        "created_at": j.created_at,
        "started_at": j.started_at,
        "finished_at": j.finished_at,
        "updated_at": j.updated_at,
    }


class BatchOut(BaseModel):
    jobs: list[JobOut]
    created: list[bool] = Field(description="per job: false when an existing job was returned")


class JobList(BaseModel):
    jobs: list[JobOut]
    next_cursor: uuid.UUID | None = Field(description="pass as ?cursor= for the next page")


class EventOut(BaseModel):
    id: int
    job_id: uuid.UUID
    at: datetime
    from_status: JobStatus | None
    to_status: JobStatus
    attempt: int
    worker_id: str | None
    message: str | None


class EventList(BaseModel):
    events: list[EventOut]


class TransportIdsOut(BaseModel):
    ready: int = Field(description="ids waiting in the transport for a worker to take them")
    processing: int = Field(
        description="ids taken by a worker whose store claim is not acknowledged yet"
    )


class QueueOut(BaseModel):
    name: str
    paused: bool
    max_depth: int | None
    concurrency: int | None
    counts: dict[str, int] = Field(description="jobs by status; every status is listed")
    depth: int = Field(description="jobs waiting: queued + scheduled + retrying")
    consumers: int = Field(description="live workers consuming this queue (by name or all)")
    unconsumed: bool = Field(
        description="ready jobs, not paused, and no live worker consumes this queue"
    )
    transport: TransportIdsOut | None = Field(
        None,
        description="the queue's ids in the Redis transport; null on the store transport "
        "or while Redis does not answer",
    )


class QueueList(BaseModel):
    queues: list[QueueOut]


class RequeueFailure(BaseModel):
    id: uuid.UUID
    code: str
    detail: str


class RequeueOut(BaseModel):
    requeued: list[JobOut]
    failed: list[RequeueFailure]


class DiscardOut(BaseModel):
    discarded: int


class ScheduleOut(BaseModel):
    name: str
    cron: str
    timezone: str
    type: str
    payload: dict[str, Any]
    queue: str
    priority: int
    max_retries: int
    timeout: float
    enabled: bool
    next_run_at: datetime | None
    last_run_at: datetime | None
    created_at: datetime | None
    updated_at: datetime | None


class ScheduleList(BaseModel):
    schedules: list[ScheduleOut]


class WorkerOut(BaseModel):
    id: str
    hostname: str
    pid: int
    queues: list[str]
    concurrency: int
    running: int
    started_at: datetime
    last_seen_at: datetime
    heartbeat_age: float = Field(description="seconds since the worker was last heard from")
    meta: dict[str, Any]


class WorkerList(BaseModel):
    workers: list[WorkerOut]


class Health(BaseModel):
    status: str  # "ok", or "degraded" (ready, but a transport such as Redis is unreachable)
    detail: str | None = None


class FieldError(BaseModel):
    field: str | None
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details; `code` and `field` are Conveyor's extension members."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    field: str | None = None
    errors: list[FieldError] | None = None
