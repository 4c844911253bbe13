from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
import uvicorn

from conveyor.api import create_app
from conveyor.store import Store
from tests.api.conftest import admin_headers, api_settings
from tests.helpers import wait_until


@pytest_asyncio.fixture
async def server_url(store_url: str, store: Store) -> AsyncIterator[str]:
    """A real uvicorn server on a free loopback port, in a thread with its own event loop and
    its own store connection (the `store` fixture has migrated the schema)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = api_settings(store_url)
    config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"

    async def healthy() -> bool:
        try:
            async with httpx.AsyncClient(base_url=url) as c:
                return (await c.get("/healthz")).status_code == 200
        except httpx.TransportError:
            return False

    try:
        await wait_until(healthy, timeout=10, message="the API server to answer /healthz")
        yield url
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 10)
        sock.close()


def admin_token() -> str:
    """A bearer token the test server (api_settings) accepts, for conveyor.Client(token=…)."""
    return admin_headers(api_settings("unused")).get("Authorization", "").removeprefix("Bearer ")
