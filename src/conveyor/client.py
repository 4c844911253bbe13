"""Python client for the Conveyor HTTP API, sync (`Client`) and async (`AsyncClient`), on httpx.

    with conveyor.Client("http://127.0.0.1:8080") as c:
        job = c.submit("email.send", {"to": "ada@example.com"}, queue="email")
        done = c.wait(job.id, timeout=60)

Both clients share one description of every call (`_Call`), so they cannot drift apart; they
differ only in how they send it. Errors arrive as typed exceptions that also subclass the
in-process ones (`except conveyor.JobNotFound` works with either door).

Retries: a request that never reached the server (connect error) is always retried; one that
may have reached it is retried only when repeating it is harmless (reads, settings, deletes,
and submits carrying a unique_key or Idempotency-Key). Server answers are never retried: a
4xx will not change, and a 5xx is the server's to explain.
"""

from __future__ import annotations

import asyncio
import builtins
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Generic, TypedDict, TypeVar, Unpack
from urllib.parse import quote

import httpx
import orjson
from pydantic import BaseModel

from conveyor.domain.errors import (
    AlreadyExists,
    ConveyorError,
    IllegalTransition,
    InvalidInput,
    JobNotFound,
    QueueFull,
    ScheduleNotFound,
    StoreUnavailable,
)
from conveyor.domain.job import JobStatus
from conveyor.wire import (
    BatchOut,
    DiscardOut,
    EventList,
    EventOut,
    JobList,
    JobOut,
    QueueList,
    QueueOut,
    RequeueOut,
    ScheduleList,
    ScheduleOut,
    WorkerList,
    WorkerOut,
)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

DEFAULT_URL = "http://127.0.0.1:8080"
SERVER_WAIT_CAP = 30.0  # longest single long-poll asked of the server (its default cap)

# -- errors -------------------------------------------------------------------------------


class APIError(ConveyorError):
    """The server answered with an error (RFC 9457 problem+json)."""

    def __init__(self, status: int, problem: Mapping[str, Any]) -> None:
        detail = str(problem.get("detail") or problem.get("title") or f"HTTP {status}")
        field = problem.get("field")
        ConveyorError.__init__(self, detail, field=field if isinstance(field, str) else None)
        self.status = status
        self.code = str(problem.get("code") or "http_error")
        self.title = str(problem.get("title") or "")
        self.problem = dict(problem)

    def __str__(self) -> str:
        where = f" [{self.field}]" if self.field else ""
        return f"{self.status} {self.code}{where}: {self.message}"


class InvalidInputError(APIError, InvalidInput):
    """400/415/422: the request was refused and nothing was written."""


class NotFoundError(APIError):
    pass


class JobNotFoundError(NotFoundError, JobNotFound):
    pass


class ScheduleNotFoundError(NotFoundError, ScheduleNotFound):
    pass


class IllegalTransitionError(APIError, IllegalTransition):
    pass


class AlreadyExistsError(APIError, AlreadyExists):
    """409: the name is taken (e.g. creating a schedule that exists); nothing was written."""


class PayloadTooLargeError(APIError):
    pass


class QueueFullError(APIError, QueueFull):
    """429: the queue is over its depth limit; `retry_after` is the server's hint (seconds)."""

    def __init__(self, status: int, problem: Mapping[str, Any], retry_after: float) -> None:
        super().__init__(status, problem)
        self.retry_after = retry_after


class StoreUnavailableError(APIError, StoreUnavailable):
    pass


class ServerError(APIError):
    pass


class TransportError(ConveyorError):
    """The server could not be reached (after the retries allowed for this call)."""

    code = "transport_error"


