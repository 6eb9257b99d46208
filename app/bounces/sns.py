"""The SNS signatures that vouch for Amazon SES notifications posted to our webhook.

The notifications themselves are read in ses.py; this module alone needs httpx (to fetch
AWS's signing certificate) and cryptography, so only the web process loads them.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# Only certificates AWS serves itself: https, an SNS endpoint host, a .pem path, no query.
# Matched with fullmatch: "$" would accept a trailing newline, which httpx then refuses.
CERT_URL = re.compile(r"https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[A-Za-z0-9/._-]+\.pem")
NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_FIELDS = (
    "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
)  # fmt: skip
HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}  # noqa: S303  SHA1 is what SNS v1 signs with
# SNS rotates its signing certificate rarely; fetching it for every notification would be slow.
_cert_cache: dict[str, x509.Certificate] = {}
MAX_CERT_BYTES = 64 * 1024


class SignatureError(Exception):
    """A webhook's proof of origin is missing, stale or wrong."""


def canonical_string(message: dict[str, Any]) -> bytes:
    """The "Key\\nValue\\n" string SNS signs, over the fields of the message's type."""
    kind = message.get("Type")
    if kind == "Notification":
        fields: tuple[str, ...] = NOTIFICATION_FIELDS
    elif kind in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        fields = CONFIRMATION_FIELDS
    else:
        raise SignatureError(f"unknown SNS message type {kind!r}")
    return "".join(f"{k}\n{message[k]}\n" for k in fields if message.get(k) is not None).encode()


async def fetch_certificate(url: str, *, http: httpx.AsyncClient | None = None) -> bytes:
    """Download a signing certificate over verified HTTPS from an SNS host; never redirected.

    `http` lets a caller (a test, a proxy set-up) supply the client and its transport; the
    checks here hold whatever that client's own settings are.
    """
    # Checked here too, not only in verify_sns: this is the one place that goes out.
    if not CERT_URL.fullmatch(url):
        raise SignatureError("the signing certificate is not on an SNS amazonaws.com host")
    if http is None:
        async with httpx.AsyncClient(timeout=10, follow_redirects=False) as client:
            return await _download(client, url)
    return await _download(http, url)


async def _download(client: httpx.AsyncClient, url: str) -> bytes:
    # follow_redirects per request: a redirect could lead off amazonaws.com, even when the
    # caller's client would follow one; raise_for_status refuses the 3xx itself.
    async with client.stream("GET", url, follow_redirects=False) as response:
        response.raise_for_status()
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_CERT_BYTES:  # a certificate is a few KB; do not buffer more
                raise SignatureError("the signing certificate is too large")
        return bytes(body)


_fetch_https = fetch_certificate  # the name this default had before it took `http`


async def _certificate(url: str, fetch: Callable[[str], Awaitable[bytes]]) -> x509.Certificate:
    """The signing certificate at url, from the cache when we have seen it."""
    if url not in _cert_cache:
        try:
            _cert_cache[url] = x509.load_pem_x509_certificate(await fetch(url))
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            raise SignatureError(f"cannot load the signing certificate: {exc}") from exc
    return _cert_cache[url]


async def verify_sns(
    message: dict[str, Any],
    *,
    fetch_cert: Callable[[str], Awaitable[bytes]] | None = None,
    http: httpx.AsyncClient | None = None,
) -> None:
    """Check an SNS message's signature against AWS's certificate; raise SignatureError if bad.

    The certificate comes from `fetch_cert` when given, else from fetch_certificate through
    `http` (an httpx client) or a fresh client of its own.
    """
    url = str(message.get("SigningCertURL") or message.get("SigningCertUrl") or "")
    if not CERT_URL.fullmatch(url):
        raise SignatureError("the signing certificate is not on an SNS amazonaws.com host")
    algorithm = HASHES.get(str(message.get("SignatureVersion")))
    if algorithm is None:
        raise SignatureError("unsupported SignatureVersion")
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("the signature is not base64") from exc
    if fetch_cert is None:
        fetch_cert = functools.partial(fetch_certificate, http=http)
    cert = await _certificate(url, fetch_cert)
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey) or cert.not_valid_after_utc < datetime.now(UTC):
        raise SignatureError("the signing certificate is unusable")
    try:
        key.verify(signature, canonical_string(message), padding.PKCS1v15(), algorithm())
    except (InvalidSignature, KeyError) as exc:
        raise SignatureError("the SNS signature does not match") from exc
