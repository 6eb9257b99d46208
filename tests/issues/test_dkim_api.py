"""Previews and test sends are DKIM-signed when DKIM is configured, like real deliveries."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import AppClient
from tests.issues.factory import make_issue, make_list
from tests.smtp import SMTPServer


def _key(tmp_path: Path) -> tuple[Path, Callable[..., bytes]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = tmp_path / "dkim.pem"
    path.write_bytes(pem)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return record if name == b"news._domainkey.example.org." else b""

    return path, dns


async def test_preview_and_test_send_are_signed(
    app_factory: Callable[..., Any], smtpd: SMTPServer, tmp_path: Path
) -> None:
    path, dns = _key(tmp_path)
    client: AppClient = await app_factory(
        dkim_domain="example.org", dkim_selector="news", dkim_key_file=path
    )
    await make_list(client, "news")
    issue = await make_issue(client, **{"from": "News <news@example.org>"})
    eml = await client.get(f"/api/v1/issues/{issue['id']}/preview", params={"format": "eml"})
    assert eml.content.startswith(b"DKIM-Signature:")
    assert dkim.verify(eml.content, dnsfunc=dns)

    response = await client.post(
        f"/api/v1/issues/{issue['id']}/test", json={"emails": ["proof@example.net"]}
    )
    assert response.status_code == 202
    [received] = smtpd.to("proof@example.net")
    assert received.message["DKIM-Signature"]
    assert dkim.verify(received.data, dnsfunc=dns)


async def test_unsigned_without_dkim(client: AppClient) -> None:
    await make_list(client, "news")
    issue = await make_issue(client)
    eml = await client.get(f"/api/v1/issues/{issue['id']}/preview", params={"format": "eml"})
    assert b"DKIM-Signature" not in eml.content
