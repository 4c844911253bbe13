"""JobService over a real loopback port: submit, read, list, cancel, watch; and jobs submitted
over gRPC completed by a remote worker (the real executor, jobs arriving over gRPC)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc
import orjson
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from conveyor.domain.job import JobStatus
from conveyor.grpc.gen.conveyor.v1 import jobs_pb2 as pb
from conveyor.worker import Registry
from tests.grpc.conftest import Rig, running
from tests.helpers import wait_until

S = pb.JobStatus


def spec(type: str = "t.echo", payload: Any = None, **kw: Any) -> pb.JobSpec:
    return pb.JobSpec(type=type, payload_json=orjson.dumps(payload or {}), **kw)


async def test_submit_over_grpc_and_complete_on_a_remote_worker(rig: Rig) -> None:
    registry = Registry()

    async def echo(payload: dict[str, Any]) -> dict[str, Any]:
        return {"echo": payload, "big": 2**60 + 1, "tenth": 0.1}

    registry.register("t.echo", echo)
    stub = rig.jobs()
    reply = await stub.SubmitJob(
        pb.SubmitJobRequest(job=spec(payload={"n": 2**53 + 1, "x": 1.5}, priority=5, tags=["a"]))
    )
    assert reply.created and reply.job.status == S.JOB_STATUS_QUEUED
    assert reply.job.priority == 5 and list(reply.job.tags) == ["a"]
    assert orjson.loads(reply.job.payload_json) == {"n": 2**53 + 1, "x": 1.5}

    async with running(await rig.remote_worker(registry)):

        async def done() -> pb.Job | None:
            j = await stub.GetJob(pb.GetJobRequest(id=reply.job.id))
            return j if j.status == S.JOB_STATUS_COMPLETED else None

        job = await wait_until(done, timeout=10, message="job to complete")
    # JSON travels as text: big ints and decimals come back exactly.
    assert orjson.loads(job.result_json) == {
        "echo": {"n": 2**53 + 1, "x": 1.5},
        "big": 2**60 + 1,
        "tenth": 0.1,
    }
    assert job.attempt == 1 and job.HasField("finished_at")
    stored = await rig.store.get_job(uuid.UUID(job.id))
    assert stored.status == JobStatus.COMPLETED


async def test_batch_list_get_cancel(rig: Rig) -> None:
    stub = rig.jobs()
    batch = await stub.SubmitJobs(
        pb.SubmitJobsRequest(jobs=[spec(payload={"i": i}, queue="q1") for i in range(5)])
    )
    assert len(batch.jobs) == 5 and all(batch.created)
    page = await stub.ListJobs(pb.ListJobsRequest(queue="q1", limit=3))
    assert len(page.jobs) == 3 and page.next_cursor
    rest = await stub.ListJobs(pb.ListJobsRequest(queue="q1", limit=3, cursor=page.next_cursor))
    assert len(rest.jobs) == 2 and not rest.next_cursor
    ids = {j.id for j in page.jobs} | {j.id for j in rest.jobs}
    assert ids == {j.id for j in batch.jobs}
    queued = await stub.ListJobs(pb.ListJobsRequest(status=S.JOB_STATUS_QUEUED, limit=50))
    assert len(queued.jobs) == 5

    cancelled = await stub.CancelJob(pb.CancelJobRequest(id=batch.jobs[0].id))
    assert cancelled.status == S.JOB_STATUS_CANCELLED
    with pytest.raises(aio.AioRpcError) as err:
        await stub.CancelJob(pb.CancelJobRequest(id=batch.jobs[0].id))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert ("conveyor-code", "illegal_transition") in tuple(err.value.trailing_metadata() or ())
    with pytest.raises(aio.AioRpcError) as err:
        await stub.GetJob(pb.GetJobRequest(id="01890000-0000-7000-8000-000000000000"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_unique_key_returns_the_live_job(rig: Rig) -> None:
    stub = rig.jobs()
    first = await stub.SubmitJob(pb.SubmitJobRequest(job=spec(unique_key="k1")))
    again = await stub.SubmitJob(pb.SubmitJobRequest(job=spec(unique_key="k1")))
    assert first.created and not again.created and again.job.id == first.job.id


async def test_watch_streams_status_changes_until_terminal(rig: Rig) -> None:
    registry = Registry()
    gate = asyncio.Event()
    calls = {"n": 0}

    async def flaky(payload: dict[str, Any]) -> str:
        calls["n"] += 1
        await gate.wait()
        if calls["n"] == 1:
            raise RuntimeError("first attempt fails")
        return "ok"

    registry.register("t.flaky", flaky, max_retries=3)
    stub = rig.jobs()
    job = (await stub.SubmitJob(pb.SubmitJobRequest(job=spec("t.flaky")))).job
    seen: list[tuple[int, int]] = []

    async def watch() -> None:
        async for update in stub.WatchJob(pb.WatchJobRequest(id=job.id)):
            seen.append((update.status, update.attempt))

    watcher = asyncio.create_task(watch())
    await wait_until(lambda: seen, message="the first update")
    assert seen[0] == (S.JOB_STATUS_QUEUED, 0)
    async with running(await rig.remote_worker(registry)):
        await wait_until(lambda: (S.JOB_STATUS_RUNNING, 1) in seen, message="running update")
        gate.set()
        await asyncio.wait_for(watcher, 15)  # the stream ends by itself at a terminal status
    statuses = [s for s, _ in seen]
    assert statuses[-1] == S.JOB_STATUS_COMPLETED
    assert S.JOB_STATUS_RETRYING in statuses
    assert seen[-1][1] == 2
    assert len(seen) == len(set(seen)), "one update per change"


async def test_watch_of_a_cancelled_job_ends(rig: Rig) -> None:
    stub = rig.jobs()
    job = (await stub.SubmitJob(pb.SubmitJobRequest(job=spec(delay_seconds=60)))).job
    assert job.status == S.JOB_STATUS_SCHEDULED
    seen: list[int] = []

    async def watch() -> None:
        async for update in stub.WatchJob(pb.WatchJobRequest(id=job.id)):
            seen.append(update.status)

    watcher = asyncio.create_task(watch())
    await wait_until(lambda: seen, message="the first update")
    await stub.CancelJob(pb.CancelJobRequest(id=job.id))
    await asyncio.wait_for(watcher, 5)
    assert seen == [S.JOB_STATUS_SCHEDULED, S.JOB_STATUS_CANCELLED]


async def test_watch_of_a_missing_job_is_not_found(rig: Rig) -> None:
    with pytest.raises(aio.AioRpcError) as err:
        async for _ in rig.jobs().WatchJob(
            pb.WatchJobRequest(id="01890000-0000-7000-8000-000000000000")
        ):
            pass
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_health_and_reflection(rig: Rig) -> None:
    ch = rig.channel()
    health = health_pb2_grpc.HealthStub(ch)
    for name in ("", "conveyor.v1.JobService", "conveyor.v1.WorkerService"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(ch)
    names: set[str] = set()
    async for resp in refl.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    ):
        names |= {s.name for s in resp.list_services_response.service}
    assert {"conveyor.v1.JobService", "conveyor.v1.WorkerService", "grpc.health.v1.Health"} <= names
