"""Compact signed tokens for tracked links and the open pixel: (issue, delivery, link index).

A token is 24 bytes, issue (4) | delivery (8) | index (2) | tag (10), in URL-safe base64
without padding (32 characters; a URL path may be case-sensitive where a VERP local part
may not). Keys come from app/tokens.py's derivation, one per purpose.

One hash per message and purpose (per 16 links), not one per link. A delivery's tags are
slices of a keyed stream, SHAKE-256(key | issue | delivery | block), 192 bytes per block
of 16 indexes, the tag of index i being 10 bytes of block i // 16 at a place fixed by
i % 16. SHAKE-256 is a sponge, so the key as a fixed-length prefix makes a PRF (KMAC's
construction): one output slice says nothing about another, and knowing every token of
one's own message does not help to make a token for another index, delivery or issue;
each guess is a 2^-80 chance costing an HTTP request. Blocks bound what a forged index
costs to check (one 192-byte output).
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

from app.tokens import purpose_key

_BODY = struct.Struct(">IQH")  # issue id, delivery id, link index (0 is the open pixel)
_PREFIX = struct.Struct(">IQ")
_BLOCK = struct.Struct(">H")
_MAC = 10  # 80 bits, as app/tokens.py: a guess costs one HTTP request
_STEP = 12  # bytes of the stream per index: 2 overwritten by the index, then its tag
_PER_BLOCK = 16
_BLOCK_BYTES = _STEP * _PER_BLOCK
SIZE = _BODY.size + _MAC
LENGTH = SIZE * 4 // 3  # 24 bytes: 32 characters, no padding
_HALF = LENGTH // 2  # the prefix's characters, and each (index, tag)'s


@lru_cache(maxsize=8)
def _secret(secret: str, purpose: str) -> bytes:
    return purpose_key(secret, f"engagement-{purpose}")


class Series:
    """The tokens of consecutive indexes, delivery after delivery: per call one SHAKE-256
    output a 16 indexes, its index bytes set in two slice assignments, two base64 calls."""

    def __init__(self, secret: str, purpose: str, indexes: range):
        if indexes.step != 1 or indexes.start < 0 or indexes.stop > 1 << 16:
            raise ValueError("indexes must be consecutive, within 0..65535")
        self.key = _secret(secret, purpose)
        low = indexes.start // _PER_BLOCK
        blocks = range(low, (indexes.stop - 1) // _PER_BLOCK + 1) if indexes else range(0)
        self.blocks = [_BLOCK.pack(b) for b in blocks]
        self.start = _STEP * (indexes.start - low * _PER_BLOCK)
        self.end = self.start + _STEP * len(indexes)
        self.high = bytes(i >> 8 for i in indexes)
        self.low = bytes(i & 255 for i in indexes)
        self.cuts = range(0, _HALF * len(indexes), _HALF)

    def pairs(self, prefix: bytes) -> bytearray:
        """(index, tag) of each index, _STEP bytes each, for one (issue, delivery) prefix."""
        head = self.key + prefix
        if len(self.blocks) == 1:  # the common case: SHAKE's shorter output is a prefix
            out = bytearray(hashlib.shake_256(head + self.blocks[0]).digest(self.end))
        else:
            out = bytearray(
                b"".join([hashlib.shake_256(head + b).digest(_BLOCK_BYTES) for b in self.blocks])
            )
        del out[self.end :], out[: self.start]
        out[0::_STEP] = self.high
        out[1::_STEP] = self.low
        return out

    def __call__(self, issue_id: int, delivery_id: int) -> list[str]:
        """One delivery's tokens, in index order."""
        prefix = _PREFIX.pack(issue_id, delivery_id)
        head, tail = _b64(prefix), _b64(self.pairs(prefix))
        return [head + tail[k : k + _HALF] for k in self.cuts]


@lru_cache(maxsize=256)
def _one(secret: str, purpose: str, index: int) -> Series:
    return Series(secret, purpose, range(index, index + 1))


def _b64(data: bytes | bytearray) -> str:
    # base64.urlsafe_b64encode is this with two more Python calls (a third of a token's cost).
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).decode("ascii")


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def series(secret: str, purpose: str, issue_id: int, delivery_id: int, indexes: range) -> list[str]:
    """The tokens of indexes `indexes` (consecutive) of one delivery, as make() gives each."""
    return Series(secret, purpose, indexes)(issue_id, delivery_id)


def make(secret: str, purpose: str, issue_id: int, delivery_id: int, index: int) -> str:
    """The token of one link (or, with purpose "open", the pixel) of one delivery."""
    return _one(secret, purpose, index)(issue_id, delivery_id)[0]


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
    expected = _one(secret, purpose, index).pairs(raw[: _PREFIX.size])
    if not hmac.compare_digest(raw[_PREFIX.size :], bytes(expected)):
        return None
    return issue_id, delivery_id, index
