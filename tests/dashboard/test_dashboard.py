"""The web dashboard, end to end in a real headless Chromium (Debian's, driven by Playwright).

A real `conveyor server` and `conveyor worker` run on loopback ports. An operator signs in
(when the server has auth), pauses a queue, watches it fill while paused and drain once
resumed, requeues a dead job, fixes another's payload and requeues it (it then completes),
discards the rest in bulk, and triggers and disables a schedule. Every step is checked
against the API as well as on the page; screenshots of the main views go to
$CONVEYOR_SCREENSHOT_DIR (`scripts/screenshots` sets it to docs/screenshots to refresh the
README's pictures), else to a temporary folder: a test run changes no tracked file.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio

from tests.dashboard.browser import CHROMIUM, FLAGS, TIMEOUT_MS, chromium, screenshot_dir
from tests.helpers import wait_until
from tests.observability.stack import Stack, running_stack

SHOTS = screenshot_dir(os.environ)
N_FILL = 150


class Operator:
    """The API side of the test: the same calls the page makes, with the same token."""

    def __init__(self, stack: Stack, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.AsyncClient(base_url=stack.api, headers=headers, timeout=10)

    async def jobs(self, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        resp = await self.http.post("/v1/jobs/batch", json={"jobs": jobs})
        assert resp.status_code == 201, resp.text
        out: list[dict[str, Any]] = resp.json()["jobs"]
        return out

    async def job(self, job_id: str) -> dict[str, Any]:
        resp = await self.http.get(f"/v1/jobs/{job_id}")
        assert resp.status_code == 200, resp.text
        out: dict[str, Any] = resp.json()
        return out

    async def queue(self, name: str) -> dict[str, Any]:
        resp = await self.http.get("/v1/queues")
        return next(q for q in resp.json()["queues"] if q["name"] == name)


async def _auth(stack: Stack) -> tuple[str, str] | None:
    """(username, password) of an admin when the server enforces auth, else None."""
    async with httpx.AsyncClient(base_url=stack.api) as http:
        if (await http.get("/v1/queues")).status_code != 401:
            return None
    from conveyor.service.auth import AuthService
    from conveyor.store import open_store

    password = secrets.token_urlsafe(16)
    store = open_store(stack.store_url)
    await store.connect()
    try:
        await AuthService(store, _server_settings(stack)).create_user("operator", password, "admin")
    finally:
        await store.close()
    return "operator", password


def _server_settings(stack: Stack) -> Any:
    from conveyor.config import Settings

    return Settings(store_url=stack.store_url, **_AUTH_SETTINGS)  # type: ignore[arg-type]


_SECRET = secrets.token_hex(32)
_AUTH_SETTINGS = {"auth_enabled": True, "jwt_secret": _SECRET, "rate_limit_enabled": False}
_AUTH_ENV = {
    "CONVEYOR_AUTH_ENABLED": "true",
    "CONVEYOR_JWT_SECRET": _SECRET,
    "CONVEYOR_RATE_LIMIT_ENABLED": "false",
}


@pytest_asyncio.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    with running_stack(tmp_path, worker_args=("--concurrency", "10"), env=_AUTH_ENV) as s:
        await s.wait_ready()
        yield s


async def test_operator_journey(stack: Stack) -> None:
    async_playwright = chromium()
    from playwright.async_api import expect

    SHOTS.mkdir(parents=True, exist_ok=True)
    creds = await _auth(stack)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = await browser.new_page(viewport={"width": 1360, "height": 860})
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(stack.api + "/")

            # -- sign in ---------------------------------------------------------------
            token = None
            if creds is not None:
                await page.wait_for_selector("#login-form", state="visible")
                await page.fill("#login-user", creds[0])
                await page.fill("#login-pass", "not the password")
                await page.click("#login-form button[type=submit]")
                await page.wait_for_selector("#login-error:not(:empty)")
                await shot(page, SHOTS / "login.png")
                await page.fill("#login-pass", creds[1])
                await page.click("#login-form button[type=submit]")
            await page.wait_for_selector("#queues")
            if creds is not None:
                token = await page.evaluate("sessionStorage.getItem('conveyor.token')")
                assert token
            api = Operator(stack, token)
            default = '#queues tr[data-queue="default"]'

            # -- pause a queue, watch it fill, resume, watch it drain --------------------
            await page.click(f"{default} button:has-text('Pause')")
            await page.wait_for_selector(f"{default} .badge.paused")
            assert (await api.queue("default"))["paused"] is True
            await api.jobs([{"type": "obs.ok", "payload": {"sleep": 0.05}}] * N_FILL)
            ready = f'{default} td[data-status="queued"]'
            # Locator assertions poll from Playwright's own script world; the page's CSP
            # (script-src 'self') forbids the eval that wait_for_function would need.
            await expect(page.locator(ready)).to_have_text(str(N_FILL))
            await shot(page, SHOTS / "overview.png")
            await page.click(f"{default} button:has-text('Resume')")
            completed = page.locator(f'{default} td[data-status="completed"]')
            await expect(completed).to_have_text(str(N_FILL), timeout=30_000)
            assert (await api.queue("default"))["counts"]["queued"] == 0
            assert await page.text_content(ready) == "0"

            # -- dead letters: requeue one, fix and requeue one, discard the rest --------
            dead = await api.jobs(
                [
                    {"type": "obs.check", "queue": "critical", "max_retries": 0, "payload": p}
                    for p in ({"order": 1}, {"order": 2}, {"order": 3}, {"order": 4})
                ]
            )
            ids = [j["id"] for j in dead]

            async def all_dead() -> bool:
                return [(await api.job(i))["status"] for i in ids] == ["dead"] * len(ids)

            await wait_until(all_dead, timeout=15, message="the bad orders to dead-letter")
            await page.click("nav a[data-view=dead]")
            await page.wait_for_selector(f'#dead tr[data-id="{ids[0]}"]')
            await shot(page, SHOTS / "dead-letters.png")

            await page.click(f'#dead tr[data-id="{ids[0]}"] button[data-action=requeue]')

            async def requeued() -> bool:
                events = (await api.http.get(f"/v1/jobs/{ids[0]}/events")).json()["events"]
                return any(
                    e["from_status"] == "dead" and e["to_status"] == "queued" for e in events
                )

            await wait_until(requeued, timeout=10, message="the dead job to be requeued")

            await page.click(f'#dead tr[data-id="{ids[1]}"] button:has-text("Edit")')
            await page.wait_for_selector("#edit-payload")
            await page.fill("#edit-payload", '{"order": 2, "fixed": true}')
            await page.click("#modal-ok")

            async def fixed() -> bool:
                return (await api.job(ids[1]))["status"] == "completed"

            await wait_until(fixed, timeout=10, message="the fixed job to complete")
            assert (await api.job(ids[1]))["payload"] == {"order": 2, "fixed": True}

            for i in ids[2:]:
                await page.check(f'#dead tr[data-id="{i}"] input[type=checkbox]')
            await page.click("#bulk-discard")

            async def discarded() -> bool:
                codes = [(await api.http.get(f"/v1/jobs/{i}")).status_code for i in ids[2:]]
                return codes == [404, 404]

            await wait_until(discarded, timeout=10, message="the bulk discard")

            # -- job detail: payload, error with traceback, timeline ---------------------
            await wait_until(all_dead_one(api, ids[0]), timeout=10, message="job 0 dead again")
            await page.goto(f"{stack.api}/#/jobs/{ids[0]}")
            await page.wait_for_selector("#last-error")
            assert "Traceback" in (await page.text_content("#last-error") or "")
            assert await page.locator("#timeline li").count() >= 5
            await shot(page, SHOTS / "job.png", full_page=True)

            # -- jobs list with a filter -------------------------------------------------
            await page.goto(f"{stack.api}/#/jobs?status=completed")
            await page.wait_for_selector("#jobs tbody tr[data-id]")
            statuses = await page.locator("#jobs tbody .badge").all_text_contents()
            assert statuses and set(statuses) == {"completed"}
            await shot(page, SHOTS / "jobs.png")

            # -- schedules: next fire times, disable ---------------------------------------
            resp = await api.http.post(
                "/v1/schedules",
                json={"name": "nightly-report", "cron": "0 3 * * *", "type": "obs.ok"},
            )
            assert resp.status_code == 201, resp.text
            await page.click("nav a[data-view=schedules]")
            row = '#schedules tr[data-name="nightly-report"]'
            await page.wait_for_selector(f"{row} .badge.enabled")
            await shot(page, SHOTS / "schedules.png")
            await page.click(f"{row} button:has-text('Trigger now')")

            async def triggered() -> bool:
                got = await api.http.get("/v1/jobs", params={"tag": "schedule:nightly-report"})
                return len(got.json()["jobs"]) == 1

            await wait_until(triggered, timeout=10, message="the schedule's job")
            await page.click(f"{row} button:has-text('Disable')")
            await page.wait_for_selector(f"{row} .badge.disabled")
            got = (await api.http.get("/v1/schedules/nightly-report")).json()
            assert got["enabled"] is False

            # -- workers ------------------------------------------------------------------
            await page.click("nav a[data-view=workers]")
            await page.wait_for_selector("#workers tbody tr[data-id]")
            await shot(page, SHOTS / "workers.png")

            await page.click("nav a[data-view=overview]")
            await page.wait_for_selector("#queues")
            await shot(page, SHOTS / "overview-drained.png")
            assert not errors, errors
        finally:
            await browser.close()


async def shot(page: Any, path: Path, *, full_page: bool = False) -> None:
    """A screenshot without the transient toast of the last action."""
    await page.evaluate("document.getElementById('toast').hidden = true")
    await page.screenshot(path=str(path), full_page=full_page)


def all_dead_one(api: Operator, job_id: str) -> Any:
    async def check() -> bool:
        return (await api.job(job_id))["status"] == "dead"

    return check
