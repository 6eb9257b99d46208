"""The sign-up page in each language, in headless Chromium with axe-core (real uvicorn)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import uvicorn

from app.config import Settings
from app.main import create_app
from tests.conftest import need
from tests.smtp import free_port
from tests.subscribers.test_form_browser import ARGS, CHROMIUM

pytestmark = pytest.mark.chromium
LABEL = {"en": "Email address", "de": "E-Mail-Adresse", "fr": "Adresse e-mail"}
ERROR = {"en": "Enter a valid email address", "de": "Geben Sie eine gültige E-Mail-Adresse",
         "fr": "Saisissez une adresse e-mail valide"}  # fmt: skip


@pytest.fixture
async def server(make_settings: Callable[..., Settings]) -> AsyncIterator[Any]:
    """The app served by uvicorn on a free loopback port; yields (base URL, app)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = create_app(make_settings(public_url=base))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    uv = uvicorn.Server(config)
    task = asyncio.create_task(uv.serve())
    for _ in range(100):  # at most 10 s
        if uv.started or task.done():
            break
        await asyncio.sleep(0.1)
    assert uv.started, "uvicorn did not start"
    yield base, app
    uv.should_exit = True
    await asyncio.wait_for(task, timeout=15)


async def no_serious_violation(page: Any) -> None:
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    bad = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert bad == [], f"{page.url}: {bad}"


async def test_sign_up_page_in_each_language_passes_axe(server: Any) -> None:
    need(os.path.exists(CHROMIUM), "Debian package chromium")
    from playwright.async_api import async_playwright

    from tests.conftest import AppClient, make_list

    base, app = server
    holder = AppClient(base_url=base)
    holder.app = app
    await make_list(holder, "letter", "The Letter", description="Every month")
    await make_list(holder, "events", "Events")
    await holder.aclose()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 375, "height": 740})
            for lang in ("en", "de", "fr"):
                await page.goto(f"{base}/subscribe?lang={lang}")
                assert await page.get_attribute("html", "lang") == lang
                await no_serious_violation(page)
                # With an error shown, in the same language, still accessible.
                await page.get_by_label(LABEL[lang]).fill("not an address")
                await page.get_by_label("The Letter").check()
                await page.locator("button[type=submit]").click()
                await page.wait_for_selector("#email-error")
                assert await page.get_attribute("html", "lang") == lang
                assert ERROR[lang] in await page.inner_text("#email-error")
                await no_serious_violation(page)
        finally:
            await browser.close()
