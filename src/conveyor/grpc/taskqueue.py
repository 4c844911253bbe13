"""`taskqueue.TaskQueueService` (platform C, proto/taskqueue.proto): its three RPCs translated
onto the same JobService and WorkerGateway calls as conveyor.v1's, through the same Guard
(auth, roles, rate limits, error mapping).

Payloads are raw bytes: stored as the marker object of conveyor.domain.payload, so handlers
receive bytes; results come back as bytes (a handler's bytes, or the JSON text of any other
result). Statuses are platform C's (conveyor.domain.compat.TASKQUEUE_STATUS).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from conveyor.domain.compat import TASKQUEUE_STATUS
from conveyor.domain.job import DEFAULT_MAX_RETRIES, DEFAULT_QUEUE, NewJob
from conveyor.domain.payload import bytes_to_json, json_to_bytes
from conveyor.domain.records import WorkerInfo
from conveyor.grpc import convert
from conveyor.grpc.auth import Context, Guard
from conveyor.grpc.gen import taskqueue_pb2 as pb
from conveyor.grpc.gen import taskqueue_pb2_grpc as pb_grpc
from conveyor.security.policy import Principal
from conveyor.service.jobs import JobService
from conveyor.service.workers import WorkerGateway

_SVC = "taskqueue.TaskQueueService/"


class TaskQueueServicer(pb_grpc.TaskQueueServiceServicer):
    def __init__(self, service: JobService, gateway: WorkerGateway, guard: Guard) -> None:
        self.service = service
        self.gateway = gateway
        self.guard = guard

    async def SubmitTask(
        self, request: pb.SubmitTaskRequest, context: Context
    ) -> pb.SubmitTaskResponse:
        async def call(p: Principal) -> pb.SubmitTaskResponse:
            r = request
            job = NewJob(
                type=r.type,
                payload=bytes_to_json(r.payload),
                queue=r.queue or DEFAULT_QUEUE,
                priority=r.priority,
                max_retries=r.max_retries if r.HasField("max_retries") else DEFAULT_MAX_RETRIES,
            )
            res = await self.service.submit(job, tenant=p.scope)
            return pb.SubmitTaskResponse(
                id=str(res.job.id), status=TASKQUEUE_STATUS[res.job.status]
            )

        return await self.guard.unary(context, _SVC + "SubmitTask", call)

    async def GetTaskStatus(
        self, request: pb.GetTaskStatusRequest, context: Context
    ) -> pb.GetTaskStatusResponse:
        async def call(p: Principal) -> pb.GetTaskStatusResponse:
            j = await self.service.get(convert.job_id(request.id), tenant=p.scope)
            result = b""
            if j.result is not None:
                raw = json_to_bytes(j.result)
                result = raw if raw is not None else convert.dumps(j.result)
            return pb.GetTaskStatusResponse(
                id=str(j.id),
                status=TASKQUEUE_STATUS[j.status],
                result=result,
                created_at=convert.ts(j.created_at),
                updated_at=convert.ts(j.updated_at),
                type=j.type,
                attempts=j.attempt,
                error=j.last_error or "",
            )

        return await self.guard.unary(context, _SVC + "GetTaskStatus", call)

    async def RegisterWorker(
        self, request: pb.RegisterWorkerRequest, context: Context
    ) -> pb.RegisterWorkerResponse:
        async def call(_: Principal) -> pb.RegisterWorkerResponse:
            r = request
            now = datetime.now(UTC)
            await self.gateway.register(
                WorkerInfo(
                    id=r.worker_id,
                    hostname=r.hostname or context.peer() or "remote",
                    pid=os.getpid(),
                    queues=list(r.queues) or [DEFAULT_QUEUE],
                    concurrency=r.concurrency or 1,
                    started_at=now,
                    last_seen_at=now,
                    meta={"task_types": list(r.task_types), "registered_by": "taskqueue"},
                )
            )
            return pb.RegisterWorkerResponse(worker_id=r.worker_id)

        return await self.guard.unary(context, _SVC + "RegisterWorker", call)