_BY_CODE: dict[str, type[APIError]] = {
    "invalid_input": InvalidInputError,
    "malformed_json": InvalidInputError,
    "unsupported_media_type": InvalidInputError,
    "bad_request": InvalidInputError,
    "job_not_found": JobNotFoundError,
    "schedule_not_found": ScheduleNotFoundError,
    "not_found": NotFoundError,
    "illegal_transition": IllegalTransitionError,
    "already_exists": AlreadyExistsError,
    "payload_too_large": PayloadTooLargeError,
    "store_unavailable": StoreUnavailableError,
    "not_ready": StoreUnavailableError,
}
_BY_STATUS: dict[int, type[APIError]] = {
    400: InvalidInputError,
    404: NotFoundError,
    409: IllegalTransitionError,
    413: PayloadTooLargeError,
    415: InvalidInputError,
    422: InvalidInputError,
    503: StoreUnavailableError,
}


def error_from_response(resp: httpx.Response) -> APIError:
    try:
        problem = orjson.loads(resp.content)
        if not isinstance(problem, dict):
            raise ValueError
    except ValueError:
        problem = {"title": resp.reason_phrase, "detail": resp.text[:500] or resp.reason_phrase}
    if resp.status_code == 429:
        try:
            retry_after = float(resp.headers.get("Retry-After", "1"))
        except ValueError:
            retry_after = 1.0
        return QueueFullError(429, problem, retry_after)
    cls = _BY_CODE.get(str(problem.get("code")))
    if cls is None:
        cls = _BY_STATUS.get(resp.status_code, ServerError if resp.status_code >= 500 else APIError)
    return cls(resp.status_code, problem)


# -- call descriptions --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    body: Any = None
    params: Mapping[str, Any] | None = None
    headers: Mapping[str, str] | None = None
    idempotent: bool = True
    timeout: float | None = None


def _model(cls: type[M]) -> Callable[[httpx.Response], M]:
    return lambda resp: cls.model_validate_json(resp.content)


def _none(_: httpx.Response) -> None:
    return None


def _seg(value: str | uuid.UUID) -> str:
    return quote(str(value), safe="")


class JobOptions(TypedDict, total=False):
    queue: str
    priority: int
    execute_at: datetime
    delay: float
    max_retries: int
    timeout: float
    unique_key: str
    tags: Sequence[str]


class ScheduleOptions(TypedDict, total=False):
    timezone: str
    payload: Mapping[str, Any]
    queue: str
    priority: int
    max_retries: int
    timeout: float
    enabled: bool


class ScheduleChanges(ScheduleOptions, total=False):
    cron: str
    type: str


class QueueChanges(TypedDict, total=False):
    paused: bool
    max_depth: int | None
    concurrency: int | None


# A payload left out is {}; None is a payload too (JSON null).
NO_PAYLOAD: Any = object()


def job_body(type: str, payload: Any, options: Mapping[str, Any]) -> Any:
    """`payload` is any JSON value; NO_PAYLOAD sends {}."""
    body: dict[str, Any] = {"type": type, "payload": {} if payload is NO_PAYLOAD else payload}
    for key, value in options.items():
        if value is not None:
            body[key] = list(value) if key == "tags" else value
    return body


def _submit(
    type: str,
    payload: Any,
    idempotency_key: str | None,
    options: JobOptions,
) -> _Call[JobOut]:
    return _Call(
        "POST",
        "/v1/jobs",
        _model(JobOut),
        body=job_body(type, payload, options),
        headers={"Idempotency-Key": idempotency_key} if idempotency_key else None,
        idempotent=bool(idempotency_key or options.get("unique_key")),
    )


def _submit_many(jobs: Sequence[Mapping[str, Any]]) -> _Call[builtins.list[JobOut]]:
    bodies = [
        job_body(
            j["type"], j.get("payload", NO_PAYLOAD), {k: v for k, v in j.items() if k not in _OWN}
        )
        for j in jobs
    ]
    return _Call(
        "POST",
        "/v1/jobs/batch",
        lambda resp: BatchOut.model_validate_json(resp.content).jobs,
        body={"jobs": bodies},
        idempotent=bool(bodies) and all(b.get("unique_key") for b in bodies),
    )


