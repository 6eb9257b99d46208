"""The unsubscribe page and the preference center in headless Chromium, at phone width."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest
import uvicorn

from app.main import create_app
from tests.conftest import need
from tests.subscribers import factory

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
PHONE = {"width": 360, "height": 740}

pytestmark = [pytest.mark.chromium, pytest.mark.one_backend("postgres")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def live(make_settings):
    """The app served by a real uvicorn on a loopback port, for a real browser."""
    need(os.path.exists(CHROMIUM), "Debian package chromium")
    port = free_port()
    app = create_app(make_settings(public_url=f"http://127.0.0.1:{port}"))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    for _ in range(200):  # at most ~10 s
        if server.started:
            break
        await asyncio.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield app, f"http://127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.wait_for(task, 30)


@pytest.fixture
async def page():
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = await browser.new_context(viewport=PHONE, device_scale_factor=2)
            yield await context.new_page()
        finally:
            await browser.close()


async def no_sideways_scroll(page) -> bool:
    return bool(
        await page.evaluate(
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
    )


async def test_click_unsubscribe_on_a_phone(live, page) -> None:
    app, base = live
    world = await factory.build(app)
    ann = world.subscribers["ann@example.org"]
    await page.goto(f"{base}/u/{factory.token(app, ann, world.issue_id)}")
    assert await page.title() == "Unsubscribe · Tidings"
    assert await no_sideways_scroll(page)
    assert await factory.statuses(app, ann) == {"news": "confirmed", "offers": "confirmed"}
    button = page.locator("#unsubscribe")
    box = await button.bounding_box()
    assert box is not None and box["height"] >= 44  # a comfortable tap target
    await button.click()
    await page.wait_for_selector("#done", timeout=10_000)
    assert "Weekly <News>" in await page.inner_text("#done")
    assert await no_sideways_scroll(page)
    assert await factory.statuses(app, ann) == {"news": "unsubscribed", "offers": "confirmed"}


async def test_unsubscribe_from_everything_button(live, page) -> None:
    app, base = live
    world = await factory.build(app)
    bob = world.subscribers["bob@example.org"]
    await page.goto(f"{base}/u/{factory.token(app, bob, world.issue_id)}")
    await page.click("#unsubscribe-everything")
    await page.wait_for_selector("#done", timeout=10_000)
    assert "no more emails" in await page.inner_text("#done")
    assert set((await factory.statuses(app, bob)).values()) == {"unsubscribed"}


async def test_preference_center_keeps_the_checked_lists(live, page) -> None:
    app, base = live
    world = await factory.build(app)
    ann = world.subscribers["ann@example.org"]
    await page.goto(f"{base}/preferences/{factory.token(app, ann, world.issue_id)}")
    assert await no_sideways_scroll(page)
    await page.get_by_label("Offers").uncheck()
    await page.get_by_role("button", name="Save my choices").click()
    await page.wait_for_selector("#saved", timeout=10_000)
    assert await page.get_by_label("Offers").is_checked() is False
    assert await page.get_by_label("Weekly <News>").is_checked() is True
    assert await factory.statuses(app, ann) == {"news": "confirmed", "offers": "unsubscribed"}
    # Ticking it again brings the list back.
    await page.get_by_label("Offers").check()
    await page.get_by_role("button", name="Save my choices").click()
    await page.wait_for_selector("#saved", timeout=10_000)
    assert await factory.statuses(app, ann) == {"news": "confirmed", "offers": "confirmed"}


async def test_bad_link_in_the_browser(live, page) -> None:
    _, base = live
    response = await page.goto(f"{base}/u/forged-token")
    assert response is not None and response.status == 404
    assert "not valid" in await page.inner_text("h1")
