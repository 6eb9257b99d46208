"""Compact signed tokens for tracked links and the open pixel: (issue, delivery, link index).

A token is 24 bytes, issue (4) | delivery (8) | index (2) | tag (10), in URL-safe base64
without padding (32 characters; a URL path may be case-sensitive where a VERP local part
may not). Keys come from app/tokens.py's derivation, one per purpose.

One hash per message, not per link. A delivery's tags are slices of a keyed stream,
SHAKE-256(key | issue | delivery | block), 192 bytes per block of 16 indexes, the tag of
index i being 10 bytes of block i // 16 at a place fixed by i % 16. SHAKE-256 is a sponge,
so the key as a fixed-length prefix makes a PRF (KMAC's construction): one output slice
says nothing about another, and knowing every token of one's own message does not help to
make a token for another index, delivery or issue; each guess is a 2^-80 chance costing an
HTTP request. Blocks bound what a forged index costs to check (one 192-byte output).
The stream is cut in 12-byte steps so that the index can be written over the first two
bytes of each step in two slice assignments: 12 bytes are 16 base64 characters, and so is
the (issue, delivery) prefix, so a whole series is two base64 calls and a string join each.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from functools import lru_cache

from app.tokens import _key

_BODY = struct.Struct(">IQH")  # issue id, delivery id, link index (0 is the open pixel)
_PREFIX = struct.Struct(">IQ")
_BLOCK = struct.Struct(">H")
_MAC = 10  # 80 bits, as app/tokens.py: a guess costs one HTTP request
_STEP = 12  # bytes of the stream per index: 2 overwritten by the index, then its tag
_PER_BLOCK = 16
SIZE = _BODY.size + _MAC
LENGTH = SIZE * 4 // 3  # 24 bytes: 32 characters, no padding
_HALF = LENGTH // 2  # the prefix's characters, and each (index, tag)'s


@lru_cache(maxsize=8)
def _secret(secret: str, purpose: str) -> bytes:
    return _key(secret, f"engagement-{purpose}")


def _stream(key: bytes, prefix: bytes, first: int, stop: int) -> bytearray:
    """(index, tag) pairs for indexes first..stop-1, _STEP bytes each, indexes in place."""
    low, high = first // _PER_BLOCK, (stop - 1) // _PER_BLOCK
    head = key + prefix
    raw = b"".join([
        hashlib.shake_256(head + _BLOCK.pack(b)).digest(_STEP * _PER_BLOCK)
        for b in range(low, high + 1)
    ])  # fmt: skip
    skip = _STEP * (first - low * _PER_BLOCK)
    out = bytearray(raw[skip : skip + _STEP * (stop - first)])
    out[0::_STEP], out[1::_STEP] = _index_bytes(first, stop)
    return out


@lru_cache(maxsize=64)
def _index_bytes(first: int, stop: int) -> tuple[bytes, bytes]:
    return bytes(i >> 8 for i in range(first, stop)), bytes(i & 255 for i in range(first, stop))


def _b64(data: bytes | bytearray) -> str:
    # base64.urlsafe_b64encode is this with two more Python calls (a third of a token's cost).
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).decode("ascii")


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def series(secret: str, purpose: str, issue_id: int, delivery_id: int, indexes: range) -> list[str]:
    """The tokens of indexes `indexes` (consecutive) of one delivery, as make() gives each."""
    if not indexes:
        return []
    if indexes.step != 1 or indexes.start < 0 or indexes.stop > 1 << 16:
        raise ValueError("indexes must be consecutive, within 0..65535")
    prefix = _PREFIX.pack(issue_id, delivery_id)
    head = _b64(prefix)
    tail = _b64(_stream(_secret(secret, purpose), prefix, indexes.start, indexes.stop))
    return [head + tail[k : k + _HALF] for k in range(0, len(tail), _HALF)]


def make(secret: str, purpose: str, issue_id: int, delivery_id: int, index: int) -> str:
    """The token of one link (or, with purpose "open", the pixel) of one delivery."""
    return series(secret, purpose, issue_id, delivery_id, range(index, index + 1))[0]


def read(secret: str, purpose: str, token: str) -> tuple[int, int, int] | None:
    """(issue, delivery, index) of a valid token of that purpose; None if forged or cut."""
    if len(token) != LENGTH:
        return None
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii"))
    except (ValueError, binascii.Error, UnicodeEncodeError):
        return None
    # Decoding skips characters outside the alphabet; only the canonical spelling counts.
    if len(raw) != SIZE or base64.urlsafe_b64encode(raw).decode() != token:
        return None
    issue_id, delivery_id, index = _BODY.unpack_from(raw)
    expected = _stream(_secret(secret, purpose), raw[: _PREFIX.size], index, index + 1)
    if not hmac.compare_digest(raw[_PREFIX.size :], bytes(expected)):
        return None
    return issue_id, delivery_id, index
