"""Our DKIM signer, checked against dkimpy: every signature made here must pass `dkim.verify`."""

from __future__ import annotations

import base64
import email.policy
import os
import re
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dkim
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from dkim.canonicalization import Relaxed

from app.delivery.dkim import DkimSigner, canonical_body, signer_from_settings

PKCS8 = (serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8)
SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
RAW = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def pem(key: Any) -> bytes:
    return key.private_bytes(*PKCS8, serialization.NoEncryption())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rsa_pem(rsa_key: rsa.RSAPrivateKey) -> bytes:
    return pem(rsa_key)


@pytest.fixture(scope="module")
def signer(rsa_pem: bytes) -> DkimSigner:
    return DkimSigner(domain="example.org", selector="sel", private_key_pem=rsa_pem)


@pytest.fixture(scope="module")
def dns(rsa_key: rsa.RSAPrivateKey) -> Any:
    public = rsa_key.public_key().public_bytes(*SPKI)
    return dns_for(b"v=DKIM1; k=rsa; p=" + base64.b64encode(public))


def dns_for(record: bytes) -> Any:
    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"sel._domainkey.example.org."
        return record

    return dnsfunc


def qp_message(body: str, **headers: str) -> bytes:
    msg = EmailMessage(policy=email.policy.SMTP)
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body, cte="quoted-printable")
    return msg.as_bytes()


HEAD = (
    b"From: Weekly News <news@example.org>\r\nTo: zoe@example.com\r\n"
    b"Subject: This week\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\n"
    b"Message-ID: <d1.7@example.org>\r\nMIME-Version: 1.0\r\n"
    b"List-Unsubscribe: <https://news.example.org/u/tok>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
)
MESSAGES = {
    "plain": HEAD + b"\r\nHello.\r\n",
    "folded headers": HEAD.replace(b"Subject: This week", b"Subject: This\r\n\t week\r\n  is long")
    + b"To: second@example.com,\r\n third@example.com\r\n\r\nHi\r\n",
    "trailing whitespace": HEAD.replace(b"week\r\n", b"week  \t\r\n")
    + b"\r\nline  with   runs \t \r\n\t\r\n  \r\n\r\n\r\n",
    "empty body": HEAD + b"\r\n",
    "only empty lines": HEAD + b"\r\n\r\n\r\n\r\n",
    "no body at all": HEAD,
    "repeated headers": b"Received: from a\r\nReceived: from b\r\nTo: x@example.com\r\n"
    + HEAD
    + b"Cc: c1@example.com\r\nCc: c2@example.com\r\n\r\nHi\r\n",
    "missing headers": b"From: news@example.org\r\nSubject: bare\r\n\r\nHi\r\n",
    "bare LF": HEAD.replace(b"\r\n", b"\n") + b"\nline one  \nline two\n",
    "non-ASCII QP": qp_message(
        "Grüße aus Zürich: ünïcödé " * 40 + "\n\n  indented \t\nend\n\n\n",
        From="Wöchentlich <news@example.org>",
        To="zoe@example.com",
        Subject="Grüße: " + "sehr lange Betreffzeile " * 5,
        List_Unsubscribe="<https://x.example/u>",
    ),  # fmt: skip
    "20 KB": HEAD + b"\r\n" + b"Lorem ipsum dolor  sit amet, consectetur.  \r\n" * 450,
}


