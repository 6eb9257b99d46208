"""The embedded dispatcher through the API, on SQLite and PostgreSQL, into a real SMTP server."""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.delivery import signing
from tests.delivery.helpers import counts, deliveries, new_issue, received, seed, send, wait_for
from tests.smtp import SMTPServer


async def test_every_recipient_gets_exactly_one_message(
    app_factory: Callable[..., Any], db: str, smtpd: SMTPServer
) -> None:
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


@pytest.mark.parametrize("pool", ["process", "thread"])
async def test_dkim_signed_chunks_in_flight_reach_everyone_once_and_verify(
    app_factory: Callable[..., Any],
    db: str,
    smtpd: SMTPServer,
    tmp_path: Path,
    pool: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(signing, "POOL", pool)
    monkeypatch.setattr(signing, "MAX_IN_FLIGHT", 3)
    key, dns = dkim_key(tmp_path)
    client = await app_factory(
        embedded_worker=True, batch_size=37, concurrency=5,
        dkim_domain="example.org", dkim_selector="news", dkim_key_file=key,
    )  # fmt: skip
    emails = await seed(db, 150)
    issue_id = await new_issue(client, **{"from": "News <news@example.org>"})
    await send(client, issue_id)

    async def sent() -> bool:
        return (await client.get(f"/api/v1/issues/{issue_id}")).json()["status"] == "sent"

    await wait_for(sent, 90, "the issue to be sent")
    assert received(smtpd) == Counter(emails)
    assert await counts(db, issue_id) == {"sent": 150}
    for r in smtpd.received[::15]:
        assert r.data.startswith(b"DKIM-Signature:")
        assert dkim.verify(r.data, dnsfunc=dns)


def dkim_key(tmp_path: Path) -> tuple[Path, Callable[..., bytes]]:
    """An RSA key file for the dispatcher, and a DNS lookup that publishes its public half."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "dkim.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return record if name == b"news._domainkey.example.org." else b""

    return path, dns


BODY_WITH_DOTS = "Hello {{ subscriber.name }}\n\n.dot at the start of a line\n\n..two\n"
