"""Signed, compact, opaque tokens for confirm links, unsubscribe links and VERP addresses.

A token is a few integers packed and signed with HMAC-SHA256 under a per-purpose key,
written in lowercase base32 so it survives in URLs and in the local part of a VERP
address (which some MTAs lowercase, and which may hold at most 64 characters).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import time

_MAC_BYTES = 10  # 80 bits: forging one takes ~2^80 tries; keeps a VERP local part short


def _key(secret: str, purpose: str) -> bytes:
    return hashlib.sha256(f"tidings:{purpose}:{secret}".encode()).digest()


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode().rstrip("=").lower()


def _unb32(text: str) -> bytes:
    text = text.upper()
    return base64.b32decode(text + "=" * (-len(text) % 8))


def make(secret: str, purpose: str, *values: int) -> str:
    """Sign `values` (non-negative integers) for one purpose ("confirm", "unsubscribe", "verp")."""
    body = struct.pack(f">I{len(values)}Q", int(time.time()), *values)
    mac = hmac.new(_key(secret, purpose), body, hashlib.sha256).digest()[:_MAC_BYTES]
    return _b32(body + mac)


def read(
    secret: str, purpose: str, token: str, *, count: int, max_age: float | None = None
) -> tuple[int, ...] | None:
    """The values of a valid token of that purpose; None if forged, altered or stale."""
    try:
        raw = _unb32(token.strip())
    except (ValueError, TypeError):
        return None
    size = 4 + 8 * count
    if len(raw) != size + _MAC_BYTES:
        return None
    body, mac = raw[:size], raw[size:]
    expected = hmac.new(_key(secret, purpose), body, hashlib.sha256).digest()[:_MAC_BYTES]
    if not hmac.compare_digest(mac, expected):
        return None
    issued, *values = struct.unpack(f">I{count}Q", body)
    if max_age is not None and time.time() - issued > max_age:
        return None
    return tuple(values)