@pytest.mark.parametrize("name", list(MESSAGES))
def test_dkimpy_verifies_our_signature(
    name: str, signer: DkimSigner, rsa_pem: bytes, dns: Any
) -> None:
    message = MESSAGES[name]
    signed = signer.sign(message)
    assert signed.endswith(message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    assert dkim.verify(signed, dnsfunc=dns)
    # The same body hash dkimpy computes when it signs.
    theirs = dkim.sign(message, b"sel", b"example.org", rsa_pem,
                       canonicalize=(b"relaxed", b"relaxed"))  # fmt: skip
    assert tag(signed, b"bh") == tag(theirs, b"bh")


def test_a_message_vouched_crlf_is_signed_as_any_other(signer: DkimSigner, dns: Any) -> None:
    # The dispatcher's renderer writes CRLF only and says so (crlf=True: no bare-LF scans).
    message = MESSAGES["20 KB"]
    signed = signer.sign(message, crlf=True)
    assert signed.endswith(message)
    assert dkim.verify(signed, dnsfunc=dns)
    assert tag(signed, b"bh") == tag(signer.sign(message), b"bh")


def header(signed: bytes) -> bytes:
    """The DKIM-Signature field, unfolded."""
    field = re.match(rb"DKIM-Signature:(.*?)\r\n(?![ \t])", signed, re.S)
    assert field is not None
    return field[1].replace(b"\r\n", b"")


def tag(signed: bytes, name: bytes) -> bytes:
    m = re.search(rb"(?:^|;)\s*" + name + rb"=([^;]*)", header(signed))
    assert m is not None
    return re.sub(rb"\s+", b"", m[1])


def test_tags_and_line_lengths(signer: DkimSigner) -> None:
    signed = signer.sign(MESSAGES["repeated headers"])
    h = tag(signed, b"h").split(b":")
    # Every present instance once; From, Subject and the List-Unsubscribe pair once more.
    expected = dict.fromkeys([b"from", b"to", b"subject", b"cc", b"list-unsubscribe"], 2)
    expected |= {b"list-unsubscribe-post": 2, b"date": 1, b"message-id": 1, b"mime-version": 1}
    assert {n: h.count(n) for n in set(h)} == expected
    assert b"received" not in h and b"l" not in header(signed).replace(b" ", b"").split(b";")
    assert tag(signed, b"c") == b"relaxed/relaxed" and tag(signed, b"a") == b"rsa-sha256"
    assert tag(signed, b"t").isdigit() and len(base64.b64decode(tag(signed, b"b"))) == 256
    field = signed[: signed.index(b"\r\nFrom:")]  # the prepended header, with its folds
    assert all(len(line) <= 78 for line in field.split(b"\r\n"))
    h_bare = tag(signer.sign(MESSAGES["missing headers"]), b"h").split(b":")
    assert h_bare == [b"from", b"from", b"subject", b"subject", b"list-unsubscribe",
                      b"list-unsubscribe-post"]  # fmt: skip


BODIES = [
    b"", b"\r\n", b"a\r\n", b"a b c\r\n", b"a \t b  \r\n\r\n \r\n", b" x\r\n\ty\t\r\n",
    b"\r\n\r\nz\r\n\r\n", b"a\t \t b \r\n \t \r\nc\t\r\n", b"x \r\n \r\n\t\r\n",
    b"=20 \r\n  lead\r\n", b"<p>\r\n        <a>  x</a>   \r\n", b"a" + b" " * 17 + b"b\r\n",
    b"no runs\r\nat all\r\n", b"tab\t\tthen  spaces \t \r\n.\r\n",
]  # fmt: skip


@pytest.mark.parametrize("body", BODIES)
def test_body_canonicalisation_matches_dkimpy(body: bytes) -> None:
    assert canonical_body(body) == Relaxed.canonicalize_body(body)


def test_last_line_without_crlf_is_signed_as_smtp_sends_it(signer: DkimSigner, dns: Any) -> None:
    # SMTP ends DATA with CRLF, so the receiver sees "end  \r\n" and strips the spaces.
    signed = signer.sign(HEAD + b"\r\nbody\r\nend  ")
    assert dkim.verify(signed + b"\r\n", dnsfunc=dns)


def test_relaxed_survives_refolding_and_whitespace(signer: DkimSigner, dns: Any) -> None:
    signed = signer.sign(MESSAGES["plain"])
    refolded = signed.replace(b"Subject: This week", b"Subject:   This\r\n   week  ")
    assert dkim.verify(refolded.replace(b"Hello.\r\n", b"Hello.   \r\n\r\n"), dnsfunc=dns)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"Subject: This week", b"Subject: This week!"),
        (b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"List-Unsubscribe-Post: nope"),
        (
            b"List-Unsubscribe: <https://news.example.org/u/tok>",
            b"List-Unsubscribe: <https://evil>",
        ),
        (b"Hello.", b"Hullo."),
        (b"Hello.\r\n", b"Hello.\r\nP.S. click here\r\n"),
    ],
)
def test_tampering_fails(old: bytes, new: bytes, signer: DkimSigner, dns: Any) -> None:
    signed = signer.sign(MESSAGES["plain"])
    assert dkim.verify(signed, dnsfunc=dns)
    assert old in signed
    assert not dkim.verify(signed.replace(old, new), dnsfunc=dns)


def insert_after_signature(signed: bytes, field: bytes) -> bytes:
    at = signed.index(b"\r\nFrom:") + 2
    return signed[:at] + field + signed[at:]


