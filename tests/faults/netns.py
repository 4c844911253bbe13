"""A worker's own network: a namespace joined to the host by a veth pair on a private /30, a
partition (the host end of the link taken down: packets vanish, no connection is reset), and
added latency. The kernel here has no `netem` qdisc, so latency comes from a forwarding proxy
on the host end that holds every chunk for `delay` seconds each way; the namespace reaches
PostgreSQL only through it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import subprocess
from urllib.parse import urlsplit, urlunsplit

from tests.conftest import require_services


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


class Netns:
    def __init__(self) -> None:
        tag = f"{os.getpid() % 10000:04d}{random.randrange(16**3):03x}"
        self.name = f"cvf{tag}"
        self.host_if, self.ns_if = f"cvf{tag}h", f"cvf{tag}n"
        octet = random.randrange(256)
        self.host_ip, self.ns_ip = f"10.213.{octet}.1", f"10.213.{octet}.2"

    def up(self) -> None:
        """Make the namespace and link, or skip (fail under CONVEYOR_REQUIRE_SERVICES) when this
        machine cannot: not root, no CAP_NET_ADMIN, no `ip`."""
        if shutil.which("ip") is None:
            require_services("network namespaces", "iproute2's `ip` is not installed")
        steps = [
            ("netns", "add", self.name),
            ("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if),
            ("link", "set", self.ns_if, "netns", self.name),
            ("addr", "add", f"{self.host_ip}/30", "dev", self.host_if),
            ("link", "set", self.host_if, "up"),
            ("-n", self.name, "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if),
            ("-n", self.name, "link", "set", self.ns_if, "up"),
            ("-n", self.name, "link", "set", "lo", "up"),
        ]
        for step in steps:
            done = _ip(*step)
            if done.returncode != 0:
                self.down()
                require_services(
                    "network namespaces",
                    f"`ip {' '.join(step)}` failed (needs root with CAP_NET_ADMIN): "
                    f"{done.stderr.strip()}",
                )

    def partition(self) -> None:
        assert _ip("link", "set", self.host_if, "down").returncode == 0

    def heal(self) -> None:
        assert _ip("link", "set", self.host_if, "up").returncode == 0

    def down(self) -> None:
        _ip("link", "del", self.host_if)
        _ip("netns", "del", self.name)


class DelayProxy:
    """Forwards `listen_host:port` to `target`, holding each chunk `delay` seconds (changeable
    while it runs) in each direction, order kept."""

    def __init__(self, listen_host: str, target: tuple[str, int], delay: float = 0.0) -> None:
        self.listen_host = listen_host
        self.target = target
        self.delay = delay
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, self.listen_host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def url(self, store_url: str) -> str:
        """`store_url` reached through this proxy."""
        parts = urlsplit(store_url)
        user = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return urlunsplit(parts._replace(netloc=f"{user}{self.listen_host}:{self.port}"))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def read() -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    queue.put_nowait((loop.time() + self.delay, data))
            queue.put_nowait((loop.time() + self.delay, b""))

        async def write() -> None:
            try:
                while True:
                    due, data = await queue.get()
                    if due > loop.time():
                        await asyncio.sleep(due - loop.time())
                    if not data:
                        return
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(read(), write())

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()
        if self._server is not None:
            await self._server.wait_closed()
