"""JobService: the HTTP API's /v1/jobs use cases over gRPC, through the same JobService."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from conveyor.domain.errors import InvalidInput
from conveyor.domain.records import JobFilter
from conveyor.grpc import convert
from conveyor.grpc.auth import Context, Guard
from conveyor.grpc.gen.conveyor.v1 import jobs_pb2 as pb
from conveyor.grpc.gen.conveyor.v1 import jobs_pb2_grpc as pb_grpc
from conveyor.security.policy import Principal
from conveyor.service.jobs import JobService

_SVC = "conveyor.v1.JobService/"


class JobServicer(pb_grpc.JobServiceServicer):
    def __init__(self, service: JobService, guard: Guard) -> None:
        self.service = service
        self.guard = guard

    async def SubmitJob(
        self, request: pb.SubmitJobRequest, context: Context
    ) -> pb.SubmitJobResponse:
        async def call(p: Principal) -> pb.SubmitJobResponse:
            job = convert.spec_to_new_job(request.job, datetime.now(UTC))
            res = await self.service.submit(job, tenant=p.scope)
            return pb.SubmitJobResponse(job=convert.job_to_pb(res.job), created=res.created)

        return await self.guard.unary(context, _SVC + "SubmitJob", call)

    async def SubmitJobs(
        self, request: pb.SubmitJobsRequest, context: Context
    ) -> pb.SubmitJobsResponse:
        async def call(p: Principal) -> pb.SubmitJobsResponse:
            now = datetime.now(UTC)
            jobs = []
            for i, spec in enumerate(request.jobs):
                try:
                    jobs.append(convert.spec_to_new_job(spec, now))
                except InvalidInput as exc:
                    raise InvalidInput(
                        f"jobs[{i}]: {exc.message}", field=f"jobs[{i}].{exc.field}"
                    ) from exc
            results = await self.service.submit_many(jobs, tenant=p.scope)
            return pb.SubmitJobsResponse(
                jobs=[convert.job_to_pb(r.job) for r in results],
                created=[r.created for r in results],
            )

        return await self.guard.unary(context, _SVC + "SubmitJobs", call)

    async def GetJob(self, request: pb.GetJobRequest, context: Context) -> pb.Job:
        async def call(p: Principal) -> pb.Job:
            job = await self.service.get(convert.job_id(request.id), tenant=p.scope)
            return convert.job_to_pb(job)

        return await self.guard.unary(context, _SVC + "GetJob", call)

    async def ListJobs(self, request: pb.ListJobsRequest, context: Context) -> pb.ListJobsResponse:
        async def call(p: Principal) -> pb.ListJobsResponse:
            r = request
            flt = JobFilter(
                queue=r.queue if r.HasField("queue") else None,
                status=convert.STATUS_FROM_PB.get(r.status),
                type=r.type if r.HasField("type") else None,
                tag=r.tag if r.HasField("tag") else None,
                created_after=convert.from_ts(r.created_after)
                if r.HasField("created_after")
                else None,
                created_before=convert.from_ts(r.created_before)
                if r.HasField("created_before")
                else None,
            )
            cursor = convert.job_id(r.cursor, "cursor") if r.cursor else None
            page = await self.service.list_jobs(
                flt, limit=r.limit or 50, cursor=cursor, tenant=p.scope
            )
            return pb.ListJobsResponse(
                jobs=[convert.job_to_pb(j) for j in page.jobs],
                next_cursor=str(page.next_cursor) if page.next_cursor else "",
            )

        return await self.guard.unary(context, _SVC + "ListJobs", call)

    async def CancelJob(self, request: pb.CancelJobRequest, context: Context) -> pb.Job:
        async def call(p: Principal) -> pb.Job:
            job = await self.service.cancel(convert.job_id(request.id), tenant=p.scope)
            return convert.job_to_pb(job)

        return await self.guard.unary(context, _SVC + "CancelJob", call)

    async def WatchJob(
        self, request: pb.WatchJobRequest, context: Context
    ) -> AsyncIterator[pb.Job]:
        async def call(p: Principal) -> AsyncIterator[pb.Job]:
            job_id = convert.job_id(request.id)
            interval = self.service.settings.api_wait_interval
            seen = None
            while True:
                job = await self.service.get(job_id, tenant=p.scope)
                if (job.status, job.attempt) != seen:
                    seen = (job.status, job.attempt)
                    yield convert.job_to_pb(job)
                if job.status.terminal:
                    return
                await asyncio.sleep(interval)

        async for item in self.guard.stream(context, _SVC + "WatchJob", call):
            yield item
