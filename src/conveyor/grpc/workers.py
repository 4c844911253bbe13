"""WorkerService: the worker protocol for remote workers, over conveyor.worker.gateway."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from datetime import UTC, datetime

from conveyor.domain.job import Job
from conveyor.domain.records import Completion, Failure, Lease, Release, WorkerInfo
from conveyor.grpc import convert
from conveyor.grpc.auth import Context, Guard
from conveyor.grpc.gen.conveyor.v1 import worker_pb2 as pb
from conveyor.grpc.gen.conveyor.v1 import worker_pb2_grpc as pb_grpc
from conveyor.security.policy import Principal
from conveyor.service.workers import WorkerGateway

_SVC = "conveyor.v1.WorkerService/"


def _ids(ids: Sequence[object]) -> list[str]:
    return [str(i) for i in ids]


def _fetched(jobs: Sequence[Job]) -> pb.FetchResponse:
    return pb.FetchResponse(
        jobs=[pb.ClaimedJob(job=convert.job_to_pb(j), lease_token=j.lease_token) for j in jobs]
    )


class WorkerServicer(pb_grpc.WorkerServiceServicer):
    def __init__(self, gateway: WorkerGateway, guard: Guard) -> None:
        self.gateway = gateway
        self.guard = guard
        self._tasks: set[asyncio.Task[None]] = set()

    async def RegisterWorker(
        self, request: pb.RegisterWorkerRequest, context: Context
    ) -> pb.RegisterWorkerResponse:
        async def call(_: Principal) -> pb.RegisterWorkerResponse:
            w = request.worker
            now = datetime.now(UTC)
            meta = convert.loads(w.meta_json, "meta_json", empty={})
            await self.gateway.register(
                WorkerInfo(
                    id=w.id,
                    hostname=w.hostname or context.peer() or "remote",
                    pid=w.pid or os.getpid(),
                    queues=list(w.queues),
                    concurrency=w.concurrency,
                    started_at=convert.from_ts(w.started_at) if w.HasField("started_at") else now,
                    last_seen_at=now,
                    meta=meta if isinstance(meta, dict) else {},
                )
            )
            return pb.RegisterWorkerResponse()

        return await self.guard.unary(context, _SVC + "RegisterWorker", call)

    def _abandoned(self, context: Context, jobs: list[Job]) -> None:
        """The call ended: if the worker hung up before the answer reached it, the jobs it
        never saw go back to the queue now instead of waiting out their leases."""
        if not context.cancelled():
            return
        task = asyncio.get_running_loop().create_task(self.gateway.hand_back(jobs))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def DeregisterWorker(
        self, request: pb.DeregisterWorkerRequest, context: Context
    ) -> pb.DeregisterWorkerResponse:
        async def call(_: Principal) -> pb.DeregisterWorkerResponse:
            await self.gateway.deregister(request.worker_id)
            return pb.DeregisterWorkerResponse()

        return await self.guard.unary(context, _SVC + "DeregisterWorker", call)

    async def Fetch(self, request: pb.FetchRequest, context: Context) -> pb.FetchResponse:
        async def call(_: Principal) -> pb.FetchResponse:
            r = request
            jobs = await self.gateway.fetch(
                r.worker_id, list(r.queues), r.max_jobs, r.lease_seconds, r.wait_seconds
            )
            if jobs:
                # types-grpcio types the callback as a class, not a callable
                context.add_done_callback(lambda ctx: self._abandoned(ctx, jobs))  # type: ignore[arg-type]
            return _fetched(jobs)

        return await self.guard.unary(context, _SVC + "Fetch", call)

    async def Reclaim(self, request: pb.ReclaimRequest, context: Context) -> pb.FetchResponse:
        async def call(_: Principal) -> pb.FetchResponse:
            r = request
            held = [convert.job_id(i, "held") for i in r.held]
            jobs = await self.gateway.reclaim(r.worker_id, held, r.lease_seconds)
            return _fetched(jobs)

        return await self.guard.unary(context, _SVC + "Reclaim", call)

    async def Complete(self, request: pb.CompleteRequest, context: Context) -> pb.OutcomeResponse:
        async def call(_: Principal) -> pb.OutcomeResponse:
            done = [
                Completion(
                    convert.job_id(c.job_id, "job_id"),
                    c.lease_token,
                    convert.loads(c.result_json, "result_json"),
                    c.result_json or None,
                )
                for c in request.completions
            ]
            return pb.OutcomeResponse(applied=_ids(await self.gateway.complete(done)))

        return await self.guard.unary(context, _SVC + "Complete", call)

    async def Fail(self, request: pb.FailRequest, context: Context) -> pb.OutcomeResponse:
        async def call(_: Principal) -> pb.OutcomeResponse:
            failed = [
                Failure(
                    convert.job_id(f.job_id, "job_id"),
                    f.lease_token,
                    f.error,
                    convert.from_ts(f.retry_at) if f.HasField("retry_at") else None,
                )
                for f in request.failures
            ]
            return pb.OutcomeResponse(applied=_ids(await self.gateway.fail(failed)))

        return await self.guard.unary(context, _SVC + "Fail", call)

    async def Release(self, request: pb.ReleaseRequest, context: Context) -> pb.OutcomeResponse:
        async def call(_: Principal) -> pb.OutcomeResponse:
            released = [
                Release(
                    convert.job_id(r.job_id, "job_id"),
                    r.lease_token,
                    convert.from_ts(r.run_at) if r.HasField("run_at") else None,
                    r.reason or "released",
                )
                for r in request.releases
            ]
            return pb.OutcomeResponse(applied=_ids(await self.gateway.release(released)))

        return await self.guard.unary(context, _SVC + "Release", call)

    async def Heartbeat(
        self, request: pb.HeartbeatRequest, context: Context
    ) -> pb.HeartbeatResponse:
        async def call(_: Principal) -> pb.HeartbeatResponse:
            r = request
            leases = [Lease(convert.job_id(le.job_id, "job_id"), le.lease_token) for le in r.leases]
            status = None
            if r.HasField("status"):
                meta = convert.loads(r.status.meta_json, "meta_json")
                status = (r.status.running, meta if isinstance(meta, dict) else None)
            held = await self.gateway.heartbeat(r.worker_id, leases, r.lease_seconds, status)
            return pb.HeartbeatResponse(held=_ids(held))

        return await self.guard.unary(context, _SVC + "Heartbeat", call)
