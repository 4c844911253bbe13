"""Issue 18 at the gRPC door: a job type no handler is known for is accepted, as at every door,
and a remote worker consuming every queue (ALL_QUEUES) takes it from any queue and
dead-letters it with an error naming the types it knows."""

from __future__ import annotations

from typing import Any

import orjson

from conveyor.domain.job import ALL_QUEUES
from conveyor.grpc.gen.conveyor.v1 import jobs_pb2 as pb
from conveyor.worker import Registry
from tests.grpc.conftest import Rig, running
from tests.helpers import wait_until

S = pb.JobStatus


async def test_unknown_type_is_accepted_and_dead_lettered_by_an_all_queues_worker(
    rig: Rig,
) -> None:
    stub = rig.jobs()
    reply = await stub.SubmitJob(
        pb.SubmitJobRequest(
            job=pb.JobSpec(type="email.send", queue="email", payload_json=orjson.dumps({}))
        )
    )
    assert reply.created and reply.job.status == S.JOB_STATUS_QUEUED

    registry = Registry()

    async def echo(payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    registry.register("t.echo", echo)  # on `default`; the worker still reads every queue
    async with running(await rig.remote_worker(registry, queues=[ALL_QUEUES])):

        async def dead() -> pb.Job | None:
            j = await stub.GetJob(pb.GetJobRequest(id=reply.job.id))
            return j if j.status == S.JOB_STATUS_DEAD else None

        job = await wait_until(dead, timeout=15, message="the job to be dead-lettered")
    assert "unknown job type 'email.send'" in job.last_error and "t.echo" in job.last_error
