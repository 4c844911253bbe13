"""The deployment's topology as local processes, without Docker: NGINX (deploy/nginx) in front
of two `conveyor server`s, N workers and two schedulers, on the local PostgreSQL (and Redis
when given). For trying scale-out on one machine; tests/deploy drives its gateway test with it.

    scripts/cluster --workers 4                  # until Ctrl-C; prints the URLs and a token
    scripts/cluster --store-url postgresql://postgres@127.0.0.1:5432/test --port 8000

Every process logs to <dir>/<name>.log (JSON lines; the gateway's access log is JSON too).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NGINX_DIR = REPO / "deploy" / "nginx"
DEMO_APP = "conveyor.cli.demo:app"
_PLACEHOLDER = re.compile(r"\$\{(CONVEYOR_[A-Z0-9_]+)\}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill the ${CONVEYOR_*} placeholders as the nginx image's envsubst does, leaving nginx's
    own $variables alone; a placeholder without a value is an error, not an empty string."""
    missing = sorted({m for m in _PLACEHOLDER.findall(template) if m not in values})
    if missing:
        raise ValueError(f"no value for {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def find_nginx() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


@dataclass
class Cluster:
    """Ports are chosen free on 127.0.0.1 unless given. `tls` is (certificate, key) paths: it
    adds the HTTPS listener of deploy/nginx/tls."""

    root: Path
    store_url: str
    workers: int = 2
    schedulers: int = 2
    app: str = DEMO_APP
    env: Mapping[str, str] = field(default_factory=dict)
    tls: tuple[Path, Path] | None = None
    http_port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    https_port: int = field(default_factory=free_port)
    server_ports: list[tuple[int, int]] = field(
        default_factory=lambda: [(free_port(), free_port()) for _ in range(2)]
    )
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def server_url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.server_ports[i][0]}"

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def process_env(self) -> dict[str, str]:
        src = str(REPO / "src")
        path = os.environ.get("PYTHONPATH")
        return {
            **os.environ,
            "CONVEYOR_STORE_URL": self.store_url,
            "CONVEYOR_JWT_SECRET": self.jwt_secret,
            "PYTHONPATH": path if path and src in path.split(os.pathsep) else src,
            **self.env,
        }

    def conveyor(self, *args: str) -> str:
        """Run a one-shot `conveyor` command against the cluster's store; its stdout."""
        done = subprocess.run(
            [sys.executable, "-m", "conveyor.cli", *args],
            env=self.process_env(),
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"conveyor {' '.join(args)} failed:\n{done.stderr}")
        return done.stdout.strip()

    def write_gateway_config(self) -> Path:
        """nginx.conf for a local nginx: the deploy/nginx files under a main config of ours."""
        conf = self.root / "nginx"
        (conf / "tmp").mkdir(parents=True, exist_ok=True)
        shutil.copytree(NGINX_DIR / "conveyor", conf / "conveyor", dirs_exist_ok=True)
        values = {
            "CONVEYOR_GATEWAY_HTTP_PORT": f"127.0.0.1:{self.http_port}",
            "CONVEYOR_GATEWAY_GRPC_PORT": f"127.0.0.1:{self.grpc_port}",
            "CONVEYOR_GATEWAY_HTTPS_PORT": f"127.0.0.1:{self.https_port}",
        }
        for i, (http, grpc) in enumerate(self.server_ports, start=1):
            values[f"CONVEYOR_SERVER_{i}_HTTP"] = f"127.0.0.1:{http}"
            values[f"CONVEYOR_SERVER_{i}_GRPC"] = f"127.0.0.1:{grpc}"
        templates = [NGINX_DIR / "templates" / "conveyor.conf.template"]
        if self.tls is not None:
            values["CONVEYOR_TLS_CERT"], values["CONVEYOR_TLS_KEY"] = map(str, self.tls)
            templates.append(NGINX_DIR / "tls" / "conveyor-tls.conf.template")
        includes = []
        for template in templates:
            name = template.name.removesuffix(".template")
            (conf / name).write_text(render(template.read_text(), values))
            includes.append(f"    include {name};")
        tmp = conf / "tmp"
        main = conf / "nginx.conf"
        main.write_text(
            "\n".join(
                [
                    "# Written by scripts/cluster: a local nginx around deploy/nginx.",
                    "worker_processes 1;",
                    f"pid {conf}/nginx.pid;",
                    "error_log stderr warn;",
                    "events { worker_connections 1024; }",
                    "http {",
                    *(
                        f"    {kind}_temp_path {tmp}/{kind};"
                        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
                    ),
                    *includes,
                    "}",
                    "",
                ]
            )
        )
        return main

    def spawn(self, name: str, argv: list[str]) -> None:
        out = (self.root / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            argv, env=self.process_env(), cwd=REPO, stdout=out, stderr=subprocess.STDOUT
        )

    def spawn_server(self, i: int) -> None:
        http, grpc = self.server_ports[i]
        self.spawn(
            f"server-{i + 1}",
            [
                *(sys.executable, "-m", "conveyor.cli", "server"),
                *("--port", str(http), "--grpc-port", str(grpc), "--access-log"),
            ],
        )

    def start(self) -> None:
        """Migrate once, then start everything (not waiting: see wait_ready)."""
        nginx = find_nginx()
        if nginx is None:
            raise RuntimeError("nginx is not installed (scripts/services installs it)")
        self.root.mkdir(parents=True, exist_ok=True)
        self.conveyor("migrate")
        main = self.write_gateway_config()
        for i in range(len(self.server_ports)):
            self.spawn_server(i)
        cli = [sys.executable, "-m", "conveyor.cli"]
        for i in range(self.workers):
            self.spawn(f"worker-{i + 1}", [*cli, "worker", self.app])
        for i in range(self.schedulers):
            self.spawn(f"scheduler-{i + 1}", [*cli, "scheduler"])
        self.spawn("nginx", [nginx, "-p", str(main.parent), "-c", str(main), "-g", "daemon off;"])

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until both servers answer /readyz through their own ports and the gateway answers;
        raises if any process exited meanwhile."""
        import httpx

        deadline = time.monotonic() + timeout
        urls = [f"{self.server_url(i)}/readyz" for i in range(len(self.server_ports))]
        urls.append(f"{self.url}/readyz")
        with httpx.Client(timeout=2) as http:
            for url in urls:
                while True:
                    self.check_alive()
                    try:
                        if http.get(url).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{url} not ready after {timeout}s")
                    time.sleep(0.1)

    def check_alive(self, skip: Callable[[str], bool] = lambda _: False) -> None:
        for name, proc in self.procs.items():
            if not skip(name) and proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}):\n{self.log(name)[-4000:]}")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def signing_key(path: Path) -> str:
    """The cluster's JWT key, kept between runs (as `conveyor dev` keeps its own) so tokens
    made by an earlier run still work; made on first use, readable by its owner only."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--store-url",
        default=os.environ.get("CONVEYOR_STORE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument("--redis-url", default=os.environ.get("CONVEYOR_REDIS_URL"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--app", default=DEMO_APP, help="handlers the workers run (module:attr)")
    parser.add_argument("--port", type=int, default=8000, help="the gateway's HTTP port")
    parser.add_argument("--grpc-port", type=int, default=8001, help="the gateway's gRPC port")
    parser.add_argument("--dir", type=Path, default=REPO / "conveyor-data" / "cluster")
    args = parser.parse_args()
    env = {"CONVEYOR_REDIS_URL": args.redis_url} if args.redis_url else {}
    cluster = Cluster(
        args.dir,
        args.store_url,
        workers=args.workers,
        app=args.app,
        env=env,
        http_port=args.port,
        grpc_port=args.grpc_port,
        jwt_secret=signing_key(args.dir / "jwt-secret"),
    )
    stopping = False

    def on_signal(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        cluster.start()
        cluster.wait_ready()
        token = cluster.conveyor("token", "create", "--name", "cluster-admin", "--role", "admin")
        print(f"gateway  {cluster.url}  (gRPC {cluster.grpc_target})")
        print(f"token    {token}")
        print(f"logs     {cluster.root}/*.log    Ctrl-C stops everything")
        while not stopping:
            cluster.check_alive()
            time.sleep(0.5)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
