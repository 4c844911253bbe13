"""Bad messages get INVALID_ARGUMENT (naming the field) and write nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
import orjson
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from grpc import aio

from conveyor.grpc.gen.conveyor.v1 import jobs_pb2 as pb
from conveyor.grpc.gen.conveyor.v1 import worker_pb2 as wpb
from conveyor.store import Store
from tests.grpc.conftest import Rig, RigFactory


async def snapshot(store: Store) -> tuple[Any, ...]:
    return (await store.count_by_queue_status(), await store.list_workers())


def trailers(err: aio.AioRpcError) -> dict[str, str]:
    return {k: str(v) for k, v in err.trailing_metadata() or ()}


async def refused(
    call: Any, code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT
) -> dict[str, str]:
    with pytest.raises(aio.AioRpcError) as err:
        await call
    assert err.value.code() == code, err.value.details()
    return trailers(err.value)


def ok_spec(**kw: Any) -> pb.JobSpec:
    base: dict[str, Any] = {"type": "t.ok", "payload_json": b"{}"}
    base.update(kw)
    return pb.JobSpec(**base)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (pb.JobSpec(payload_json=b"{}"), "type"),  # missing type
        (ok_spec(type="has space"), "type"),
        (ok_spec(payload_json=b"[1, 2"), "payload"),  # any JSON value, but JSON
        (ok_spec(payload_json=b"text"), "payload"),
        (ok_spec(payload_json=b"{not json"), "payload"),
        (ok_spec(queue="bad/queue"), "queue"),
        (ok_spec(max_retries=-1), "max_retries"),
        (ok_spec(timeout=0), "timeout"),
        (ok_spec(delay_seconds=-5), "delay_seconds"),
        (ok_spec(priority=2_000_000), "priority"),
        (ok_spec(tags=["ok", "not ok"]), "tags"),
    ],
)
async def test_bad_submissions_write_nothing(rig: Rig, spec: pb.JobSpec, field: str) -> None:
    before = await snapshot(rig.store)
    meta = await refused(rig.jobs().SubmitJob(pb.SubmitJobRequest(job=spec)))
    assert meta["conveyor-code"] == "invalid_input"
    assert meta["conveyor-field"] == field
    assert await snapshot(rig.store) == before


async def test_oversized_payload_is_invalid_argument(make_rig: RigFactory) -> None:
    rig = await make_rig(max_payload_bytes=1024)
    before = await snapshot(rig.store)
    big = orjson.dumps({"blob": "x" * 2000})
    meta = await refused(rig.jobs().SubmitJob(pb.SubmitJobRequest(job=ok_spec(payload_json=big))))
    assert meta["conveyor-field"] == "payload"
    assert await snapshot(rig.store) == before


async def test_message_over_the_transport_limit_is_refused_before_any_handler(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig(grpc_max_message_bytes=64 * 1024)
    before = await snapshot(rig.store)
    huge = orjson.dumps({"blob": "x" * 100_000})
    await refused(
        rig.jobs().SubmitJob(pb.SubmitJobRequest(job=ok_spec(payload_json=huge))),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )
    assert await snapshot(rig.store) == before


async def test_one_bad_job_in_a_batch_writes_none(rig: Rig) -> None:
    before = await snapshot(rig.store)
    jobs = [ok_spec(), ok_spec(), ok_spec(payload_json=b"[1,"), ok_spec()]
    meta = await refused(rig.jobs().SubmitJobs(pb.SubmitJobsRequest(jobs=jobs)))
    assert meta["conveyor-field"] == "jobs[2].payload"
    await refused(rig.jobs().SubmitJobs(pb.SubmitJobsRequest()))  # empty batch
    assert await snapshot(rig.store) == before


async def test_bad_ids_and_filters(rig: Rig) -> None:
    stub = rig.jobs()
    assert (await refused(stub.GetJob(pb.GetJobRequest(id="nope"))))["conveyor-field"] == "id"
    assert (await refused(stub.GetJob(pb.GetJobRequest())))["conveyor-field"] == "id"
    await refused(stub.CancelJob(pb.CancelJobRequest(id="1234")))
    await refused(stub.ListJobs(pb.ListJobsRequest(limit=10_000)))
    await refused(stub.ListJobs(pb.ListJobsRequest(cursor="zzz")))


async def test_bad_worker_messages_write_nothing(rig: Rig) -> None:
    stub = rig.workers()
    await rig.jobs().SubmitJob(pb.SubmitJobRequest(job=ok_spec()))
    before = await snapshot(rig.store)
    good: dict[str, Any] = {
        "worker_id": "w1",
        "queues": ["default"],
        "max_jobs": 1,
        "lease_seconds": 5,
    }
    for bad in (
        {"worker_id": ""},
        {"queues": []},
        {"queues": ["no spaces"]},
        {"max_jobs": 0},
        {"max_jobs": 5000},
        {"lease_seconds": 0},
        {"wait_seconds": 31},
        {"wait_seconds": float("nan")},
    ):
        await refused(stub.Fetch(wpb.FetchRequest(**{**good, **bad})))
    await refused(stub.Complete(wpb.CompleteRequest(completions=[wpb.Completion(job_id="x")])))
    bad_json = wpb.Completion(
        job_id="01890000-0000-7000-8000-000000000000", lease_token=1, result_json=b"{oops"
    )
    await refused(stub.Complete(wpb.CompleteRequest(completions=[bad_json])))
    await refused(stub.Heartbeat(wpb.HeartbeatRequest(worker_id="", lease_seconds=5)))
    await refused(stub.RegisterWorker(wpb.RegisterWorkerRequest(worker=wpb.WorkerInfo(id="w"))))
    assert await snapshot(rig.store) == before


async def test_outcomes_with_a_stale_lease_are_not_applied(rig: Rig) -> None:
    stub = rig.workers()
    job = (await rig.jobs().SubmitJob(pb.SubmitJobRequest(job=ok_spec()))).job
    fetched = await stub.Fetch(
        wpb.FetchRequest(worker_id="w1", queues=["default"], max_jobs=5, lease_seconds=5)
    )
    assert [c.job.id for c in fetched.jobs] == [job.id]
    token = fetched.jobs[0].lease_token
    stale = wpb.Completion(job_id=job.id, lease_token=token - 1, result_json=b"1")
    assert list((await stub.Complete(wpb.CompleteRequest(completions=[stale]))).applied) == []
    fresh = wpb.Completion(job_id=job.id, lease_token=token, result_json=b"1")
    assert list((await stub.Complete(wpb.CompleteRequest(completions=[fresh]))).applied) == [job.id]


def _at(when: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(when)
    return t


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (ok_spec(payload_json=b'{"x": "a\\u0000b"}'), "payload"),
        (ok_spec(payload_json=b'{"a\\u0000": 1}'), "payload"),
        (ok_spec(unique_key="k\u0000"), "unique_key"),
        (ok_spec(payload_json=b'{"x": 1, "x": 2}'), "payload"),
        (ok_spec(payload_json=b'{"x": {"y": "\\"", "y": 2}}'), "payload"),
        (ok_spec(payload_json=b"\xef\xbb\xbf{}"), "payload"),
        (ok_spec(payload_json='{"x": 1}'.encode("utf-16")), "payload"),
        (ok_spec(run_at=_at(datetime(9999, 12, 31, tzinfo=UTC))), "run_at"),
        (ok_spec(run_at=_at(datetime(1, 1, 1, tzinfo=UTC))), "run_at"),
    ],
)
async def test_nul_ambiguous_json_and_far_run_at_are_invalid_argument(
    rig: Rig, spec: pb.JobSpec, field: str
) -> None:
    """Issue 19 over gRPC: the same refusals as HTTP, through the same service path."""
    before = await snapshot(rig.store)
    meta = await refused(rig.jobs().SubmitJob(pb.SubmitJobRequest(job=spec)))
    assert meta["conveyor-code"] == "invalid_input"
    assert meta["conveyor-field"] == field
    meta = await refused(rig.jobs().SubmitJobs(pb.SubmitJobsRequest(jobs=[ok_spec(), spec])))
    assert meta["conveyor-field"] == f"jobs[1].{field}"
    assert await snapshot(rig.store) == before
