"""Secrets never reach the logs, and personal data in them is limited to what operators need."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Any

import pytest

from app.delivery.dispatcher import Dispatcher
from tests.conftest import ADMIN_TOKEN, AppClient
from tests.security.seed import make_list, make_subscriber
from tests.smtp import SMTPServer

SMTP_PASSWORD = "Sm7p-pa55word-never-logged"
BODY_MARKER = "BODYMARKER-5d41402a"
NAME_MARKER = "Zebediah Quux"
ATTR_MARKER = "attr-secret-7f1b"


# The test's own SMTP server (aiosmtpd) logs what it receives; it is not part of the app.
NOT_THE_APP = {"mail.log"}
# aiosqlite's DEBUG lines repeat every statement's rows; they appear only when an operator asks
# for DEBUG (TIDINGS_LOG_LEVEL), never at the default INFO, and are checked at INFO below.
THIRD_PARTY_DEBUG = {"aiosqlite"}


def _logged(caplog: pytest.LogCaptureFixture, *, min_level: int = logging.DEBUG) -> str:
    lines = []
    for rec in caplog.records:
        if rec.name in NOT_THE_APP or rec.levelno < min_level:
            continue
        if rec.levelno < logging.INFO and rec.name in THIRD_PARTY_DEBUG:
            continue
        lines.append(rec.getMessage())
        if rec.exc_info:
            lines.append(logging.Formatter().formatException(rec.exc_info))
    return "\n".join(lines)


async def _send_with_dispatcher(
    client: AppClient, smtpd: SMTPServer, issue_id: int, n: int
) -> None:
    app = client.app
    dispatcher = Dispatcher(
        settings=app.state.settings, sessionmaker=app.state.sessionmaker,
        transports=app.state.transports,
    )  # fmt: skip
    task = asyncio.create_task(dispatcher.run())
    try:
        r = await client.post(f"/api/v1/issues/{issue_id}/send", json={})
        assert r.status_code == 202, r.text
        for _ in range(200):
            if len(smtpd.received) >= n:
                break
            await asyncio.sleep(0.1)
    finally:
        dispatcher.stop()
        await asyncio.wait_for(task, timeout=40)


async def test_send_and_sign_ups_log_no_secrets(
    client: AppClient, smtpd: SMTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A send, public sign-ups and a confirm at DEBUG: no token, key, body or name in the logs."""
    caplog.set_level(logging.DEBUG)
    list_id = await make_list(client, "news", double_opt_in=True)
    for i in range(3):
        await make_subscriber(
            client, f"log{i}@example.org", name=NAME_MARKER, attributes={"code": ATTR_MARKER},
            lists={list_id: "confirmed"},
        )  # fmt: skip
    for i in range(3):
        r = await client.post(
            "/api/v1/subscribe",
            json={"email": f"new{i}@example.org", "name": NAME_MARKER, "lists": ["news"]},
        )
        assert r.status_code == 202
    bad = await client.post("/api/v1/issues", headers={"Authorization": "Bearer wrong-token"})
    assert bad.status_code == 401
    r = await client.post(
        "/api/v1/issues",
        json={
            "subject": "Logs",
            "lists": ["news"],
            "body": f"{BODY_MARKER} {{{{ subscriber.name }}}} {{{{ subscriber.attributes.code }}}}",
        },
    )
    assert r.status_code == 201, r.text
    await _send_with_dispatcher(client, smtpd, r.json()["id"], n=6)
    assert len(smtpd.received) >= 6  # 3 confirmations + 3 issue messages
    confirm_tokens = re.findall(rb"/subscribe/confirm/([a-z0-9]+)", b"".join(
        m.data for m in smtpd.received))  # fmt: skip
    unsubscribe_tokens = re.findall(rb"/u/([a-z0-9]+)", b"".join(m.data for m in smtpd.received))
    assert confirm_tokens and unsubscribe_tokens
    text = _logged(caplog)
    settings = client.app.state.settings
    secrets = {
        "admin token": ADMIN_TOKEN,
        "secret key": settings.secret_key_value,
        "body": BODY_MARKER,
        "subscriber name": NAME_MARKER,
        "attribute": ATTR_MARKER,
        "confirm token": confirm_tokens[0].decode(),
        "unsubscribe token": unsubscribe_tokens[0].decode(),
    }
    leaked = [label for label, value in secrets.items() if value in text]
    at_info = _logged(caplog, min_level=logging.INFO)
    leaked += [f"{label} (INFO)" for label, value in secrets.items() if value in at_info]
    addresses = len(set(re.findall(r"[\w.+-]+@example\.org", text)))
    print(f"\nlogs: {len(caplog.records)} records, {addresses} distinct addresses named")
    assert not leaked, leaked


async def test_smtp_password_never_logged_or_answered(
    app_factory: Callable[..., Any], smtpd: SMTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    """An SMTP URL with a password, a server that refuses AUTH: the password shows nowhere."""
    caplog.set_level(logging.DEBUG)
    url = f"smtp://newsletter:{SMTP_PASSWORD}@127.0.0.1:{smtpd.port}?timeout=5"
    client = await app_factory(smtp_url=url)
    await make_list(client, "news")
    r = await client.post(
        "/api/v1/issues", json={"subject": "Pw", "lists": ["news"], "body": "Hello"}
    )
    assert r.status_code == 201
    answer = await client.post(
        f"/api/v1/issues/{r.json()['id']}/test", json={"emails": ["t@example.org"]}
    )
    assert answer.status_code >= 400  # the server offers no AUTH: the login fails
    metrics = (await client.get("/metrics")).text
    for where, text in (("logs", _logged(caplog)), ("answer", answer.text), ("metrics", metrics)):
        assert SMTP_PASSWORD not in text, where
    for transport in client.app.state.transports:
        assert SMTP_PASSWORD not in repr(transport) and SMTP_PASSWORD not in str(transport)