_OWN = frozenset({"type", "payload"})


def _get(job_id: uuid.UUID | str, wait: float | None = None) -> _Call[JobOut]:
    return _Call(
        "GET",
        f"/v1/jobs/{_seg(job_id)}",
        _model(JobOut),
        params={"wait": wait} if wait else None,
        timeout=None if not wait else wait + 10.0,
    )


def _page(filters: Mapping[str, Any], limit: int, cursor: uuid.UUID | str | None) -> _Call[JobList]:
    params: dict[str, Any] = {"limit": limit}
    for key, value in filters.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, JobStatus):
            value = value.value
        params[key] = value
    if cursor is not None:
        params["cursor"] = str(cursor)
    return _Call("GET", "/v1/jobs", _model(JobList), params=params)


def _job_action(job_id: uuid.UUID | str, action: str, body: Any = None) -> _Call[JobOut]:
    return _Call(
        "POST", f"/v1/jobs/{_seg(job_id)}/{action}", _model(JobOut), body=body, idempotent=False
    )


def _events(job_id: uuid.UUID | str) -> _Call[builtins.list[EventOut]]:
    return _Call(
        "GET",
        f"/v1/jobs/{_seg(job_id)}/events",
        lambda r: EventList.model_validate_json(r.content).events,
    )


def _schedule_body(cron: str, type: str, options: ScheduleOptions) -> dict[str, Any]:
    body: dict[str, Any] = {"cron": cron, "type": type}
    body.update({k: v for k, v in options.items() if v is not None})
    return body


def _ids(ids: Iterable[uuid.UUID | str]) -> Any:
    return {"ids": [str(i) for i in ids]}


class _Calls:
    """Every call the clients make, described once."""

    submit = staticmethod(_submit)
    submit_many = staticmethod(_submit_many)
    get = staticmethod(_get)
    page = staticmethod(_page)
    events = staticmethod(_events)
    job_action = staticmethod(_job_action)

    @staticmethod
    def list_schedules() -> _Call[builtins.list[ScheduleOut]]:
        return _Call(
            "GET", "/v1/schedules", lambda r: ScheduleList.model_validate_json(r.content).schedules
        )

    @staticmethod
    def get_schedule(name: str) -> _Call[ScheduleOut]:
        return _Call("GET", f"/v1/schedules/{_seg(name)}", _model(ScheduleOut))

    @staticmethod
    def create_schedule(
        name: str, cron: str, type: str, options: ScheduleOptions
    ) -> _Call[ScheduleOut]:
        body = {"name": name, **_schedule_body(cron, type, options)}
        return _Call("POST", "/v1/schedules", _model(ScheduleOut), body=body)

    @staticmethod
    def put_schedule(
        name: str, cron: str, type: str, options: ScheduleOptions
    ) -> _Call[ScheduleOut]:
        body = _schedule_body(cron, type, options)
        return _Call("PUT", f"/v1/schedules/{_seg(name)}", _model(ScheduleOut), body=body)

    @staticmethod
    def update_schedule(name: str, changes: ScheduleChanges) -> _Call[ScheduleOut]:
        return _Call(
            "PATCH", f"/v1/schedules/{_seg(name)}", _model(ScheduleOut), body=dict(changes)
        )

    @staticmethod
    def delete_schedule(name: str) -> _Call[None]:
        return _Call("DELETE", f"/v1/schedules/{_seg(name)}", _none)

    @staticmethod
    def trigger_schedule(name: str) -> _Call[JobOut]:
        return _Call(
            "POST", f"/v1/schedules/{_seg(name)}/trigger", _model(JobOut), idempotent=False
        )

    @staticmethod
    def queues() -> _Call[builtins.list[QueueOut]]:
        return _Call("GET", "/v1/queues", lambda r: QueueList.model_validate_json(r.content).queues)

    @staticmethod
    def update_queue(name: str, changes: QueueChanges) -> _Call[QueueOut]:
        return _Call("PATCH", f"/v1/queues/{_seg(name)}", _model(QueueOut), body=dict(changes))

    @staticmethod
    def requeue_dead(ids: Iterable[uuid.UUID | str]) -> _Call[RequeueOut]:
        return _Call(
            "POST", "/v1/dead/requeue", _model(RequeueOut), body=_ids(ids), idempotent=False
        )

    @staticmethod
    def discard_dead(ids: Iterable[uuid.UUID | str]) -> _Call[int]:
        return _Call(
            "POST",
            "/v1/dead/discard",
            lambda r: DiscardOut.model_validate_json(r.content).discarded,
            body=_ids(ids),
        )

    @staticmethod
    def workers() -> _Call[builtins.list[WorkerOut]]:
        return _Call(
            "GET", "/v1/workers", lambda r: WorkerList.model_validate_json(r.content).workers
        )

    @staticmethod
    def ready() -> _Call[bool]:
        return _Call("GET", "/readyz", lambda r: True)


