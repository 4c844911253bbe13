"""On a fresh `conveyor dev` (its own process, a new SQLite file, auth on), each platform's
documented request runs to completion, gRPC included: the demo app has their handlers."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from grpc import aio

from tests.compat import test_platform_a, test_platform_b, test_platform_d
from tests.compat.conftest import read_until
from tests.compat.test_platform_c import RAW, SERVICE, SUBMIT, _reflect
from tests.helpers import wait_until

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[tuple[str, str, subprocess.Popen[str]]]:
    http_port, grpc_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "CONVEYOR_GRPC_PORT": str(grpc_port),
        "CONVEYOR_POLL_INTERVAL": "0.1",
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("CONVEYOR_STORE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli", "dev", "--port", str(http_port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", proc
    finally:
        proc.terminate()
        proc.wait(15)


async def test_every_platform_s_request_completes_on_a_fresh_dev(
    dev: tuple[str, str, subprocess.Popen[str]],
) -> None:
    http_url, grpc_target, proc = dev
    assert proc.stdout is not None
    banner = ""
    while "Ctrl-C" not in banner:  # the banner ends with it; readline returns "" at exit
        line = await asyncio.to_thread(proc.stdout.readline)
        assert line, f"conveyor dev exited: {banner}"
        banner += line
    assert f"gRPC: 127.0.0.1:{grpc_target.split(':')[1]}" in banner
    password = re.search(r"not stored\):\n\s+(\S+)", banner)
    assert password, banner

    async with httpx.AsyncClient(base_url=http_url, timeout=10) as anonymous:

        async def up() -> bool:
            try:
                return (await anonymous.get("/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_until(up, timeout=20, message="conveyor dev to answer")
        login = await anonymous.post(
            "/login", json={"username": "admin", "password": password.group(1)}
        )
        assert login.status_code == 200, login.text
    token = login.json()["token"]

    async with httpx.AsyncClient(
        base_url=http_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    ) as client:
        for path, body, status_url in (
            ("/jobs", test_platform_a.JOB, "/jobs/{id}"),
            ("/jobs", test_platform_b.JOB, "/jobs/{id}"),
            ("/task", test_platform_d.TASK, "/task/{id}"),
        ):
            resp = await client.post(path, json=body)
            assert resp.status_code in (201, 202), resp.text
            job_id = resp.json().get("id") or resp.json()["task_id"]

            async def read(url: str = status_url.format(id=job_id)) -> dict[str, Any]:
                answer: dict[str, Any] = (await client.get(url)).json()
                return answer

            await read_until(read, "completed")

    methods = await asyncio.to_thread(_reflect, grpc_target)
    submit_cls, submit_out = methods["SubmitTask"]
    status_cls, status_out = methods["GetTaskStatus"]
    metadata = (("authorization", f"Bearer {token}"),)
    async with aio.insecure_channel(grpc_target) as channel:
        submit = channel.unary_unary(
            f"/{SERVICE}/SubmitTask",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=submit_out.FromString,
        )
        get = channel.unary_unary(
            f"/{SERVICE}/GetTaskStatus",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=status_out.FromString,
        )
        task = await submit(json_format.ParseDict(SUBMIT, submit_cls()), metadata=metadata)

        async def status() -> dict[str, Any]:
            answer = await get(status_cls(id=task.id), metadata=metadata)
            return json_format.MessageToDict(answer, preserving_proto_field_name=True)

        done = await read_until(status, "completed")
    assert base64.b64decode(done["result"]) == RAW.upper()
