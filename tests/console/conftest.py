"""Console fixtures: accounts, a signed-in HTTP client per role, and a real browser.

`console_as("editor")` gives an httpx client signed in through the login form (cookies
kept, `.csrf` holds the forms' token). `live_console` serves the app with uvicorn on
127.0.0.1 for Chromium, and `signed_in_page("viewer")` gives a Playwright page signed
in through the same form.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn

from app.accounts import service
from app.config import Settings
from app.main import create_app
from tests.conftest import AppClient, need
from tests.smtp import free_port

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
PASSWORD = "correct horse battery staple"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


async def create_account(app: Any, email: str, role: str, password: str | None = PASSWORD) -> int:
    """An account written straight through the service, committed; returns its id."""
    async with app.state.sessionmaker() as session:
        account = await service.create_account(
            session=session, email=email, role=role, password=password
        )
        await session.commit()
        return account.id


def csrf_of(html: str) -> str:
    """The CSRF token of the first form in a page."""
    match = CSRF_FIELD.search(html)
    assert match, "no csrf_token field in the page"
    return match.group(1)


class ConsoleClient(AppClient):
    """An HTTP client with a console session; `csrf` is the token its forms carry."""

    csrf: str = ""

    async def post_form(self, url: str, data: dict[str, Any] | None = None) -> Any:
        """POST a form with the session's CSRF token, as the page's form would."""
        return await self.post(url, data={"csrf_token": self.csrf, **(data or {})})


async def sign_in(client: ConsoleClient, email: str, password: str = PASSWORD) -> Any:
    """Sign in through the login form; sets `client.csrf` from the next page."""
    r = await client.get("/admin/login")
    r = await client.post(
        "/admin/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(r.text)},
    )
    if r.status_code == 303 and r.headers["location"].startswith("/admin"):
        page = await client.get(r.headers["location"])
        if 'name="csrf_token"' in page.text:
            client.csrf = csrf_of(page.text)
    return r


@pytest.fixture
def console_client(client: AppClient) -> Callable[[], ConsoleClient]:
    """New browser-like clients of the test's app: no token, cookies kept."""

    def make() -> ConsoleClient:
        c = ConsoleClient(transport=client._transport, base_url=str(client.base_url))
        c.app = client.app
        return c

    return make


@pytest.fixture
def console_as(
    console_client: Callable[[], ConsoleClient],
) -> Callable[[str], Awaitable[ConsoleClient]]:
    """`await console_as("owner")`: a client signed in as a new account with that role."""
    made: dict[str, int] = {}

    async def factory(role: str, email: str | None = None) -> ConsoleClient:
        c = console_client()
        email = email or f"{role}{made.setdefault(role, 0) + 1}@example.org"
        made[role] += 1
        await create_account(c.app, email, role)
        r = await sign_in(c, email)
        assert r.status_code == 303, r.text
        return c

    return factory


@dataclass
class LiveConsole:
    """The app served by uvicorn: its base URL and the app object (for its sessionmaker)."""

    url: str
    app: Any


@pytest.fixture
async def live_console(make_settings: Callable[..., Settings]) -> AsyncIterator[LiveConsole]:
    """The app on a free loopback port, for the browser. `localhost` so WebAuthn accepts it."""
    port = free_port()
    base = f"http://localhost:{port}"
    app = create_app(make_settings(public_url=base))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(100):  # at most 10 s
        if server.started or task.done():
            break
        await asyncio.sleep(0.1)
    assert server.started, "uvicorn did not start"
    yield LiveConsole(url=base, app=app)
    server.should_exit = True
    await asyncio.wait_for(task, timeout=15)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Chromium (Debian's), through Playwright."""
    need(os.path.exists(CHROMIUM), "Debian package chromium")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def browser_sign_in(page: Any, base: str, email: str, password: str = PASSWORD) -> None:
    """Sign in through the login form as a person would."""
    await page.goto(f"{base}/admin/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()


@pytest.fixture
async def signed_in_page(live_console: LiveConsole, browser: Any) -> Callable[..., Awaitable[Any]]:
    """`await signed_in_page("editor")`: a Playwright page signed in with a new account."""
    count = 0

    async def factory(role: str, width: int = 1280, height: int = 800) -> Any:
        nonlocal count
        count += 1
        email = f"{role}{count}@example.org"
        await create_account(live_console.app, email, role)
        context = await browser.new_context(viewport={"width": width, "height": height})
        page = await context.new_page()
        await browser_sign_in(page, live_console.url, email)
        await page.wait_for_url(f"{live_console.url}/admin")
        return page

    return factory
