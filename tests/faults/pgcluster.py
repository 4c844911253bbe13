"""A private PostgreSQL cluster for the fault tests: `initdb` in a temporary folder, a free
port, trust authentication, started and stopped (fast or immediate) at will, so restarting
it never touches the shared server. The server refuses to run as root, so as root the
cluster belongs to the `postgres` user and its commands run through `runuser`."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from tests.conftest import require_services

PG_BIN = Path(os.environ.get("CONVEYOR_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class PrivateCluster:
    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists():
            require_services("PostgreSQL binaries", f"no initdb in {PG_BIN}")
        self.as_user: list[str] = []
        owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                require_services("PostgreSQL cluster", "running as root and no postgres user")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.root = Path(tempfile.mkdtemp(prefix="conveyor-faults-pg-"))
        if owner is not None:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.as_user, str(PG_BIN / tool), *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            # No fsync: the machine never crashes here, only the server, and the page cache
            # survives that; commits stay synchronous, so an acknowledged one survives too.
            "-c fsync=off -c full_page_writes=off"
        )
        done = self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.log),
            "-w",
            "start",
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"pg_ctl start failed: {done.stderr}\n{self.log.read_text()[-3000:]}"
            )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def destroy(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def cluster_or_skip() -> PrivateCluster:
    try:
        return PrivateCluster()
    except (OSError, subprocess.SubprocessError) as exc:
        require_services("PostgreSQL cluster", f"cannot make one: {exc}")
        raise  # unreachable
