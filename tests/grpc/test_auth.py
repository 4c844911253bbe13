"""Auth over gRPC: bearer JWT in metadata, the same policy table as HTTP, every RPC mapped."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from grpc import aio

from conveyor.domain.errors import Forbidden, Unauthenticated
from conveyor.domain.records import Role
from conveyor.grpc.auth import RPC_ACTIONS
from conveyor.grpc.gen import taskqueue_pb2 as tpb
from conveyor.grpc.gen import taskqueue_pb2_grpc
from conveyor.grpc.gen.conveyor.v1 import jobs_pb2 as pb
from conveyor.grpc.gen.conveyor.v1 import worker_pb2 as wpb
from conveyor.security.policy import allowed
from conveyor.service.auth import AuthService
from conveyor.worker import Registry
from tests.grpc.conftest import Rig, RigFactory

SERVICES = [
    pb.DESCRIPTOR.services_by_name["JobService"],
    wpb.DESCRIPTOR.services_by_name["WorkerService"],
    tpb.DESCRIPTOR.services_by_name["TaskQueueService"],
]
ALL_RPCS = sorted(f"{s.full_name}/{m.name}" for s in SERVICES for m in s.methods)
NIL_ID = "01890000-0000-7000-8000-000000000000"

# A request per RPC that passes validation, so the status says what auth decided.
_J, _W, _T = "conveyor.v1.JobService/", "conveyor.v1.WorkerService/", "taskqueue.TaskQueueService/"
REQUESTS: dict[str, Any] = {
    _J + "SubmitJob": pb.SubmitJobRequest(job=pb.JobSpec(type="t.auth")),
    _J + "SubmitJobs": pb.SubmitJobsRequest(jobs=[pb.JobSpec(type="t.auth")]),
    _J + "GetJob": pb.GetJobRequest(id=NIL_ID),
    _J + "ListJobs": pb.ListJobsRequest(),
    _J + "CancelJob": pb.CancelJobRequest(id=NIL_ID),
    _J + "WatchJob": pb.WatchJobRequest(id=NIL_ID),
    _W + "RegisterWorker": wpb.RegisterWorkerRequest(
        worker=wpb.WorkerInfo(id="w-auth", queues=["default"], concurrency=1)
    ),
    _W + "DeregisterWorker": wpb.DeregisterWorkerRequest(worker_id="w-auth"),
    _W + "Fetch": wpb.FetchRequest(
        worker_id="w-auth", queues=["nothing"], max_jobs=1, lease_seconds=1
    ),
    _W + "Complete": wpb.CompleteRequest(),
    _W + "Fail": wpb.FailRequest(),
    _W + "Release": wpb.ReleaseRequest(),
    _W + "Heartbeat": wpb.HeartbeatRequest(worker_id="w-auth", lease_seconds=1),
    _W + "Reclaim": wpb.ReclaimRequest(worker_id="w-auth", lease_seconds=1),
    _T + "SubmitTask": tpb.SubmitTaskRequest(type="t.auth", payload=b"x"),
    _T + "GetTaskStatus": tpb.GetTaskStatusRequest(id=NIL_ID),
    _T + "RegisterWorker": tpb.RegisterWorkerRequest(worker_id="w-auth-c"),
}


def test_every_rpc_names_an_action() -> None:
    assert sorted(RPC_ACTIONS) == ALL_RPCS
    assert sorted(REQUESTS) == ALL_RPCS


async def call(rig: Rig, rpc: str, token: str | None) -> grpc.StatusCode:
    service, method = rpc.split("/")
    stub: Any
    if service == "taskqueue.TaskQueueService":
        stub = taskqueue_pb2_grpc.TaskQueueServiceStub(rig.channel())
    else:
        stub = rig.jobs() if service.endswith("JobService") else rig.workers()
    metadata = (("authorization", f"Bearer {token}"),) if token is not None else ()
    try:
        if method == "WatchJob":
            async for _ in stub.WatchJob(REQUESTS[rpc], metadata=metadata):
                break
        else:
            await getattr(stub, method)(REQUESTS[rpc], metadata=metadata)
    except aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


@pytest.fixture
async def secure(make_rig: RigFactory) -> Rig:
    return await make_rig(auth_enabled=True)


async def test_role_matrix(secure: Rig) -> None:
    """Each role may call exactly what the policy table allows it (the HTTP table)."""
    for role in Role:
        token = secure.token(role, tenant="t1" if role is Role.USER else None)
        for rpc in ALL_RPCS:
            code = await call(secure, rpc, token)
            if allowed(role, RPC_ACTIONS[rpc]):
                assert code not in (
                    grpc.StatusCode.PERMISSION_DENIED,
                    grpc.StatusCode.UNAUTHENTICATED,
                ), (role, rpc, code)
            else:
                assert code == grpc.StatusCode.PERMISSION_DENIED, (role, rpc, code)


@pytest.mark.parametrize("rpc", ALL_RPCS)
async def test_missing_and_bad_tokens_are_unauthenticated(secure: Rig, rpc: str) -> None:
    assert await call(secure, rpc, None) == grpc.StatusCode.UNAUTHENTICATED
    assert await call(secure, rpc, "not-a-jwt") == grpc.StatusCode.UNAUTHENTICATED


async def test_other_schemes_and_foreign_keys_are_unauthenticated(
    secure: Rig, make_rig: RigFactory
) -> None:
    stub = secure.jobs()
    with pytest.raises(aio.AioRpcError) as err:
        await stub.ListJobs(pb.ListJobsRequest(), metadata=(("authorization", "Basic abc"),))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    other = await make_rig(auth_enabled=True, jwt_secret="another-secret-0123456789-abcdefghijklmn")
    forged = other.token(Role.ADMIN)
    assert await call(secure, "conveyor.v1.JobService/ListJobs", forged) == (
        grpc.StatusCode.UNAUTHENTICATED
    )


async def test_revoked_api_token_is_refused(secure: Rig) -> None:
    auth = AuthService(secure.store, secure.settings)
    issued = await auth.create_api_token("remote-1", Role.WORKER)
    rpc = "conveyor.v1.WorkerService/Heartbeat"
    assert await call(secure, rpc, issued.token) == grpc.StatusCode.OK
    await auth.revoke_api_token(issued.record.jti)
    assert await call(secure, rpc, issued.token) == grpc.StatusCode.UNAUTHENTICATED


async def test_user_tokens_see_only_their_tenant(secure: Rig) -> None:
    stub = secure.jobs()
    mine = (("authorization", f"Bearer {secure.token(Role.USER, tenant='a')}"),)
    theirs = (("authorization", f"Bearer {secure.token(Role.USER, tenant='b', name='u2')}"),)
    job = (await stub.SubmitJob(pb.SubmitJobRequest(job=pb.JobSpec(type="t.x")), metadata=mine)).job
    assert job.tenant == "a"
    assert (await stub.GetJob(pb.GetJobRequest(id=job.id), metadata=mine)).id == job.id
    with pytest.raises(aio.AioRpcError) as err:
        await stub.GetJob(pb.GetJobRequest(id=job.id), metadata=theirs)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await stub.ListJobs(pb.ListJobsRequest(), metadata=theirs)
    assert list(listed.jobs) == []


async def test_remote_worker_needs_a_worker_token(secure: Rig) -> None:
    registry = Registry()
    registry.register("t.x", lambda payload: None)
    user = await secure.remote_worker(registry, secure.token(Role.USER, tenant="a"))
    with pytest.raises(Forbidden):
        await user.run()
    nobody = await secure.remote_worker(registry, None)
    with pytest.raises(Unauthenticated):
        await nobody.run()
    assert await secure.store.list_workers() == []


async def test_auth_disabled_serves_everyone_as_admin(rig: Rig) -> None:
    for rpc in ALL_RPCS:
        assert await call(rig, rpc, None) not in (
            grpc.StatusCode.PERMISSION_DENIED,
            grpc.StatusCode.UNAUTHENTICATED,
        )