# -- the clients ----------------------------------------------------------------------------

_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout)


class _Base:
    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        retries: int,
        backoff: float,
        headers: Mapping[str, str] | None,
        token: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.headers = {"accept": "application/json", **(headers or {})}
        if token:  # an access token from /v1/auth/login, or an API token
            self.headers["authorization"] = f"Bearer {token}"

    def _request_args(self, call: _Call[Any]) -> dict[str, Any]:
        headers = dict(call.headers or {})
        content = None
        if call.body is not None:
            content = orjson.dumps(call.body)
            headers["content-type"] = "application/json"
        return {
            "method": call.method,
            "url": call.path,
            "params": call.params,
            "content": content,
            "headers": headers,
            "timeout": call.timeout if call.timeout is not None else self.timeout,
        }

    def _should_retry(self, call: _Call[Any], exc: httpx.TransportError, attempt: int) -> bool:
        if attempt >= self.retries:
            return False
        return isinstance(exc, _NEVER_SENT) or call.idempotent

    def _delay(self, attempt: int) -> float:
        return float(min(2.0, self.backoff * 2**attempt))

    @staticmethod
    def _result(call: _Call[T], resp: httpx.Response) -> T:
        if resp.status_code >= 400:
            raise error_from_response(resp)
        return call.parse(resp)


