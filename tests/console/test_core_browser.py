"""The console core in headless Chromium: sign-in with TOTP and passkeys, invitations, roles.

Each walk runs against a real uvicorn on loopback, on both databases; axe-core checks
every page of the core for serious or critical violations, at 375 and 1280 px.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import pyotp
import pytest

from tests.conftest import make_list
from tests.console.conftest import PASSWORD, LiveConsole, browser_sign_in, create_account

pytestmark = [pytest.mark.chromium, pytest.mark.one_backend("sqlite")]
OVERFLOW = "document.documentElement.scrollWidth - window.innerWidth"
XSS = '<img src=x onerror="window.__xss=1">"><script>window.__xss=2</script>'


async def accessible(page: Any) -> None:
    """axe-core finds no serious or critical violation, and nothing scrolls sideways."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    bad = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{page.url}: {bad}"
    assert await page.evaluate(OVERFLOW) <= 0, f"{page.url} scrolls sideways"
    assert await page.evaluate("window.__xss") is None, "a payload ran"


async def test_owner_adds_totp_signs_in_with_it_and_invites_an_editor(
    live_console: LiveConsole, browser: Any
) -> None:
    base = live_console.url
    await create_account(live_console.app, "owner@example.org", "owner")
    await make_list(live_console, "xss", name=XSS)  # drawn in the dashboard's chart legend
    for width in (375, 1280):
        context = await browser.new_context(viewport={"width": width, "height": 800})
        page = await context.new_page()
        await page.goto(f"{base}/admin")
        assert page.url == f"{base}/admin/login"
        await accessible(page)
        await context.close()

    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    await browser_sign_in(page, base, "owner@example.org")
    await page.wait_for_url(f"{base}/admin")
    await accessible(page)

    # TOTP: the secret is shown as text (and a QR code); the app's code turns it on.
    await page.get_by_role("link", name="owner@example.org").click()
    await page.wait_for_url(f"{base}/admin/account")
    await accessible(page)
    secret = (await page.locator("#totp-secret").inner_text()).strip()
    await page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).now())
    await page.get_by_role("button", name="Turn on").click()
    await page.get_by_text("is on").first.wait_for()

    await page.get_by_role("button", name="Sign out", exact=True).click()
    await page.wait_for_url(f"{base}/admin/login")
    await browser_sign_in(page, base, "owner@example.org")
    await page.wait_for_url(re.compile(r".*/admin/login/second-factor.*"))
    await accessible(page)
    await page.get_by_label("Code from your authenticator app").fill(pyotp.TOTP(secret).now())
    await page.get_by_role("button", name="Verify").click()
    await page.wait_for_url(f"{base}/admin")

    # Invite an editor; the one-time link is shown to the owner (and mailed).
    await page.get_by_role("link", name="People").click()
    await accessible(page)
    await page.get_by_label("Email").fill("editor@example.org")
    await page.get_by_label("Role", exact=True).select_option("editor")
    await page.get_by_role("button", name="Invite").click()
    await page.get_by_text("Invitation sent").wait_for()
    link = re.search(r"http://localhost:\d+/admin/password/[\w-]+", await page.content()).group(0)

    # A key named with a payload: shown once, escaped everywhere.
    await page.get_by_role("link", name="API keys").click()
    await page.get_by_label("Name").fill(XSS)
    await page.get_by_role("button", name="Make the key").click()
    key = (await page.locator("#new-key").inner_text()).strip()
    assert key.startswith("tdk_")
    await accessible(page)
    await page.get_by_role("link", name="Audit log").click()
    await page.get_by_text("api-key.create").first.wait_for()
    await page.get_by_text("person.invite").first.wait_for()
    await accessible(page)

    editor_context = await browser.new_context(viewport={"width": 375, "height": 740})
    editor = await editor_context.new_page()
    await editor.goto(link)
    await accessible(editor)
    await editor.get_by_label("New password").fill(PASSWORD)
    await editor.get_by_label("The same again").fill(PASSWORD)
    await editor.get_by_role("button", name="Set the password").click()
    await editor.wait_for_url(f"{base}/admin/login")
    await editor.get_by_text("Your password is set").wait_for()
    await browser_sign_in(editor, base, "editor@example.org")
    await editor.wait_for_url(f"{base}/admin")
    nav = await editor.get_by_role("navigation", name="Console").inner_text()
    assert "People" not in nav and "API keys" not in nav
    await accessible(editor)
    assert dialogs == []  # no payload opened an alert
    await editor_context.close()
    await context.close()


async def test_viewer_sees_pages_and_changes_nothing(
    signed_in_page: Callable[..., Awaitable[Any]], live_console: LiveConsole
) -> None:
    page = await signed_in_page("viewer", width=375, height=740)
    base = live_console.url
    await accessible(page)
    status = await page.evaluate(
        """tidingsFetch('/api/v1/lists', {method: 'POST',
             headers: {'Content-Type': 'application/json'},
             body: JSON.stringify({slug: 'x', name: 'x'})}).then(r => r.status)"""
    )
    assert status == 403
    assert await page.evaluate("tidingsFetch('/api/v1/lists').then(r => r.status)") == 200
    await page.goto(f"{base}/admin/login/forgot")
    await accessible(page)
    response = await page.goto(f"{base}/admin/people")
    assert response.status == 403
    await page.get_by_text("this needs the owner role").wait_for()
    await accessible(page)


async def test_passkey_sign_in_with_a_virtual_authenticator(
    live_console: LiveConsole, browser: Any
) -> None:
    base = live_console.url
    await create_account(live_console.app, "pat@example.org", "editor")
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    cdp = await context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    authenticator = await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    await browser_sign_in(page, base, "pat@example.org")
    await page.wait_for_url(f"{base}/admin")
    await page.goto(f"{base}/admin/account")
    await page.get_by_label("Name for a new passkey").fill("test laptop")
    await page.get_by_role("button", name="Add a passkey").click()
    await page.get_by_text("Passkey “test laptop” added.").wait_for()
    creds = await cdp.send("WebAuthn.getCredentials", authenticator)
    assert len(creds["credentials"]) == 1

    await page.get_by_role("button", name="Sign out", exact=True).click()
    await browser_sign_in(page, base, "pat@example.org")
    await page.wait_for_url(re.compile(r".*/admin/login/second-factor.*"))
    assert await page.get_by_label("Code from your authenticator app").count() == 0
    await page.get_by_role("button", name="Use a passkey").click()
    await page.wait_for_url(f"{base}/admin")
    await page.get_by_role("link", name="pat@example.org").click()
    await page.get_by_role("cell", name="test laptop", exact=True).wait_for()
    await context.close()
