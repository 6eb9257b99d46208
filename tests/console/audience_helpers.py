"""Signed-in console clients for the audience tests: an account of a role, its CSRF token."""

from __future__ import annotations

import re

from app.accounts import service as accounts
from tests.conftest import AppClient

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf-token" content="([^"]+)"')


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


async def signed_in(client: AppClient, email: str, role: str) -> tuple[AppClient, str]:
    """A browser-like client (cookies, no bearer token) signed in as a new account."""
    async with client.app.state.sessionmaker() as session:
        await accounts.create_account(session=session, email=email, role=role, password=PASSWORD)
        await session.commit()
    browser = AppClient(transport=client._transport, base_url=str(client.base_url))
    browser.app = client.app
    login = await browser.get("/admin/login")
    answer = await browser.post(
        "/admin/login",
        data={"email": email, "password": PASSWORD, "csrf_token": csrf_of(login.text),
              "next": "/admin"},
    )  # fmt: skip
    assert answer.status_code == 303, answer.text
    home = await browser.get("/admin/lists")
    assert home.status_code == 200, home.text
    return browser, csrf_of(home.text)