class Client(_Base):
    """Blocking client. Thread-safe (httpx.Client is); close it, or use it as a context manager."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.1,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        token: str | None = None,
    ) -> None:
        super().__init__(
            base_url,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            headers=headers,
            token=token,
        )
        self._http = httpx.Client(base_url=self.base_url, headers=self.headers, transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _do(self, call: _Call[T]) -> T:
        attempt = 0
        while True:
            try:
                resp = self._http.request(**self._request_args(call))
            except httpx.TransportError as exc:
                if not self._should_retry(call, exc, attempt):
                    raise TransportError(f"{call.method} {call.path}: {exc!r}") from exc
                time.sleep(self._delay(attempt))
                attempt += 1
                continue
            return self._result(call, resp)

    # jobs
    def submit(
        self,
        type: str,
        payload: Any = NO_PAYLOAD,
        *,
        idempotency_key: str | None = None,
        **options: Unpack[JobOptions],
    ) -> JobOut:
        """201 creates; a live job with the same unique_key/Idempotency-Key is returned instead."""
        return self._do(_Calls.submit(type, payload, idempotency_key, options))

    def submit_many(self, jobs: Iterable[Mapping[str, Any]]) -> builtins.list[JobOut]:
        """Up to 1,000 jobs (dicts shaped like `submit`'s arguments), all or nothing."""
        return self._do(_Calls.submit_many(builtins.list(jobs)))

    def get(self, job_id: uuid.UUID | str) -> JobOut:
        return self._do(_Calls.get(job_id))

    def wait(
        self,
        job_id: uuid.UUID | str,
        timeout: float | None = None,
        *,
        poll: float = SERVER_WAIT_CAP,
    ) -> JobOut:
        """Block until the job is terminal (long-polling the server); TimeoutError after
        `timeout` seconds (None: no limit)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = poll if deadline is None else min(poll, deadline - time.monotonic())
            job = self._do(_Calls.get(job_id, wait=max(left, 0.0) or None))
            if job.status.terminal:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {job.status.value} after {timeout}s")

    def list(
        self, *, page_size: int = 100, cursor: uuid.UUID | str | None = None, **filters: Any
    ) -> Iterator[JobOut]:
        """Every job matching the filters (queue, status, type, tag, created_after,
        created_before), newest first, fetching pages lazily."""
        while True:
            page = self._do(_Calls.page(filters, page_size, cursor))
            yield from page.jobs
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def events(self, job_id: uuid.UUID | str) -> builtins.list[EventOut]:
        return self._do(_Calls.events(job_id))

    def cancel(self, job_id: uuid.UUID | str) -> JobOut:
        return self._do(_Calls.job_action(job_id, "cancel"))

    def retry(self, job_id: uuid.UUID | str, payload: Any = None) -> JobOut:
        """Requeue a dead job, optionally with a new payload."""
        body = {"payload": payload} if payload is not None else None
        return self._do(_Calls.job_action(job_id, "retry", body))

    # schedules
    def schedules(self) -> builtins.list[ScheduleOut]:
        return self._do(_Calls.list_schedules())

    def get_schedule(self, name: str) -> ScheduleOut:
        return self._do(_Calls.get_schedule(name))

    def create_schedule(
        self, name: str, cron: str, type: str, **options: Unpack[ScheduleOptions]
    ) -> ScheduleOut:
        """Create the schedule; AlreadyExistsError when the name is taken."""
        return self._do(_Calls.create_schedule(name, cron, type, options))

    def put_schedule(
        self, name: str, cron: str, type: str, **options: Unpack[ScheduleOptions]
    ) -> ScheduleOut:
        """Create the schedule, or replace the one with this name."""
        return self._do(_Calls.put_schedule(name, cron, type, options))

    def update_schedule(self, name: str, **changes: Unpack[ScheduleChanges]) -> ScheduleOut:
        return self._do(_Calls.update_schedule(name, changes))

    def delete_schedule(self, name: str) -> None:
        self._do(_Calls.delete_schedule(name))

    def trigger_schedule(self, name: str) -> JobOut:
        return self._do(_Calls.trigger_schedule(name))

    # queues, dead letters, workers
    def queues(self) -> builtins.list[QueueOut]:
        return self._do(_Calls.queues())

    def update_queue(self, name: str, **changes: Unpack[QueueChanges]) -> QueueOut:
        return self._do(_Calls.update_queue(name, changes))

    def requeue_dead(self, ids: Iterable[uuid.UUID | str]) -> RequeueOut:
        return self._do(_Calls.requeue_dead(ids))

    def discard_dead(self, ids: Iterable[uuid.UUID | str]) -> int:
        return self._do(_Calls.discard_dead(ids))

    def workers(self) -> builtins.list[WorkerOut]:
        return self._do(_Calls.workers())

    def ready(self) -> bool:
        """True when the server can reach a migrated store (raises otherwise)."""
        return self._do(_Calls.ready())


class AsyncClient(_Base):
    """The asyncio twin of `Client`: same methods, awaited (and `list` is an async iterator)."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.1,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        token: str | None = None,
    ) -> None:
        super().__init__(
            base_url,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            headers=headers,
            token=token,
        )
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=self.headers, transport=transport
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _do(self, call: _Call[T]) -> T:
        attempt = 0
        while True:
            try:
                resp = await self._http.request(**self._request_args(call))
            except httpx.TransportError as exc:
                if not self._should_retry(call, exc, attempt):
                    raise TransportError(f"{call.method} {call.path}: {exc!r}") from exc
                await asyncio.sleep(self._delay(attempt))
                attempt += 1
                continue
            return self._result(call, resp)

    # jobs
    async def submit(
        self,
        type: str,
        payload: Any = NO_PAYLOAD,
        *,
        idempotency_key: str | None = None,
        **options: Unpack[JobOptions],
    ) -> JobOut:
        return await self._do(_Calls.submit(type, payload, idempotency_key, options))

    async def submit_many(self, jobs: Iterable[Mapping[str, Any]]) -> builtins.list[JobOut]:
        return await self._do(_Calls.submit_many(builtins.list(jobs)))

    async def get(self, job_id: uuid.UUID | str) -> JobOut:
        return await self._do(_Calls.get(job_id))

    async def wait(
        self,
        job_id: uuid.UUID | str,
        timeout: float | None = None,
        *,
        poll: float = SERVER_WAIT_CAP,
    ) -> JobOut:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = poll if deadline is None else min(poll, deadline - time.monotonic())
            job = await self._do(_Calls.get(job_id, wait=max(left, 0.0) or None))
            if job.status.terminal:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {job.status.value} after {timeout}s")

    async def list(
        self, *, page_size: int = 100, cursor: uuid.UUID | str | None = None, **filters: Any
    ) -> AsyncIterator[JobOut]:
        while True:
            page = await self._do(_Calls.page(filters, page_size, cursor))
            for job in page.jobs:
                yield job
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def events(self, job_id: uuid.UUID | str) -> builtins.list[EventOut]:
        return await self._do(_Calls.events(job_id))

    async def cancel(self, job_id: uuid.UUID | str) -> JobOut:
        return await self._do(_Calls.job_action(job_id, "cancel"))

    async def retry(self, job_id: uuid.UUID | str, payload: Any = None) -> JobOut:
        body = {"payload": payload} if payload is not None else None
        return await self._do(_Calls.job_action(job_id, "retry", body))

    # schedules
    async def schedules(self) -> builtins.list[ScheduleOut]:
        return await self._do(_Calls.list_schedules())

    async def get_schedule(self, name: str) -> ScheduleOut:
        return await self._do(_Calls.get_schedule(name))

    async def create_schedule(
        self, name: str, cron: str, type: str, **options: Unpack[ScheduleOptions]
    ) -> ScheduleOut:
        """Create the schedule; AlreadyExistsError when the name is taken."""
        return await self._do(_Calls.create_schedule(name, cron, type, options))

    async def put_schedule(
        self, name: str, cron: str, type: str, **options: Unpack[ScheduleOptions]
    ) -> ScheduleOut:
        """Create the schedule, or replace the one with this name."""
        return await self._do(_Calls.put_schedule(name, cron, type, options))

    async def update_schedule(self, name: str, **changes: Unpack[ScheduleChanges]) -> ScheduleOut:
        return await self._do(_Calls.update_schedule(name, changes))

    async def delete_schedule(self, name: str) -> None:
        await self._do(_Calls.delete_schedule(name))

    async def trigger_schedule(self, name: str) -> JobOut:
        return await self._do(_Calls.trigger_schedule(name))

    # queues, dead letters, workers
    async def queues(self) -> builtins.list[QueueOut]:
        return await self._do(_Calls.queues())

    async def update_queue(self, name: str, **changes: Unpack[QueueChanges]) -> QueueOut:
        return await self._do(_Calls.update_queue(name, changes))

    async def requeue_dead(self, ids: Iterable[uuid.UUID | str]) -> RequeueOut:
        return await self._do(_Calls.requeue_dead(ids))

    async def discard_dead(self, ids: Iterable[uuid.UUID | str]) -> int:
        return await self._do(_Calls.discard_dead(ids))

    async def workers(self) -> builtins.list[WorkerOut]:
        return await self._do(_Calls.workers())

    async def ready(self) -> bool:
        return await self._do(_Calls.ready())
