"""/docs works without internet: a real `conveyor server` and a headless Chromium that may reach
nothing but the server. Every request the page makes must go to the server, and Swagger UI must
render one block per operation of /openapi.json."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from tests.dashboard.browser import CHROMIUM, FLAGS, TIMEOUT_MS, chromium
from tests.observability.stack import Stack

# Any host but loopback resolves to nothing: the machine is offline as far as the page knows.
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
METHODS = {"get", "put", "post", "delete", "patch"}


async def test_docs_render_offline(server: Stack) -> None:
    async_playwright = chromium()
    await server.wait_ready()
    async with httpx.AsyncClient() as http:
        spec = (await http.get(f"{server.api}/openapi.json")).json()
    # Swagger UI shows an operation once under each of its tags.
    blocks = sum(
        len(op.get("tags") or [None])
        for item in spec["paths"].values()
        for method, op in item.items()
        if method in METHODS
    )
    assert blocks > 20

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=[*FLAGS, OFFLINE])
        try:
            page = await browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            requested: list[str] = []
            failed: list[str] = []
            errors: list[str] = []
            page.on("request", lambda r: requested.append(r.url))
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(f"{server.api}/docs")
            await page.wait_for_selector(".opblock")
            # Swagger UI renders the operations of every tag at once (docExpansion "list").
            assert await page.locator(".opblock").count() == blocks
            assert await page.locator(".info .title").count() == 1
        finally:
            await browser.close()

    hosts = {urlsplit(u).netloc for u in requested if not u.startswith("data:")}
    assert hosts == {f"127.0.0.1:{server.api_port}"}, requested
    assert not failed, failed
    assert not errors, errors
