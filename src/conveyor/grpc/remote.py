"""RemoteWorkerStore: the worker side of the Store protocol over gRPC, so
`Worker(RemoteWorkerStore(...), registry)` is the same executor as a direct worker, with jobs
coming from a Conveyor server (which also does the housekeeping).

Claims long-poll: `claim` asks the server to wait up to `wait_seconds` when nothing is ready
(the server waits on the store's LISTEN/NOTIFY wake-up), and `wait_for_jobs` returns at once.
One call then both waits and claims, so an idle worker makes one call per `wait_seconds` and a
new job starts within a round trip, instead of a wait call followed by a claim call. A claim
that did find jobs returns at once; the executor only claims up to its free slots, so the
batch sizes (and the outcome and heartbeat batching of the executor) carry over unchanged.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar
from urllib.parse import urlsplit

import grpc
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conveyor.domain.errors import InvalidInput, StoreUnavailable
from conveyor.domain.job import JSON, Job
from conveyor.domain.records import Completion, Failure, Lease, Release, WorkerInfo
from conveyor.grpc import convert
from conveyor.grpc.errors import from_rpc_error
from conveyor.grpc.gen.conveyor.v1 import worker_pb2 as pb
from conveyor.grpc.gen.conveyor.v1 import worker_pb2_grpc as pb_grpc

T = TypeVar("T")

CALL_TIMEOUT = 30.0  # seconds for any call but a long-polling claim

# A Fetch answer carries up to max_jobs payloads: no receive cap (the server is trusted, and it
# already capped what it accepted). Keepalive pings notice a dead connection mid long-poll.
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.keepalive_time_ms", 30_000),
]


def parse_target(url: str) -> str:
    """`grpc://host:port` (or bare `host:port`) -> the channel target `host:port`."""
    if "://" not in url:
        url = "grpc://" + url
    parts = urlsplit(url)
    if parts.scheme != "grpc" or not parts.hostname:
        raise InvalidInput(f"server must look like grpc://host:port (got {url!r})", field="server")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port or 50051}"


class RemoteWorkerStore:
    def __init__(self, server: str, token: str | None = None, *, wait_seconds: float = 5.0) -> None:
        self.url = server
        self.target = parse_target(server)
        self.wait_seconds = wait_seconds
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ()
        )
        self._channel: aio.Channel | None = None
        self._stub: pb_grpc.WorkerServiceAsyncStub | None = None
        self._fetching: aio.UnaryUnaryCall[pb.FetchRequest, pb.FetchResponse] | None = None

    # -- lifecycle ---------------------------------------------------------------------
    async def connect(self) -> None:
        if self._channel is None:
            self._channel = aio.insecure_channel(self.target, options=CHANNEL_OPTIONS)
            self._stub = pb_grpc.WorkerServiceStub(self._channel)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
            self._stub = None

    @property
    def stub(self) -> pb_grpc.WorkerServiceAsyncStub:
        if self._stub is None:
            raise RuntimeError("RemoteWorkerStore is not connected: await connect() first")
        return self._stub

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the server answers its health check as SERVING."""
        if self._channel is None:
            raise StoreUnavailable("not connected")
        stub = health_pb2_grpc.HealthStub(self._channel)
        try:
            reply = await stub.Check(  # type: ignore[attr-defined]  # missing from types-grpcio
                health_pb2.HealthCheckRequest(), timeout=5.0
            )
        except grpc.RpcError as exc:
            raise StoreUnavailable(f"server {self.target} unreachable: {exc}") from exc
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            raise StoreUnavailable(f"server {self.target} is not serving")

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fn()
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc

    # -- the worker protocol -----------------------------------------------------------
    async def claim(
        self, worker_id: str, queues: Sequence[str], limit: int, lease_seconds: float
    ) -> list[Job]:
        request = pb.FetchRequest(
            worker_id=worker_id,
            queues=list(queues),
            max_jobs=limit,
            lease_seconds=lease_seconds,
            wait_seconds=self.wait_seconds,
        )
        call = self.stub.Fetch(
            request, metadata=self._metadata, timeout=self.wait_seconds + CALL_TIMEOUT
        )
        self._fetching = call
        try:
            reply = await self._call(lambda: call)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not call.cancelled() or (task is not None and task.cancelling()):
                raise  # this task itself is being cancelled, not just the call
            return []  # interrupt_claim(): the worker is stopping
        finally:
            self._fetching = None
        return [convert.job_from_pb(c.job, c.lease_token) for c in reply.jobs]

    async def reclaim(
        self, worker_id: str, held: Sequence[uuid.UUID], lease_seconds: float
    ) -> list[Job]:
        request = pb.ReclaimRequest(
            worker_id=worker_id, held=[str(i) for i in held], lease_seconds=lease_seconds
        )
        reply = await self._call(
            lambda: self.stub.Reclaim(request, metadata=self._metadata, timeout=CALL_TIMEOUT)
        )
        return [convert.job_from_pb(c.job, c.lease_token) for c in reply.jobs]

    def interrupt_claim(self) -> None:
        """End a long-polling claim now (the worker is stopping); it returns no jobs, and the
        server hands back any it had claimed for the abandoned call."""
        if self._fetching is not None:
            self._fetching.cancel()

    async def wait_for_jobs(self, queues: Sequence[str], timeout: float) -> None:
        """The claim already waited on the server; yield to the loop and claim again."""
        await asyncio.sleep(0)

    async def complete_many(self, completions: Sequence[Completion]) -> list[uuid.UUID]:
        request = pb.CompleteRequest(
            completions=[
                pb.Completion(
                    job_id=str(c.job_id),
                    lease_token=c.lease_token,
                    result_json=_result_json(c),
                )
                for c in completions
            ]
        )
        reply = await self._call(
            lambda: self.stub.Complete(request, metadata=self._metadata, timeout=CALL_TIMEOUT)
        )
        return [uuid.UUID(i) for i in reply.applied]

    async def fail_many(self, failures: Sequence[Failure]) -> list[uuid.UUID]:
        items = []
        for f in failures:
            item = pb.Failure(job_id=str(f.job_id), lease_token=f.lease_token, error=f.error)
            if f.retry_at is not None:
                item.retry_at.CopyFrom(convert.ts(f.retry_at))
            items.append(item)
        request = pb.FailRequest(failures=items)
        reply = await self._call(
            lambda: self.stub.Fail(request, metadata=self._metadata, timeout=CALL_TIMEOUT)
        )
        return [uuid.UUID(i) for i in reply.applied]

    async def release_many(self, releases: Sequence[Release]) -> list[uuid.UUID]:
        items = []
        for r in releases:
            item = pb.Release(job_id=str(r.job_id), lease_token=r.lease_token, reason=r.reason)
            if r.run_at is not None:
                item.run_at.CopyFrom(convert.ts(r.run_at))
            items.append(item)
        request = pb.ReleaseRequest(releases=items)
        reply = await self._call(
            lambda: self.stub.Release(request, metadata=self._metadata, timeout=CALL_TIMEOUT)
        )
        return [uuid.UUID(i) for i in reply.applied]

    async def heartbeat(
        self, worker_id: str, leases: Sequence[Lease], lease_seconds: float
    ) -> list[uuid.UUID]:
        request = pb.HeartbeatRequest(
            worker_id=worker_id,
            leases=[pb.Lease(job_id=str(le.job_id), lease_token=le.lease_token) for le in leases],
            lease_seconds=lease_seconds,
        )
        reply = await self._call(
            lambda: self.stub.Heartbeat(request, metadata=self._metadata, timeout=CALL_TIMEOUT)
        )
        return [uuid.UUID(i) for i in reply.held]

    async def register_worker(self, info: WorkerInfo) -> None:
        request = pb.RegisterWorkerRequest(
            worker=pb.WorkerInfo(
                id=info.id,
                hostname=info.hostname,
                pid=info.pid,
                queues=info.queues,
                concurrency=info.concurrency,
                started_at=convert.ts(info.started_at),
                meta_json=convert.dumps(info.meta),
            )
        )
        await self._call(
            lambda: self.stub.RegisterWorker(request, metadata=self._metadata, timeout=CALL_TIMEOUT)
        )

    async def touch_worker(self, worker_id: str, running: int, meta: JSON | None = None) -> None:
        request = pb.HeartbeatRequest(
            worker_id=worker_id,
            status=pb.WorkerStatus(
                running=running, meta_json=b"" if meta is None else convert.dumps(meta)
            ),
        )
        await self._call(
            lambda: self.stub.Heartbeat(request, metadata=self._metadata, timeout=CALL_TIMEOUT)
        )

    async def deregister_worker(self, worker_id: str) -> None:
        request = pb.DeregisterWorkerRequest(worker_id=worker_id)
        await self._call(
            lambda: self.stub.DeregisterWorker(
                request, metadata=self._metadata, timeout=CALL_TIMEOUT
            )
        )


def _result_json(c: Completion) -> bytes:
    """The result as the worker encoded it; empty bytes stand for no result."""
    if c.result is None:
        return b""
    return c.result_json if c.result_json is not None else convert.dumps(c.result)
