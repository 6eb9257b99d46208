"""The embedded dispatcher through the API, on SQLite and PostgreSQL, into a real SMTP server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from app.delivery.smtp import SMTPConnection
from tests.delivery.helpers import counts, deliveries, new_issue, received, seed, send, wait_for
from tests.smtp import SMTPServer


async def test_every_recipient_gets_exactly_one_message(
    app_factory: Callable[..., Any], db: str, smtpd: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # How many envelopes went out behind another message's content (the senders' runs).
    behind: list[int] = []
    real_next = SMTPConnection._next_envelope

    def counted(self: SMTPConnection, follow: Any) -> tuple[bytes, int]:
        written, owed = real_next(self, follow)
        behind.append(owed)
        return written, owed

    monkeypatch.setattr(SMTPConnection, "_next_envelope", counted)
    client = await app_factory(embedded_worker=True, batch_size=37, concurrency=5)
    emails = await seed(db, 120)
    issue_id = await new_issue(client)
    answer = await send(client, issue_id)
    assert answer == {"status": "sending", "recipients": 120}

    async def sent() -> bool:
        return (await client.get(f"/api/v1/issues/{issue_id}")).json()["status"] == "sent"

    await wait_for(sent, 60, "the issue to be sent")
    got = received(smtpd)
    assert set(got) == set(emails)
    assert max(got.values()) == 1
    assert await counts(db, issue_id) == {"sent": 120}
    rows = await deliveries(db, issue_id)
    by_mid = {r.message_id for r in rows}
    assert len(by_mid) == 120
    for row in rows:
        assert row.attempts == 1 and row.sent_at is not None
        assert row.last_error is None and row.lease_owner is None
    one = smtpd.to(emails[7])[0].message
    assert one["To"] and emails[7] in one["To"]
    assert one["Message-ID"] in by_mid
    issue = (await client.get(f"/api/v1/issues/{issue_id}")).json()
    assert issue["finished_at"] is not None
    # Sending again is refused and sends nothing more.
    again = await client.post(f"/api/v1/issues/{issue_id}/send", json={})
    assert again.status_code == 409
    assert len(smtpd.received) == 120
    # The senders kept their connections for runs: most envelopes were written behind the
    # last content (a run ends only when the send queue is empty at that moment).
    print(f"\n{sum(1 for n in behind if n)} of {len(behind)} envelopes written behind")
    assert len(behind) == 120 and sum(1 for n in behind if n) >= 40, behind


async def test_what_reaches_the_server_is_crlf_only(
    app_factory: Callable[..., Any], db: str, smtpd: SMTPServer
) -> None:
    # The dispatcher tells SMTP its messages need no line-ending check (Envelope.crlf):
    # hold it to that on the wire, where a bare LF would be a protocol violation.
    client = await app_factory(embedded_worker=True)
    await seed(db, 5)
    issue_id = await new_issue(client, body=BODY_WITH_DOTS)
    await send(client, issue_id)

    async def sent() -> bool:
        return (await client.get(f"/api/v1/issues/{issue_id}")).json()["status"] == "sent"

    await wait_for(sent, 60, "the issue to be sent")
    assert len(smtpd.received) == 5
    for r in smtpd.received:
        assert r.data.count(b"\n") == r.data.count(b"\r") == r.data.count(b"\r\n")
        assert "\n.dot" in r.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


BODY_WITH_DOTS = "Hello {{ subscriber.name }}\n\n.dot at the start of a line\n\n..two\n"
