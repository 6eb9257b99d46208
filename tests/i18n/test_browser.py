"""The sign-up page in each language, in headless Chromium with axe-core (real uvicorn)."""

from __future__ import annotations

import os

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, need
from tests.console.test_audience_browser import accessible
from tests.subscribers.test_form_browser import ARGS, CHROMIUM

pytestmark = [pytest.mark.chromium, pytest.mark.one_backend("sqlite")]
LABEL = {"en": "Email address", "de": "E-Mail-Adresse", "fr": "Adresse e-mail"}
ERROR = {"en": "Enter a valid email address", "de": "Geben Sie eine gültige E-Mail-Adresse",
         "fr": "Saisissez une adresse e-mail valide"}  # fmt: skip


async def test_sign_up_page_in_each_language_passes_axe(server: str) -> None:
    """No serious or critical axe-core violation, before and after an error, in each language."""
    need(os.path.exists(CHROMIUM), "Debian package chromium")
    from playwright.async_api import async_playwright

    async with httpx.AsyncClient(
        base_url=server, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as admin:
        for slug, name in (("letter", "The Letter"), ("events", "Events")):
            r = await admin.post("/api/v1/lists", json={"slug": slug, "name": name})
            assert r.status_code == 201
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 375, "height": 740})
            for lang in ("en", "de", "fr"):
                await page.goto(f"{server}/subscribe?lang={lang}")
                assert await page.get_attribute("html", "lang") == lang
                await accessible(page)
                await page.get_by_label(LABEL[lang]).fill("not an address")
                await page.get_by_label("The Letter").check()
                await page.locator("button[type=submit]").click()
                await page.wait_for_selector("#email-error")
                assert await page.get_attribute("html", "lang") == lang
                assert ERROR[lang] in await page.inner_text("#email-error")
                await accessible(page)
        finally:
            await browser.close()
