"""Connection failures: what the clients retry, and what they must not."""

from __future__ import annotations

import socket
import uuid

import httpx
import orjson
import pytest

import conveyor
from conveyor.client import TransportError

JOB = {
    "id": str(uuid.uuid4()), "queue": "default", "type": "t", "payload": {}, "priority": 0,
    "status": "queued", "run_at": "2030-01-01T00:00:00+00:00", "attempt": 0, "max_retries": 3,
    "timeout": 300.0, "unique_key": None, "tags": [], "tenant": None, "result": None,
    "last_error": None, "worker_id": None, "lease_expires_at": None,
    "created_at": "2030-01-01T00:00:00+00:00", "started_at": None, "finished_at": None,
    "updated_at": "2030-01-01T00:00:00+00:00",
}  # fmt: skip


def flaky(
    error: type[httpx.TransportError], failures: int
) -> tuple[list[str], httpx.MockTransport]:
    calls: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) <= failures:
            raise error("down", request=request)
        return httpx.Response(200, content=orjson.dumps(JOB))

    return calls, httpx.MockTransport(handle)


def test_reads_are_retried_after_any_transport_error() -> None:
    calls, transport = flaky(httpx.ReadError, 2)
    with conveyor.Client(transport=transport, backoff=0) as c:
        assert str(c.get(JOB["id"]).id) == JOB["id"]
    assert calls == ["GET"] * 3


def test_a_submit_that_may_have_arrived_is_not_repeated() -> None:
    calls, transport = flaky(httpx.ReadError, 1)
    with conveyor.Client(transport=transport, backoff=0) as c, pytest.raises(TransportError):
        c.submit("t")
    assert calls == ["POST"]


def test_a_submit_that_never_left_is_retried() -> None:
    calls, transport = flaky(httpx.ConnectError, 2)
    with conveyor.Client(transport=transport, backoff=0) as c:
        c.submit("t")
    assert calls == ["POST"] * 3


def test_a_keyed_submit_is_retried_after_any_transport_error() -> None:
    calls, transport = flaky(httpx.RemoteProtocolError, 1)
    with conveyor.Client(transport=transport, backoff=0) as c:
        c.submit("t", idempotency_key="abc")
    assert calls == ["POST"] * 2


async def test_async_client_gives_up_after_its_retries() -> None:
    calls, _ = flaky(httpx.ConnectError, 100)

    async def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        raise httpx.ConnectError("down", request=request)

    transport = httpx.MockTransport(handle)
    async with conveyor.AsyncClient(transport=transport, retries=2, backoff=0) as c:
        with pytest.raises(TransportError):
            await c.get(JOB["id"])
    assert calls == ["GET"] * 3


def test_nothing_listening_is_a_transport_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    client = conveyor.Client(f"http://127.0.0.1:{port}", retries=1, backoff=0)
    with client as c, pytest.raises(TransportError):
        c.get(JOB["id"])
