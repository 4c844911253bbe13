"""A live gateway: Debian's nginx with deploy/nginx in front of two real `conveyor server`
processes on the local PostgreSQL, as scripts/cluster runs them (one worker and no scheduler
here, to spare the CPU). One cluster for the module: starting it costs seconds."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PG_DSN, _pg_connect, require_services, with_schema
from tests.deploy.tools import cluster_module


def self_signed(dir: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own CA, so a client can trust exactly it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "conveyor-gateway-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = dir / "gateway.crt", dir / "gateway.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


async def _create_schema(schema: str) -> None:
    conn = await _pg_connect()
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()


async def _drop_schema(schema: str) -> None:
    conn = await _pg_connect()
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if cluster_module.find_nginx() is None:
        require_services("nginx", "not installed (scripts/services installs it)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_create_schema(schema))
    root = tmp_path_factory.mktemp("cluster")
    c = cluster_module.Cluster(
        root,
        with_schema(PG_DSN, schema),
        workers=1,
        schedulers=0,  # nothing here is delayed or cron: spare the CPU
        tls=self_signed(root),
        env={
            "CONVEYOR_POLL_INTERVAL": "0.05",
            "CONVEYOR_API_WAIT_INTERVAL": "0.05",
            "CONVEYOR_SCHEDULER_TICK": "0.2",
            "CONVEYOR_HEARTBEAT_INTERVAL": "0.5",
            "CONVEYOR_LOG_LEVEL": "INFO",
        },
    )
    try:
        c.start()
        # The token's own process starts while the servers do (each start costs seconds).
        token = subprocess.Popen(
            [sys.executable, "-m", "conveyor.cli", "token", "create", "--name", "gw", "--role",
             "admin"],
            env=c.process_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        c.wait_ready()
        out, err = token.communicate(timeout=60)
        assert token.returncode == 0, err
        c.token = out.strip()
        yield c
    finally:
        c.stop()
        asyncio.run(_drop_schema(schema))
