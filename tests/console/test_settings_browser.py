"""Settings, media and layouts pages in Chromium at 375 and 1280 px: axe-core finds no
serious or critical violation, nothing scrolls sideways, and an owner's branding shows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app import branding
from app.issues import stored_layouts
from tests.console.conftest import LiveConsole, browser_sign_in, create_account
from tests.console.test_core_browser import accessible
from tests.media.images import image_bytes

pytestmark = [pytest.mark.chromium, pytest.mark.one_backend("postgres")]


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    branding.reset()
    stored_layouts.reset()
    yield
    branding.reset()
    stored_layouts.reset()


async def test_owner_pages_are_accessible_at_both_widths(
    live_console: LiveConsole, browser: Any, tmp_path: Any
) -> None:
    base = live_console.url
    await create_account(live_console.app, "owner@example.org", "owner")
    logo = tmp_path / "logo.png"
    logo.write_bytes(image_bytes("PNG", (900, 200)))
    for width in (1280, 375):
        context = await browser.new_context(viewport={"width": width, "height": 800})
        page = await context.new_page()
        await browser_sign_in(page, base, "owner@example.org")
        await page.wait_for_url(f"{base}/admin")
        await page.goto(f"{base}/admin/media")
        if width == 1280:
            await page.get_by_label("Image file").set_input_files(logo)
            await page.get_by_role("button", name="Upload").click()
            await page.get_by_text("Uploaded logo.png (900×200).").wait_for()
        await accessible(page)
        await page.goto(f"{base}/admin/settings")
        await accessible(page)
        if width == 1280:
            await page.get_by_label("Organisation name").fill("Riverside News")
            await page.get_by_label("Logo").select_option(label="logo.png (900×200)")
            await page.get_by_role("button", name="Save branding").click()
            await page.get_by_text("Branding saved").wait_for()
        await page.goto(f"{base}/admin/layouts")
        await accessible(page)
        await page.goto(f"{base}/subscribe")
        assert "Riverside News" in await page.locator("header").inner_text()
        assert await page.locator("header img").get_attribute("src") is not None
        await context.close()
