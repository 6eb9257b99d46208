"""DKIM signing of outgoing messages with dkimpy (sync and CPU-bound: run it off the event loop)."""

from __future__ import annotations

from typing import Any

import dkim

# dkimpy's default list leaves out List-Unsubscribe-Post; RFC 8058 wants it signed.
SIGNED_HEADERS: tuple[bytes, ...] = (
    b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type",
    b"list-id", b"list-unsubscribe", b"list-unsubscribe-post", b"reply-to", b"cc",
)  # fmt: skip


class DkimSigner:
    """Signs messages for one domain and selector with an RSA or Ed25519 private key."""

    def __init__(self, *, domain: str, selector: str, private_key_pem: bytes):
        self.domain = domain.encode("ascii")
        self.selector = selector.encode("ascii")
        self.key = private_key_pem

    def sign(self, message: bytes) -> bytes:
        """The message with a DKIM-Signature header prepended (relaxed/relaxed)."""
        signature = dkim.sign(
            message,
            self.selector,
            self.domain,
            self.key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=list(SIGNED_HEADERS),
        )
        return signature + message


def signer_from_settings(settings: Any) -> DkimSigner | None:
    """A signer when TIDINGS_DKIM_DOMAIN, _SELECTOR and _KEY_FILE are all set, else None."""
    if not (settings.dkim_domain and settings.dkim_selector and settings.dkim_key_file):
        return None
    with open(settings.dkim_key_file, "rb") as f:
        key = f.read()
    return DkimSigner(domain=settings.dkim_domain, selector=settings.dkim_selector,
                      private_key_pem=key)  # fmt: skip
