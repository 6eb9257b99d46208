"""Accounts over HTTP on both databases: TOTP, invitations, resets, sessions, throttling."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pyotp
from sqlalchemy import select, update

from app.accounts.models import Account, AccountToken, ConsoleSession
from app.db import utcnow
from tests.conftest import PRODUCTION_HASHER
from tests.console.conftest import PASSWORD, ConsoleClient, create_account, csrf_of, sign_in
from tests.smtp import SMTPServer

Clients = Callable[[], ConsoleClient]
SignedIn = Callable[[str], Awaitable[ConsoleClient]]


async def _enrol_totp(c: ConsoleClient) -> str:
    page = (await c.get("/admin/account")).text
    secret = re.search(r'name="secret" value="([A-Z2-7]{32})"', page).group(1)
    assert "otpauth://totp/" in page and "<svg" in page
    r = await c.post_form("/admin/account/totp", {"secret": secret, "code": "000000"})
    assert "does not match" in (await c.get(r.headers["location"])).text
    code = pyotp.TOTP(secret).now()
    r = await c.post_form("/admin/account/totp", {"secret": secret, "code": code})
    assert "is on" in (await c.get(r.headers["location"])).text
    return secret


async def test_totp_is_asked_after_the_password(
    console_as: SignedIn, console_client: Clients
) -> None:
    owner = await console_as("owner")
    secret = await _enrol_totp(owner)
    c = console_client()
    r = await sign_in(c, "owner1@example.org")
    assert r.headers["location"].startswith("/admin/login/second-factor")
    assert (await c.get("/admin")).status_code == 303  # half signed in is not signed in
    form = await c.get(r.headers["location"])
    csrf = csrf_of(form.text)
    bad = await c.post("/admin/login/totp", data={"code": "123456", "csrf_token": csrf})
    assert bad.status_code == 401
    mfa_cookie = c.cookies["tidings_session"]
    # A code of the step before is refused once a later one has been used (no replay).
    good = pyotp.TOTP(secret).now()
    r = await c.post("/admin/login/totp", data={"code": good, "csrf_token": csrf})
    assert r.status_code == 303 and r.headers["location"] == "/admin"
    assert c.cookies["tidings_session"] != mfa_cookie  # a new id once fully signed in
    assert (await c.get("/admin")).status_code == 200
    again = console_client()
    r = await sign_in(again, "owner1@example.org")
    csrf = csrf_of((await again.get(r.headers["location"])).text)
    r = await again.post("/admin/login/totp", data={"code": good, "csrf_token": csrf})
    assert r.status_code == 401, "a used code must not sign in twice"


async def test_invite_sets_a_password_by_a_one_time_link(
    console_as: SignedIn, console_client: Clients, smtpd: SMTPServer
) -> None:
    owner = await console_as("owner")
    r = await owner.post_form("/admin/people/invite", {"email": "Ed@Example.org", "role": "editor"})
    shown = (await owner.get(r.headers["location"])).text
    link = re.search(r"http://tidings\.test(/admin/password/[\w-]+)", shown).group(1)
    for _ in range(50):
        if smtpd.to("ed@example.org"):
            break
        time.sleep(0.1)
    assert link in smtpd.to("ed@example.org")[-1].message.get_content()
    async with owner.app.state.sessionmaker() as s:
        stored = list(await s.scalars(select(AccountToken.token_hash)))
    assert link.rsplit("/", 1)[1] not in stored  # only the hash is kept
    ed = console_client()
    form = await ed.get(link)
    assert form.status_code == 200 and "ed@example.org" in form.text
    data = {"password": PASSWORD, "confirm": PASSWORD, "csrf_token": csrf_of(form.text)}
    assert (await ed.post(link, data=data)).status_code == 303
    assert (await ed.post(link, data=data)).status_code == 404  # once only
    r = await sign_in(ed, "ed@example.org")
    assert r.status_code == 303 and (await ed.get("/admin")).status_code == 200
    assert (await ed.get("/admin/people")).status_code == 403  # editors do not manage people


async def test_reset_answers_the_same_whether_the_account_exists(
    console_client: Clients, smtpd: SMTPServer
) -> None:
    c = console_client()
    await create_account(c.app, "ann@example.org", "viewer")
    answers = []
    for email in ("ann@example.org", "nobody@example.org"):
        form = await c.get("/admin/login/forgot")
        r = await c.post(
            "/admin/login/forgot", data={"email": email, "csrf_token": csrf_of(form.text)}
        )
        answers.append((r.status_code, r.text))
    assert answers[0] == answers[1]
    for _ in range(50):
        if smtpd.to("ann@example.org"):
            break
        time.sleep(0.1)
    body = smtpd.to("ann@example.org")[-1].message.get_content()
    link = re.search(r"http://tidings\.test(/admin/password/[\w-]+)", body).group(1)
    form = await c.get(link)
    new = "another long password"
    data = {"password": new, "confirm": new, "csrf_token": csrf_of(form.text)}
    assert (await c.post(link, data=data)).status_code == 303
    assert (await sign_in(c, "ann@example.org")).status_code == 401  # old password gone
    assert (await sign_in(c, "ann@example.org", new)).status_code == 303
    assert not smtpd.to("nobody@example.org")


async def test_sessions_end_everywhere_and_when_idle(
    console_as: SignedIn, console_client: Clients
) -> None:
    first = await console_as("viewer")
    second = console_client()
    assert (await sign_in(second, "viewer1@example.org")).status_code == 303
    r = await first.post_form("/admin/account/sessions/delete")
    assert r.status_code == 303
    assert (await first.get("/admin")).status_code == 303
    assert (await second.get("/admin")).status_code == 303
    third = console_client()
    await sign_in(third, "viewer1@example.org")
    async with third.app.state.sessionmaker() as s:
        await s.execute(update(ConsoleSession).values(last_seen_at=utcnow() - timedelta(hours=9)))
        await s.commit()
    assert (await third.get("/admin")).status_code == 303  # idle past 8 hours
    # Sessions nobody returns to are deleted at the next sign-in of anyone.
    async with third.app.state.sessionmaker() as s:
        await s.execute(update(ConsoleSession).values(last_seen_at=utcnow() - timedelta(hours=9)))
        await s.commit()
    await sign_in(console_client(), "viewer1@example.org")
    async with third.app.state.sessionmaker() as s:
        assert len(list(await s.scalars(select(ConsoleSession)))) == 1


async def test_session_survives_a_restart(app_factory: Callable, console_client: Clients) -> None:
    c = console_client()
    await create_account(c.app, "ann@example.org", "owner")
    await sign_in(c, "ann@example.org")
    restarted = await app_factory()
    c2 = ConsoleClient(transport=restarted._transport, base_url=str(restarted.base_url))
    c2.cookies = c.cookies
    assert (await c2.get("/admin")).status_code == 200


async def test_no_session_fixation(console_client: Clients) -> None:
    """A session id planted before sign-in is never the one signed in."""
    c = console_client()
    await create_account(c.app, "ann@example.org", "owner")
    c.cookies.set("tidings_session", "planted-by-an-attacker", domain="tidings.test")
    r = await sign_in(c, "ann@example.org")
    assert r.status_code == 303
    assert c.cookies.get("tidings_session") not in (None, "planted-by-an-attacker")
    async with c.app.state.sessionmaker() as s:
        assert len(list(await s.scalars(select(ConsoleSession)))) == 1


async def test_sign_in_attempts_are_limited_per_account_and_address(
    console_client: Clients,
) -> None:
    c = console_client()
    await create_account(c.app, "ann@example.org", "owner")
    codes = [(await sign_in(c, "ann@example.org", "wrong password")).status_code for _ in range(6)]
    assert codes[:5] == [401] * 5 and codes[5] == 429
    # The right password is refused too while the account is throttled.
    assert (await sign_in(c, "ann@example.org")).status_code == 429
    # An unknown address is throttled alike (no telling which exist).
    codes = [(await sign_in(c, "ghost@example.org", "x")).status_code for _ in range(6)]
    assert codes[5] == 429
    # Many accounts from one address: the address limit stops them too.
    for i in range(20):
        last = (await sign_in(c, f"spray{i}@example.org", "x")).status_code
    assert last == 429
    async with c.app.state.sessionmaker() as s:
        stored = await s.scalar(select(Account.password_hash))
    assert stored.startswith("$argon2id$")


async def test_owner_changes_roles_and_removes_people(
    console_as: SignedIn, console_client: Clients
) -> None:
    owner = await console_as("owner")
    ed = await console_as("editor")
    async with owner.app.state.sessionmaker() as s:
        ids = {a.email: a.id for a in await s.scalars(select(Account))}
    r = await owner.post_form(
        f"/admin/people/{ids['editor1@example.org']}/role", {"role": "viewer"}
    )
    assert r.status_code == 303
    assert (await ed.get("/admin/people")).status_code == 403
    r = await ed.post_form(f"/admin/people/{ids['owner1@example.org']}/delete")
    assert r.status_code == 403  # not an owner
    # The last owner can neither demote nor remove themselves.
    r = await owner.post_form(f"/admin/people/{ids['owner1@example.org']}/role", {"role": "editor"})
    assert "last owner" in (await owner.get(r.headers["location"])).text
    r = await owner.post_form(f"/admin/people/{ids['owner1@example.org']}/delete")
    assert r.status_code == 403
    r = await owner.post_form(f"/admin/people/{ids['editor1@example.org']}/delete")
    assert r.status_code == 303
    assert (await ed.get("/admin")).status_code == 303  # their session ended with the account


async def test_changing_the_password_ends_other_sessions(
    console_as: SignedIn, console_client: Clients
) -> None:
    first = await console_as("editor")
    second = console_client()
    await sign_in(second, "editor1@example.org")
    new = "a brand new password"
    r = await first.post_form(
        "/admin/account/password", {"current": "wrong", "password": new, "confirm": new}
    )
    assert "current password is wrong" in (await first.get(r.headers["location"])).text
    r = await first.post_form(
        "/admin/account/password", {"current": PASSWORD, "password": new, "confirm": new}
    )
    assert r.headers["location"] == "/admin/login"
    assert (await second.get("/admin")).status_code == 303
    assert (await sign_in(console_client(), "editor1@example.org", new)).status_code == 303


def test_the_product_hashes_passwords_with_argon2id_at_rfc_9106_cost() -> None:
    """The tests hash at the least cost (tests/conftest.py); the product's own hasher is the
    one pinned here: Argon2id, 3 passes over 64 MiB in 4 lanes."""
    hasher = PRODUCTION_HASHER
    assert (hasher.time_cost, hasher.memory_cost, hasher.parallelism) == (3, 65536, 4)
    stored = hasher.hash("a long enough password")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert hasher.verify(stored, "a long enough password")
