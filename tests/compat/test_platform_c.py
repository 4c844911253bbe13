"""Platform C (gRPC): `taskqueue.TaskQueueService` called as grpcurl calls it, knowing nothing
but the server's address: the service and its messages come from server reflection, requests
are the JSON bodies of issue 17 (verbatim) and answers are read back as JSON. Handlers receive
raw bytes and return bytes."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.message import Message
from grpc import aio
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from conveyor.domain.records import Role
from tests.compat.conftest import Stack, read_until

SERVICE = "taskqueue.TaskQueueService"
RAW = b"\x00\x01 raw bytes, not UTF-8: \xff\xfe"
SUBMIT = {
    "type": "demo",
    "payload": base64.b64encode(RAW).decode(),
    "priority": 5,
    "max_retries": 3,
}

Call = Callable[[str, dict[str, Any]], Any]


def _reflect(target: str) -> dict[str, tuple[type[Message], type[Message]]]:
    """method name -> (request class, response class), from server reflection alone."""
    with grpc.insecure_channel(target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        assert SERVICE in database.get_services()
        pool = descriptor_pool.DescriptorPool(database)
        service = pool.FindServiceByName(SERVICE)
        return {
            m.name: (
                message_factory.GetMessageClass(m.input_type),
                message_factory.GetMessageClass(m.output_type),
            )
            for m in service.methods
        }


async def _caller(stack: Stack, channel: aio.Channel, token: str) -> Call:
    methods = await asyncio.to_thread(_reflect, stack.grpc_target)
    assert set(methods) == {"SubmitTask", "GetTaskStatus", "RegisterWorker"}

    async def call(method: str, body: dict[str, Any]) -> dict[str, Any]:
        request_cls, response_cls = methods[method]
        rpc = channel.unary_unary(
            f"/{SERVICE}/{method}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_cls.FromString,
        )
        request = json_format.ParseDict(body, request_cls())
        response = await rpc(request, metadata=(("authorization", f"Bearer {token}"),))
        return json_format.MessageToDict(response, preserving_proto_field_name=True)

    return call


async def test_submit_bytes_and_read_the_bytes_result_back(stack: Stack) -> None:
    async with aio.insecure_channel(stack.grpc_target) as channel:
        call = await _caller(stack, channel, stack.token(Role.USER, "acme"))
        submitted = await call("SubmitTask", SUBMIT)
        assert set(submitted) == {"id", "status"} and submitted["status"] == "pending"

        task = await read_until(lambda: call("GetTaskStatus", {"id": submitted["id"]}), "completed")
    assert task["id"] == submitted["id"]
    assert base64.b64decode(task["result"]) == RAW.upper()  # the handler got bytes, gave bytes
    assert task["created_at"] <= task["updated_at"]
    job = await stack.service.get(uuid.UUID(submitted["id"]))
    assert (job.priority, job.max_retries, job.tenant) == (5, 3, "acme")


async def test_register_worker_needs_a_worker_token(stack: Stack) -> None:
    body = {"worker_id": "c-worker-1", "task_types": ["demo"], "concurrency": 4}
    async with aio.insecure_channel(stack.grpc_target) as channel:
        as_user = await _caller(stack, channel, stack.token(Role.USER, "acme"))
        try:
            await as_user("RegisterWorker", body)
        except aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.PERMISSION_DENIED
        else:
            raise AssertionError("a USER registered a worker")
        as_worker = await _caller(stack, channel, stack.token(Role.WORKER))
        assert await as_worker("RegisterWorker", body) == {"worker_id": "c-worker-1"}
    (registered,) = [w for w in await stack.service.workers() if w.id == "c-worker-1"]
    assert registered.concurrency == 4 and registered.meta["task_types"] == ["demo"]


async def test_bad_input_is_invalid_argument_and_writes_nothing(stack: Stack) -> None:
    async with aio.insecure_channel(stack.grpc_target) as channel:
        call = await _caller(stack, channel, stack.token())
        for body, field in (
            ({**SUBMIT, "type": "no handler"}, "type"),
            ({**SUBMIT, "priority": 2_000_000}, "priority"),
            ({"id": "not-a-uuid"}, "id"),
        ):
            method = "GetTaskStatus" if "id" in body else "SubmitTask"
            try:
                await call(method, body)
            except aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc
                assert dict(exc.trailing_metadata() or ())["conveyor-field"] == field
            else:
                raise AssertionError(f"{body} was accepted")
    assert await stack.service.store.count_by_queue_status() in ({}, {"default": {}})
