"""The signer's two ways to OpenSSL (the system libcrypto, cryptography's), its body-hash
reuse, and the signing pool's in-place chunks: all must make what dkimpy verifies."""

from __future__ import annotations

import base64
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from app.delivery import dkim as dkim_module
from app.delivery import signing
from app.delivery.dkim import DkimSigner
from tests.delivery.test_dkim import MESSAGES, dns_for, nacl_over_cryptography, pem, tag

pytestmark = pytest.mark.skipif(
    dkim_module._libcrypto() is None, reason="no OpenSSL 3 libcrypto to compare with"
)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def rsa_dns(key: rsa.RSAPrivateKey) -> Any:
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return dns_for(b"v=DKIM1; k=rsa; p=" + base64.b64encode(public))


def through_cryptography(monkeypatch: pytest.MonkeyPatch, key_pem: bytes) -> DkimSigner:
    with monkeypatch.context() as m:
        m.setattr(dkim_module, "_libcrypto", lambda: None)
        return DkimSigner(domain="example.org", selector="sel", private_key_pem=key_pem)


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_both_backends_sign_byte_for_byte_alike(
    kind: str, rsa_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_pem = pem(rsa_key if kind == "rsa" else ed25519.Ed25519PrivateKey.generate())
    ours = DkimSigner(domain="example.org", selector="sel", private_key_pem=key_pem)
    theirs = through_cryptography(monkeypatch, key_pem)
    monkeypatch.setattr(dkim_module.time, "time", lambda: 1764620000.5)
    for message in MESSAGES.values():  # both schemes are deterministic: same bytes signed
        assert ours.sign(message) == theirs.sign(message)


def test_ed25519_through_libcrypto_verifies(monkeypatch: pytest.MonkeyPatch) -> None:
    if not hasattr(dkim, "nacl"):
        monkeypatch.setattr(dkim, "nacl", nacl_over_cryptography(), raising=False)
    key = ed25519.Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    signed = DkimSigner(domain="example.org", selector="sel", private_key_pem=pem(key)).sign(
        MESSAGES["20 KB"]
    )
    assert dkim.verify(signed, dnsfunc=dns_for(b"v=DKIM1; k=ed25519; p=" + base64.b64encode(raw)))


def test_a_key_with_a_password_is_refused_without_asking_for_it(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    locked = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(ValueError, match="without a password"):
        DkimSigner(domain="example.org", selector="sel", private_key_pem=locked)
    with pytest.raises(ValueError, match="not a PEM private key"):
        DkimSigner(domain="example.org", selector="sel", private_key_pem=b"not a key")


def test_a_body_hash_is_reused_only_for_the_same_body(rsa_key: rsa.RSAPrivateKey) -> None:
    signer = DkimSigner(domain="example.org", selector="sel", private_key_pem=pem(rsa_key))
    one, two = MESSAGES["plain"], MESSAGES["20 KB"]
    fresh = {m: tag(DkimSigner(domain="example.org", selector="sel",
                               private_key_pem=pem(rsa_key)).sign(m), b"bh")
             for m in (one, two)}  # fmt: skip
    for m in (one, one, two, one, two, two):
        signed = signer.sign(m)
        assert tag(signed, b"bh") == fresh[m]
        assert dkim.verify(signed, dnsfunc=rsa_dns(rsa_key))


async def test_the_thread_pool_signs_a_chunk_in_place(
    rsa_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(pem(rsa_key))
    settings = SimpleNamespace(database_url="postgresql+asyncpg://x/y", dkim_domain="example.org",
                               dkim_selector="sel", dkim_key_file=key_file)  # fmt: skip
    signer = signing.Signer(settings, kind="thread")  # type: ignore[arg-type]
    try:
        await signer.ready()
        chunk = [MESSAGES[name] for name in ("plain", "20 KB", "folded headers")] * 3
        originals = list(chunk)
        signed = await signer.sign(chunk, crlf=True)
        assert signed is chunk  # the rendered messages were let go as they were signed
        for message, original in zip(signed, originals, strict=True):
            assert message.startswith(b"DKIM-Signature:") and message.endswith(original)
            assert dkim.verify(message, dnsfunc=rsa_dns(rsa_key))
    finally:
        signer.close()
