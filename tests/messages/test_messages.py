"""Transactional messages through the API and a real worker into the loopback SMTP server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dkim
from sqlalchemy import select

from app.issues import stored_layouts
from app.messages.store import messages
from app.models import Suppression
from app.subscribers.addresses import suppression_hash
from tests.conftest import AppClient
from tests.issues.factory import make_issue, make_list, make_subscriber
from tests.issues.test_dkim_api import _key
from tests.smtp import SMTPServer

PAID = {"text": "You paid 12 EUR for <b>tickets</b>.", "url": "https://e.org/r/42"}
RECEIPT = {"to": "buyer@example.org", "template": "message", "subject": "Receipt 42", "data": PAID}


async def _status(client: AppClient, message_id: int, want: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    for _ in range(800):  # bounded in count and in time
        body = (await client.get(f"/api/v1/messages/{message_id}")).json()
        if body["status"] == want or time.monotonic() > deadline:
            return body  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    return body  # type: ignore[no-any-return]


async def test_sent_once_per_key_with_its_data(
    app_factory: Callable[..., Any], smtpd: SMTPServer
) -> None:
    client: AppClient = await app_factory(embedded_worker=True)
    key = {"Idempotency-Key": "order-42"}
    first = await client.post("/api/v1/messages", json=RECEIPT, headers=key)
    assert first.status_code == 202, first.text
    assert first.json()["status"] == "queued"
    again = await client.post("/api/v1/messages", json=RECEIPT, headers=key)
    assert again.status_code == 202 and again.json() == first.json()
    other = await client.post("/api/v1/messages", json=RECEIPT | {"subject": "Other"}, headers=key)
    assert other.status_code == 422 and "Idempotency-Key" in other.text

    shown = await _status(client, first.json()["id"], "sent")
    assert (await client.get("/api/v1/issues")).json()["items"] == []  # the system issue is none
    assert shown["status"] == "sent" and shown["attempts"] == 1 and shown["last_error"] is None
    assert shown["sent_at"] is not None and set(shown) == {
        "id", "status", "attempts", "last_error", "sent_at"
    }  # fmt: skip
    await asyncio.sleep(0.5)  # room for a wrong second copy
    [received] = smtpd.to("buyer@example.org")
    message = received.message
    assert message["Subject"] == "Receipt 42"
    html = message.get_body(("html",)).get_content()
    assert "You paid 12 EUR for &lt;b&gt;tickets&lt;/b&gt;." in html  # escaped by the sandbox
    assert "https://e.org/r/42" in message.get_body(("plain",)).get_content()
    assert (await client.get("/api/v1/messages/999999")).status_code == 404


async def test_refused_addresses_and_bad_input(client: AppClient) -> None:
    await make_list(client, "news")
    await make_subscriber(client, "blocked@example.org", status="blocklisted")
    blocked = await client.post("/api/v1/messages", json=RECEIPT | {"to": "blocked@example.org"})
    assert blocked.status_code == 409 and "blocklisted" in blocked.text
    async with client.app.state.sessionmaker() as session:
        session.add(Suppression(email_hash=suppression_hash("gone@example.org"), reason="erased"))
        await session.commit()
    erased = await client.post("/api/v1/messages", json=RECEIPT | {"to": "gone@example.org"})
    assert erased.status_code == 409
    unknown = await client.post("/api/v1/messages", json=RECEIPT | {"template": "nope"})
    assert unknown.status_code == 422 and "template" in unknown.text
    nobody = await client.post("/api/v1/messages", json=RECEIPT | {"to": {"subscriber_id": 4242}})
    assert nobody.status_code == 422
    member = await make_subscriber(client, "member@example.org")
    by_id = await client.post("/api/v1/messages", json=RECEIPT | {"to": {"subscriber_id": member}})
    assert by_id.status_code == 202, by_id.text


async def test_ahead_of_a_running_bulk_send(
    app_factory: Callable[..., Any], smtpd: SMTPServer
) -> None:
    # A rate limit keeps the 500 bulk deliveries queued for seconds.
    client: AppClient = await app_factory(embedded_worker=True, smtp_url=smtpd.url + "?rate=100")
    await make_list(client, "news")
    for n in range(500):
        await make_subscriber(client, f"r{n:03d}@example.org", lists={"news": "confirmed"})
    issue = await make_issue(client)
    assert (await client.post(f"/api/v1/issues/{issue['id']}/send")).status_code == 202
    for _ in range(200):  # bounded: the bulk send has begun
        if smtpd.received:
            break
        await asyncio.sleep(0.05)
    posted = await client.post("/api/v1/messages", json=RECEIPT)
    assert posted.status_code == 202
    assert (await _status(client, posted.json()["id"], "sent"))["status"] == "sent"
    order = [r.recipients[0] for r in smtpd.received]
    assert "buyer@example.org" in order and order.index("buyer@example.org") < 250, len(order)
    # The bulk send has done its part: cancelled, the dispatcher stops with nothing to drain.
    assert (await client.post(f"/api/v1/issues/{issue['id']}/cancel")).status_code == 200


async def test_signed_when_dkim_is_configured(
    app_factory: Callable[..., Any], smtpd: SMTPServer, tmp_path: Path
) -> None:
    path, dns = _key(tmp_path)
    client: AppClient = await app_factory(
        embedded_worker=True, dkim_domain="example.org", dkim_selector="news",
        dkim_key_file=path, **{"from_": "Shop <shop@example.org>"},
    )  # fmt: skip
    posted = await client.post("/api/v1/messages", json=RECEIPT)
    assert (await _status(client, posted.json()["id"], "sent"))["status"] == "sent"
    [received] = smtpd.to("buyer@example.org")
    assert received.message["DKIM-Signature"] and dkim.verify(received.data, dnsfunc=dns)


SHOP = """<mjml><mj-body width="600px"><mj-section><mj-column>
<mj-text font-size="22px">{{ organisation.name }} – Acme edition</mj-text>
<mj-text>{{ body }}</mj-text>
<mj-text><a href="{{ unsubscribe_url }}">Unsubscribe</a></mj-text>
</mj-column></mj-section></mj-body></mjml>"""


async def test_a_stored_layout_as_the_template(
    app_factory: Callable[..., Any], smtpd: SMTPServer
) -> None:
    stored_layouts.reset()
    try:
        client: AppClient = await app_factory(embedded_worker=True)
        unknown = await client.post("/api/v1/messages", json=RECEIPT | {"template": "shop"})
        assert unknown.status_code == 422 and "stored layout" in unknown.text
        async with client.app.state.sessionmaker() as session, session.begin():
            await stored_layouts.add(session=session, name="shop", mjml=SHOP, text="")
        posted = await client.post("/api/v1/messages", json=RECEIPT | {"template": "shop"})
        assert posted.status_code == 202, posted.text
        assert (await _status(client, posted.json()["id"], "sent"))["status"] == "sent"
        [received] = smtpd.to("buyer@example.org")
        assert received.message["Subject"] == "Receipt 42"
        html = received.message.get_body(("html",)).get_content()
        assert "Acme edition" in html and "You paid 12 EUR for &lt;b&gt;tickets" in html
        plain = received.message.get_body(("plain",)).get_content()
        assert "You paid 12 EUR for <b>tickets</b>." in plain
    finally:
        stored_layouts.reset()


async def test_a_bounce_of_a_message_finds_its_delivery(
    app_factory: Callable[..., Any], smtpd: SMTPServer
) -> None:
    client: AppClient = await app_factory(embedded_worker=True)
    await make_list(client, "news")
    await make_subscriber(client, "buyer@example.org", lists={"news": "confirmed"})
    posted = await client.post("/api/v1/messages", json=RECEIPT)
    message_id = posted.json()["id"]
    assert (await _status(client, message_id, "sent"))["status"] == "sent"
    [received] = smtpd.to("buyer@example.org")
    # Its Message-ID names its delivery under our MAC, as a bulk message's does; the
    # address (a DSN's Final-Recipient) names the person, as a message's delivery has none.
    bounce = {"message_id": received.message["Message-ID"], "email": "buyer@example.org",
              "type": "hard", "reason": "5.1.1"}  # fmt: skip
    answer = await client.post("/api/v1/bounces", json=bounce)
    assert answer.status_code == 202, answer.text
    shown = (await client.get(f"/api/v1/messages/{message_id}")).json()
    assert shown["status"] == "failed" and shown["last_error"] == "bounced"
    found = await client.get("/api/v1/subscribers", params={"email": "buyer@example.org"})
    assert found.json()["items"][0]["status"] == "blocklisted"
    again = await client.post("/api/v1/messages", json=RECEIPT | {"subject": "Another"})
    assert again.status_code == 409


async def test_an_erased_person_keeps_no_message_and_gets_none_still_waiting(
    client: AppClient,
) -> None:
    """GDPR erasure reaches transactional messages: no address, subject or data stays, and
    a message still queued for the person is cancelled, not sent to nobody."""
    await make_list(client, "news")
    person = await make_subscriber(client, "erase.me@example.org", lists={"news": "confirmed"})
    body = RECEIPT | {"to": {"subscriber_id": person}, "subject": "Your ticket, Erin"}
    queued = await client.post("/api/v1/messages", json=body)
    assert queued.status_code == 202, queued.text
    by_address = await client.post(
        "/api/v1/messages", json=RECEIPT | {"to": "Erase.Me@example.org"}
    )
    assert by_address.status_code == 202, by_address.text
    assert (await client.delete(f"/api/v1/subscribers/{person}")).status_code == 204
    async with client.app.state.sessionmaker() as s:
        rows = (await s.execute(select(messages))).mappings().all()
    assert rows and all(r["email"] == "" and r["subject"] == "" and r["data"] == {}
                        and r["subscriber_id"] is None for r in rows)  # fmt: skip
    for answer in (queued, by_address):
        shown = (await client.get(f"/api/v1/messages/{answer.json()['id']}")).json()
        assert shown["status"] == "failed" and "erased" in shown["last_error"], shown
