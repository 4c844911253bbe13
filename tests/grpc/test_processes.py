"""A real remote worker process (`conveyor worker APP --server grpc://… --token …`): killed
mid-job it loses its lease like any crashed worker, and the job completes elsewhere."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from conveyor.domain.job import JobStatus, NewJob
from conveyor.domain.records import Role
from tests.e2e import apps
from tests.grpc.conftest import RigFactory, running
from tests.helpers import child_pythonpath, wait_until

REPO = Path(__file__).resolve().parents[2]


def spawn_remote_worker(url: str, token: str, *args: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CONVEYOR_HEARTBEAT_INTERVAL": "0.2",
        "CONVEYOR_POLL_INTERVAL": "0.1",
        "CONVEYOR_GRPC_FETCH_WAIT": "1",
        "CONVEYOR_TOKEN": token,  # from the environment, as in a deployment
        # No store for this process: a remote worker must not need one.
        "CONVEYOR_STORE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "PYTHONPATH": child_pythonpath(),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "conveyor.cli",
            "worker",
            "tests.e2e.apps:app",
            "--server",
            url,
            *args,
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def test_killed_remote_worker_loses_its_lease(make_rig: RigFactory, tmp_path: Path) -> None:
    rig = await make_rig(auth_enabled=True)
    token = rig.token(Role.WORKER, name="remote-proc")
    job = (
        await rig.service.submit(
            NewJob(type="proc.slow", payload={"marker_dir": str(tmp_path), "seconds": 60})
        )
    ).job
    victim = spawn_remote_worker(rig.url, token, "--lease", "1")
    try:
        await wait_until(
            lambda: (tmp_path / f"{job.id}.1").exists() or victim.poll() is not None,
            timeout=20,
            message="first attempt to start in the remote worker",
        )
        assert victim.poll() is None, victim.stderr.read().decode() if victim.stderr else ""
        running_job = await rig.store.get_job(job.id)
        assert running_job.status == JobStatus.RUNNING
        victim.send_signal(signal.SIGKILL)
        assert await asyncio.to_thread(victim.wait, 10) == -signal.SIGKILL
    finally:
        victim.kill()
        victim.wait(10)
    # The server's housekeeping reaps the lease; another remote worker finishes the job.
    rescuer = await rig.remote_worker(apps.app.registry, token, worker_id=f"r-{uuid.uuid4()}")
    async with running(rescuer):

        async def completed() -> bool:
            return (await rig.store.get_job(job.id)).status == JobStatus.COMPLETED

        await wait_until(completed, timeout=20, message="job to be recovered and completed")
    done = await rig.store.get_job(job.id)
    assert done.attempt == 2  # the lost attempt counted
    assert done.result["attempt"] == 2
    events = await rig.store.job_events(job.id)
    assert any("lease" in (e.message or "") for e in events)


async def test_sigterm_stops_a_parked_remote_worker_promptly(make_rig: RigFactory) -> None:
    rig = await make_rig(auth_enabled=True)
    token = rig.token(Role.WORKER, name="remote-proc")
    proc = spawn_remote_worker(rig.url, token)
    try:

        async def registered() -> bool:
            return bool(await rig.store.list_workers()) or proc.poll() is not None

        await wait_until(registered, timeout=20, message="remote worker to register")
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            # Not proc.wait(): the server shares this event loop, and the worker's last calls
            # (hand back, deregister) need it to answer.
            code = await asyncio.to_thread(proc.wait, 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            raise AssertionError(proc.stderr.read().decode() if proc.stderr else "") from None
        assert code == 0, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() - t0 < 3
    finally:
        proc.kill()
        proc.wait(10)
    assert await rig.store.list_workers() == []


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn_server(env: dict[str, str], http_port: int, grpc_port: int) -> subprocess.Popen[bytes]:
    cli = [sys.executable, "-m", "conveyor.cli"]
    subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True)
    return subprocess.Popen(
        [*cli, "server", "--port", str(http_port), "--grpc-port", str(grpc_port)],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def test_conveyor_server_serves_http_and_grpc_in_one_process(tmp_path: Path) -> None:
    import httpx
    from grpc import aio
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from conveyor.grpc.gen.conveyor.v1 import jobs_pb2, jobs_pb2_grpc

    url = f"sqlite:///{tmp_path}/server.db"
    env = {
        **os.environ,
        "CONVEYOR_STORE_URL": url,
        "CONVEYOR_AUTH_ENABLED": "false",
        "PYTHONPATH": child_pythonpath(),
    }
    http_port, grpc_port = _free_port(), _free_port()
    proc = spawn_server(env, http_port, grpc_port)
    try:
        async with (
            aio.insecure_channel(f"127.0.0.1:{grpc_port}") as ch,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as http,
        ):
            health = health_pb2_grpc.HealthStub(ch)
            reply = await health.Check(
                health_pb2.HealthCheckRequest(), wait_for_ready=True, timeout=20
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            submitted = await jobs_pb2_grpc.JobServiceStub(ch).SubmitJob(
                jobs_pb2.SubmitJobRequest(job=jobs_pb2.JobSpec(type="t.both"))
            )

            async def http_sees_it() -> bool:
                try:
                    resp = await http.get(f"/v1/jobs/{submitted.job.id}")
                except httpx.TransportError:
                    return False
                return resp.status_code == 200 and resp.json()["type"] == "t.both"

            await wait_until(http_sees_it, timeout=20, message="HTTP to serve the same store")
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 15)
        assert code == 0, proc.stderr.read().decode() if proc.stderr else ""
    finally:
        proc.kill()
        proc.wait(10)