@pytest.mark.parametrize(
    "field",
    [
        b"From: ceo@evil.example\r\n",
        b"Subject: Urgent: verify your account\r\n",
        b"List-Unsubscribe: <https://evil.example/u>\r\n",
    ],  # fmt: skip
)
def test_added_headers_fail_thanks_to_oversigning(
    field: bytes, signer: DkimSigner, dns: Any
) -> None:
    for message in (MESSAGES["plain"], MESSAGES["missing headers"]):
        signed = signer.sign(message)
        assert not dkim.verify(insert_after_signature(signed, field), dnsfunc=dns)
        assert dkim.verify(signed, dnsfunc=dns)
        at_end = signed.replace(b"\r\n\r\n", b"\r\n" + field.rstrip(b"\r\n") + b"\r\n\r\n", 1)
        assert not dkim.verify(at_end, dnsfunc=dns)


def test_without_oversigning_an_added_subject_would_pass(rsa_pem: bytes, dns: Any) -> None:
    # The control for the test above: signing each Subject only once lets one be added on top.
    message = MESSAGES["plain"]
    relaxed = (b"relaxed", b"relaxed")
    theirs = dkim.sign(message, b"sel", b"example.org", rsa_pem, canonicalize=relaxed,
                       include_headers=[b"from", b"subject"])  # fmt: skip
    added = insert_after_signature(theirs + message, b"Subject: Urgent: verify your account\r\n")
    assert dkim.verify(added, dnsfunc=dns)


def nacl_over_cryptography() -> SimpleNamespace:
    """The slice of PyNaCl that dkimpy verifies Ed25519 with, done by `cryptography`."""

    class BadSignatureError(Exception):
        pass

    class VerifyKey:
        def __init__(self, key: bytes, encoder: object = None) -> None:
            self.key = ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(key))

        def verify(self, data: bytes, signature: bytes) -> bytes:
            try:
                self.key.verify(signature, data)
            except InvalidSignature as e:
                raise BadSignatureError from e
            return data

    return SimpleNamespace(
        signing=SimpleNamespace(VerifyKey=VerifyKey), encoding=SimpleNamespace(Base64Encoder=None),
        exceptions=SimpleNamespace(ValueError=ValueError, BadSignatureError=BadSignatureError),
    )  # fmt: skip


def test_ed25519(monkeypatch: pytest.MonkeyPatch) -> None:
    # dkimpy verifies Ed25519 through PyNaCl, which is not among our dependencies; without
    # it, dkimpy still does all the parsing, canonicalisation and hashing, and only the
    # final Ed25519 check runs on cryptography (OpenSSL) instead of libsodium.
    if not hasattr(dkim, "nacl"):
        monkeypatch.setattr(dkim, "nacl", nacl_over_cryptography(), raising=False)
    key = ed25519.Ed25519PrivateKey.generate()
    record = b"v=DKIM1; k=ed25519; p=" + base64.b64encode(key.public_key().public_bytes(*RAW))
    ours = DkimSigner(domain="example.org", selector="sel", private_key_pem=pem(key))
    for message in MESSAGES.values():
        signed = ours.sign(message)
        assert tag(signed, b"a") == b"ed25519-sha256"
        assert dkim.verify(signed, dnsfunc=dns_for(record))
        assert not dkim.verify(
            signed.replace(b"Subject: ", b"Subject: Re: "), dnsfunc=dns_for(record)
        )


def test_keys_refused() -> None:
    with pytest.raises(ValueError, match="RSA or Ed25519"):
        DkimSigner(domain="example.org", selector="sel",
                   private_key_pem=pem(ec.generate_private_key(ec.SECP256R1())))  # fmt: skip


def test_signer_from_settings(tmp_path: Path, rsa_key: rsa.RSAPrivateKey, dns: Any) -> None:
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(pem(rsa_key))
    settings = SimpleNamespace(
        dkim_domain="example.org", dkim_selector="sel", dkim_key_file=key_file
    )
    signer = signer_from_settings(settings)
    assert signer is not None and dkim.verify(signer.sign(MESSAGES["plain"]), dnsfunc=dns)
    assert signer_from_settings(settings) is signer  # the key is loaded once, not per message
    assert (
        signer_from_settings(SimpleNamespace(**{**vars(settings), "dkim_selector": None})) is None
    )
    # A rotated key file is picked up without a restart.
    new = ed25519.Ed25519PrivateKey.generate()
    key_file.write_bytes(pem(new))
    os.utime(key_file, ns=(0, key_file.stat().st_mtime_ns + 1))
    rotated = signer_from_settings(settings)
    assert rotated is not None and rotated is not signer and rotated.algorithm == b"ed25519-sha256"
