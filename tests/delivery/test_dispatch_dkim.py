"""DKIM-signed sends: chunks signed beside the feeder, a signing process dying, a bad key."""

from __future__ import annotations

import base64
import os
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.delivery import signing
from tests.delivery.helpers import counts, new_issue, received, seed, send, status_of, wait_for
from tests.smtp import SMTPServer

pytestmark = pytest.mark.slow  # each test starts a pool of signing processes


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


async def _dkim_app(app_factory: Callable[..., Any], key: Path, **extra: Any) -> Any:
    return await app_factory(
        embedded_worker=True, batch_size=37, concurrency=5,
        dkim_domain="example.org", dkim_selector="news", dkim_key_file=key, **extra,
    )  # fmt: skip


async def _wait_sent(client: Any, issue_id: int) -> None:
    async def sent() -> bool:
        return await status_of(client, issue_id) == "sent"

    await wait_for(sent, 90, "the issue to be sent")


@pytest.mark.parametrize("pool", ["process", "thread"])
async def test_chunks_signed_in_flight_reach_everyone_once_and_verify(
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
    client = await _dkim_app(app_factory, key)
    emails = await seed(db, 150)
    issue_id = await new_issue(client, **{"from": "News <news@example.org>"})
    await send(client, issue_id)
    await _wait_sent(client, issue_id)
    assert received(smtpd) == Counter(emails)
    assert await counts(db, issue_id) == {"sent": 150}
    for r in smtpd.received[::15]:
        assert r.data.startswith(b"DKIM-Signature:")
        assert dkim.verify(r.data, dnsfunc=dns)


async def test_a_signing_process_killed_mid_send_loses_no_one(
    app_factory: Callable[..., Any],
    db: str,
    smtpd: SMTPServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(signing, "POOL", "process")
    key, _ = dkim_key(tmp_path)
    client = await _dkim_app(app_factory, key, smtp_url=f"{smtpd.url}?rate=100")
    emails = await seed(db, 300)
    issue_id = await new_issue(client, **{"from": "News <news@example.org>"})
    await send(client, issue_id)

    async def started() -> bool:
        return len(smtpd.received) >= 20

    await wait_for(started, 30, "the first messages")
    dispatcher = client.app.state.dispatcher
    victim = next(iter(dispatcher.signer.pool._processes))
    os.kill(victim, signal.SIGKILL)
    await _wait_sent(client, issue_id)
    assert received(smtpd) == Counter(emails)  # chunks lost with the process were sent again
    assert victim not in dispatcher.signer.pool._processes


@pytest.mark.parametrize("pool", ["process", "thread"])
async def test_a_key_that_cannot_sign_pauses_the_issue(
    app_factory: Callable[..., Any],
    db: str,
    smtpd: SMTPServer,
    tmp_path: Path,
    pool: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(signing, "POOL", pool)
    key = tmp_path / "broken.pem"
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    client = await _dkim_app(app_factory, key)
    await seed(db, 30)
    issue_id = await new_issue(client, **{"from": "News <news@example.org>"})
    await send(client, issue_id)

    async def paused() -> bool:
        return await status_of(client, issue_id) == "paused"

    await wait_for(paused, 30, "the issue to pause itself")
    issue = (await client.get(f"/api/v1/issues/{issue_id}")).json()
    assert "DKIM signing failed" in (issue.get("status_reason") or "")
    assert smtpd.received == []

    async def released() -> bool:
        return await counts(db, issue_id) == {"queued": 30}

    await wait_for(released, 10, "every delivery back in the queue, no attempt spent")
