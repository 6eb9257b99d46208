"""Standard Webhooks signatures, and the secrets kept sealed at rest.

Each call carries `webhook-id`, `webhook-timestamp` and `webhook-signature:
v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed with the bytes of the secret
`whsec_<base64>` shown once when the webhook is created. The secret must be readable to
sign, so it is stored encrypted (AES-GCM, key derived from TIDINGS_SECRET_KEY): a copy of
the database alone does not reveal it; the secret key does, as it already forges
unsubscribe links.

cryptography is imported at the first seal or unseal: every dispatcher imports this
module through its webhook sender, and one with no webhook to call (nor DKIM to sign)
need not load it (~8 MB, issue 15's memory).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "whsec_"
_INFO = b"tidings webhook secrets v1"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value of one call."""
    key = base64.b64decode(secret.removeprefix(PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _aead(secret_key: str) -> AESGCM:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO)
    return AESGCM(hkdf.derive(secret_key.encode()))


def seal(secret: str, *, secret_key: str) -> str:
    nonce = os.urandom(12)
    sealed = _aead(secret_key).encrypt(nonce, secret.encode(), None)
    return "v1:" + base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(sealed: str, *, secret_key: str) -> str:
    raw = base64.urlsafe_b64decode(sealed.removeprefix("v1:"))
    return _aead(secret_key).decrypt(raw[:12], raw[12:], None).decode()
