"""Errors map to gRPC status codes in one place (conveyor.grpc.errors), and back for clients."""

from __future__ import annotations

import grpc
import pytest
from grpc import aio

from conveyor.domain.errors import (
    ConveyorError,
    Forbidden,
    IllegalTransition,
    InvalidInput,
    JobNotFound,
    QueueFull,
    RateLimited,
    StoreUnavailable,
    Unauthenticated,
)
from conveyor.domain.records import QueueSettings
from conveyor.grpc.errors import from_rpc_error, status_of
from conveyor.grpc.gen.conveyor.v1 import jobs_pb2 as pb
from conveyor.grpc.gen.conveyor.v1 import jobs_pb2_grpc
from conveyor.grpc.server import GrpcServer, grpc_auth
from conveyor.service.jobs import JobService
from tests.grpc.conftest import Rig, grpc_settings
from tests.helpers import store_to_take_down

C = grpc.StatusCode


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (InvalidInput("bad", field="type"), C.INVALID_ARGUMENT),
        (JobNotFound("gone"), C.NOT_FOUND),
        (IllegalTransition("no"), C.FAILED_PRECONDITION),
        (QueueFull("full", retry_after=2.5), C.RESOURCE_EXHAUSTED),
        (RateLimited("slow down"), C.RESOURCE_EXHAUSTED),
        (Unauthenticated("who"), C.UNAUTHENTICATED),
        (Forbidden("no"), C.PERMISSION_DENIED),
        (StoreUnavailable("down"), C.UNAVAILABLE),
    ],
)
def test_domain_errors_map_to_status_codes(exc: ConveyorError, code: grpc.StatusCode) -> None:
    got, message, trailers = status_of(exc)
    # A store outage's message may carry driver internals: the caller gets a plain sentence.
    told = exc.public_message if isinstance(exc, StoreUnavailable) else exc.message
    assert got == code and message == told
    assert ("conveyor-code", exc.code) in trailers


def test_queue_full_carries_retry_after() -> None:
    _, _, trailers = status_of(QueueFull("full", retry_after=2.5))
    assert ("retry-after", "3") in trailers


def test_anything_else_is_internal_without_details() -> None:
    code, message, trailers = status_of(RuntimeError("secret connection string"))
    assert code == C.INTERNAL and "secret" not in message
    assert trailers == (("conveyor-code", "internal_error"),)


async def test_queue_full_over_the_wire_and_back(rig: Rig) -> None:
    await rig.store.set_queue_settings(QueueSettings(name="tiny", max_depth=1))
    stub = rig.jobs()
    await stub.SubmitJob(pb.SubmitJobRequest(job=pb.JobSpec(type="t.x", queue="tiny")))
    with pytest.raises(aio.AioRpcError) as err:
        await stub.SubmitJob(pb.SubmitJobRequest(job=pb.JobSpec(type="t.x", queue="tiny")))
    assert err.value.code() == C.RESOURCE_EXHAUSTED
    assert dict(err.value.trailing_metadata() or ()).get("retry-after")
    back = from_rpc_error(err.value)
    assert isinstance(back, QueueFull) and back.retry_after >= 1


async def test_client_side_errors_keep_their_type_and_field(rig: Rig) -> None:
    with pytest.raises(aio.AioRpcError) as err:
        await rig.jobs().GetJob(pb.GetJobRequest(id="nope"))
    back = from_rpc_error(err.value)
    assert isinstance(back, InvalidInput) and back.field == "id"


async def test_store_outage_is_unavailable_with_a_plain_message_and_retry_after(
    store_url: str,
) -> None:
    async with store_to_take_down(store_url) as (store, take_down):
        settings = grpc_settings(store_url)
        auth, limiter = grpc_auth(store, settings)
        server = GrpcServer(JobService(store, settings), auth=auth, limiter=limiter, port=0)
        port = await server.start()
        try:
            async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = jobs_pb2_grpc.JobServiceStub(channel)
                spec = pb.JobSpec(type="t.x")
                await stub.SubmitJob(pb.SubmitJobRequest(job=spec))
                detail = await take_down()
                for call in (
                    stub.SubmitJob(pb.SubmitJobRequest(job=spec)),
                    stub.ListJobs(pb.ListJobsRequest()),
                ):
                    with pytest.raises(aio.AioRpcError) as err:
                        await call
                    assert err.value.code() == C.UNAVAILABLE
                    assert err.value.details() == StoreUnavailable.public_message
                    assert detail not in (err.value.details() or "")
                    trailers = dict(err.value.trailing_metadata() or ())
                    assert trailers["conveyor-code"] == "store_unavailable"
                    assert 1 <= int(trailers["retry-after"]) <= 2
                    back = from_rpc_error(err.value)
                    assert isinstance(back, StoreUnavailable) and back.retry_after >= 1
        finally:
            await server.stop(0)
