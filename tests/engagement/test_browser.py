"""A delivered message opened and clicked in headless Chromium is counted as a person."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import update

from app.config import Settings
from app.db import utcnow
from app.main import create_app
from app.models import Delivery
from tests.conftest import ADMIN_TOKEN, AppClient, need
from tests.engagement.helpers import BROWSER_UA
from tests.issues.factory import make_issue, make_list, make_subscriber
from tests.smtp import SMTPServer, free_port

pytestmark = [pytest.mark.chromium, pytest.mark.one_backend("postgres")]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


@pytest.fixture
async def live(make_settings: Callable[..., Settings]) -> AsyncIterator[AppClient]:
    """The app with its dispatcher, served by uvicorn on loopback; a client over real HTTP."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = create_app(make_settings(public_url=base, embedded_worker=True))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(100):
        if server.started or task.done():
            break
        await asyncio.sleep(0.1)
    assert server.started, "uvicorn did not start"
    client = AppClient(base_url=base, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    client.app = app
    yield client
    await client.aclose()
    server.should_exit = True
    await asyncio.wait_for(task, timeout=15)


async def _until(check: Callable[[], Any], timeout: float = 30) -> Any:
    for _ in range(int(timeout / 0.25)):
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.25)
    raise AssertionError("timed out")


async def test_a_reader_opens_and_clicks_in_chromium(
    live: AppClient, smtpd: SMTPServer, tmp_path: Path
) -> None:
    need(os.path.exists(CHROMIUM), "Debian package chromium")
    from playwright.async_api import async_playwright

    # The links lead to a page on loopback under another name than the public URL.
    site = str(live.base_url).replace("127.0.0.1", "localhost")
    body = f"# Hello\n\n[First story]({site}/healthz) and [second story]({site}/healthz?b=1)\n"
    await make_list(live, "news")
    await make_subscriber(live, "ann@example.org", name="Ann", lists={"news": "confirmed"})
    issue = await make_issue(live, body=body)
    assert (await live.post(f"/api/v1/issues/{issue['id']}/send")).status_code == 202

    async def sent() -> bool:
        stats = (await live.get(f"/api/v1/issues/{issue['id']}/stats")).json()
        return bool(stats["status"] == "sent")

    await _until(sent)
    # She reads it a minute after it arrived (an open on arrival would be a prefetch).
    async with live.app.state.sessionmaker() as s, s.begin():
        await s.execute(update(Delivery).values(sent_at=utcnow() - timedelta(minutes=1)))
    [received] = smtpd.to("ann@example.org")
    html = received.message.get_body(("html",)).get_content()
    assert f"{live.base_url}/o/" in html and f"{site}/healthz" not in html
    page_file = tmp_path / "message.html"
    page_file.write_text(html)

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            # A reader's browser, not a headless one (whose agent says so: a bot's).
            context = await chromium.new_context(user_agent=BROWSER_UA)
            page = await context.new_page()
            await page.goto(page_file.as_uri())
            await page.wait_for_load_state("networkidle")
            for name in ("First story", "second story"):
                async with page.expect_navigation():
                    await page.get_by_role("link", name=name).click()
                assert page.url.startswith(f"{site}/healthz")
                await page.goto(page_file.as_uri())
                await asyncio.sleep(2.5)  # a person reads before the next link
        finally:
            await chromium.close()

    async def counted() -> dict[str, Any] | None:
        stats = (await live.get(f"/api/v1/issues/{issue['id']}/stats")).json()
        return stats if stats["clicks"] >= 2 and stats["opens"] >= 1 else None

    stats = await _until(counted)
    assert stats["unique_opens"] == 1 and stats["unique_clicks"] == 1
    assert stats["machine_opens"] == 0 and stats["machine_clicks"] == 0, stats
    table = (await live.get(f"/api/v1/issues/{issue['id']}/links")).json()["items"]
    assert [(t["url"], t["clicks"], t["unique_clicks"]) for t in table] == [
        (f"{site}/healthz", 1, 1), (f"{site}/healthz?b=1", 1, 1)
    ]  # fmt: skip
