"""The console shell: sign in, sessions, CSRF and roles, over HTTP on both databases."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tests.conftest import AppClient
from tests.console.conftest import ConsoleClient, create_account, csrf_of, sign_in


async def test_admin_without_session_goes_to_login(anon: AppClient) -> None:
    r = await anon.get("/admin")
    assert r.status_code == 303 and r.headers["location"] == "/admin/login"
    r = await anon.get("/")
    assert r.status_code == 303 and r.headers["location"] == "/admin"
    page = await anon.get("/admin/login")
    assert page.status_code == 200
    assert 'for="email">Email<' in page.text and 'for="password">Password<' in page.text
    assert ">Sign in</button>" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


async def test_sign_in_and_out(console_client: Callable[[], ConsoleClient]) -> None:
    c = console_client()
    await create_account(c.app, "ann@example.org", "owner")
    r = await sign_in(c, "Ann@Example.org")
    assert r.status_code == 303 and r.headers["location"] == "/admin"
    cookie = r.headers["set-cookie"]
    assert "tidings_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # the test's public URL is http
    assert (await c.get("/admin")).status_code == 200
    r = await c.post("/admin/logout", data={"csrf_token": c.csrf})
    assert r.status_code == 303
    assert (await c.get("/admin")).status_code == 303


async def test_wrong_password_and_unknown_account_get_the_same_answer(
    console_client: Callable[[], ConsoleClient],
) -> None:
    c = console_client()
    await create_account(c.app, "ann@example.org", "owner")
    wrong = await sign_in(c, "ann@example.org", "not the password")
    unknown = await sign_in(c, "nobody@example.org", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    strip = lambda text, email: text.replace(email, "")  # noqa: E731
    assert strip(wrong.text, "ann@example.org").replace(csrf_of(wrong.text), "") == strip(
        unknown.text, "nobody@example.org"
    ).replace(csrf_of(unknown.text), "")


async def test_console_post_without_csrf_is_refused(
    console_as: Callable[[str], Awaitable[ConsoleClient]],
) -> None:
    c = await console_as("owner")
    r = await c.post("/admin/logout")
    assert r.status_code == 403
    r = await c.post("/admin/logout", data={"csrf_token": "x" * 64})
    assert r.status_code == 403
    assert (await c.get("/admin")).status_code == 200  # still signed in
