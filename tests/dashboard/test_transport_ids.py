"""On the Redis transport the overview shows, per queue, the ids in Redis next to the store's
counts: ready to take, and taken by a worker whose store claim is not acknowledged yet (what a
dead worker leaves until the sweep). When Redis dies the counts give way to a dash, the page
stays up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conveyor import App
from conveyor.config import Settings
from conveyor.transport.redis.transport import RedisTransport
from tests.dashboard.browser import CHROMIUM, FLAGS, TIMEOUT_MS, chromium
from tests.observability.stack import Stack, migrate
from tests.transport.conftest import RedisServer


@pytest.fixture
def server(tmp_path: Path, redis_server: RedisServer) -> Iterator[Stack]:
    """A lone `conveyor server` on the Redis transport (auth off, no worker: ids stay put)."""
    stack = Stack(tmp_path, f"sqlite:///{tmp_path}/conveyor.db")
    migrate(stack.store_url)
    env = {"CONVEYOR_TRANSPORT": "redis", "CONVEYOR_REDIS_URL": redis_server.url}
    stack.spawn("server", "server", "--port", str(stack.api_port), env=env)
    try:
        yield stack
    finally:
        stack.stop()


async def test_overview_shows_each_queues_ids_in_redis(
    server: Stack, redis_server: RedisServer
) -> None:
    async_playwright = chromium()
    from playwright.async_api import expect

    await server.wait_ready()
    async with httpx.AsyncClient(base_url=server.api) as http:

        async def submit(n: int) -> None:
            resp = await http.post("/v1/jobs/batch", json={"jobs": [{"type": "t"}] * n})
            assert resp.status_code == 201, resp.text

        await submit(1)
        # A worker of this process takes the id and claims its job; until its next take or
        # wait the id stays in processing.
        settings = Settings(
            store_url=server.store_url, transport="redis", redis_url=redis_server.url
        )
        app = App(settings=settings)
        await app.open()
        try:
            transport = app.transport
            assert isinstance(transport, RedisTransport)
            claimed = await transport.worker_store(app.store).claim("w", ["default"], 5, 30)
            assert len(claimed) == 1
        finally:
            await app.close()
        await submit(3)

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = await browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(server.api + "/")
            await page.wait_for_selector("#queues")
            head = page.locator("#queues thead")
            await expect(head).to_contain_text("Redis ready")
            await expect(head).to_contain_text("Redis processing")
            row = '#queues tr[data-queue="default"]'
            await expect(page.locator(f'{row} td[data-status="queued"]')).to_have_text("3")
            await expect(page.locator(f'{row} td[data-status="running"]')).to_have_text("1")
            await expect(page.locator(f'{row} td[data-transport="ready"]')).to_have_text("3")
            await expect(page.locator(f'{row} td[data-transport="processing"]')).to_have_text("1")

            redis_server.kill()
            await page.reload()  # no counts to show now, and the page says why
            await page.wait_for_selector("#queues")
            gone = page.locator(f'{row} td[data-transport="ready"] span')
            await expect(gone).to_have_text("\u2014")  # an em dash
            await expect(gone).to_have_attribute(
                "title", "Redis does not answer: workers claim from the store until it does"
            )
            await expect(page.locator(f'{row} td[data-status="queued"]')).to_have_text("3")
            assert errors == []
        finally:
            await browser.close()
