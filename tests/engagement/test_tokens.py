"""Link and pixel tokens: one keyed stream per delivery, cut into per-link tags that still
stand alone: no change to a token, nor a tag moved to another link, delivery or issue, reads."""

from __future__ import annotations

import base64
import string

import pytest

from app.engagement import tokens

SECRET = "t" * 40
ALPHABET = string.ascii_letters + string.digits + "-_"


def _raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token)


def _token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def test_a_series_is_each_token_made_alone_and_reads_back() -> None:
    # Across block boundaries (16 indexes a block), starting mid-block.
    for first, stop in ((1, 14), (0, 1), (3, 40), (15, 17), (65530, 65536)):
        made = tokens.series(SECRET, "click", 7, 123456789, range(first, stop))
        assert made == [tokens.make(SECRET, "click", 7, 123456789, i) for i in range(first, stop)]
        assert all(len(t) == tokens.LENGTH for t in made)
        assert [tokens.read(SECRET, "click", t) for t in made] == [
            (7, 123456789, i) for i in range(first, stop)
        ]
    assert tokens.series(SECRET, "click", 7, 1, range(0)) == []
    top = tokens.make(SECRET, "open", 2**32 - 1, 2**64 - 1, 0)
    assert tokens.read(SECRET, "open", top) == (2**32 - 1, 2**64 - 1, 0)
    with pytest.raises(ValueError):
        tokens.series(SECRET, "click", 7, 1, range(0, 10, 2))


def test_every_altered_character_reads_as_nothing() -> None:
    good = tokens.make(SECRET, "click", 7, 42, 5)
    for position in range(len(good)):
        for char in ALPHABET:
            if char != good[position]:
                bad = good[:position] + char + good[position + 1 :]
                assert tokens.read(SECRET, "click", bad) is None, bad


def test_a_tag_is_good_for_its_own_link_delivery_issue_and_purpose_only() -> None:
    mine = tokens.series(SECRET, "click", 7, 42, range(1, 20))
    raw = [_raw(t) for t in mine]
    tags = [r[14:] for r in raw]
    # Every other index's tag in my own message, put on a given index: none reads.
    for i, r in enumerate(raw):
        for j, tag in enumerate(tags):
            if i != j:
                assert tokens.read(SECRET, "click", _token(r[:14] + tag)) is None
    # My tags on another delivery or issue (same index), and beyond the links I was sent.
    other_delivery = _raw(tokens.make(SECRET, "click", 7, 43, 1))[:14]
    other_issue = _raw(tokens.make(SECRET, "click", 8, 42, 1))[:14]
    for tag in tags:
        for body in (other_delivery, other_issue):
            assert tokens.read(SECRET, "click", _token(body + tag)) is None
    beyond = raw[0][:12] + (999).to_bytes(2, "big")
    assert all(tokens.read(SECRET, "click", _token(beyond + tag)) is None for tag in tags)
    # Another purpose or key: nothing.
    assert tokens.read(SECRET, "open", mine[0]) is None
    assert tokens.read(SECRET + "x", "click", mine[0]) is None
    assert tokens.read(SECRET, "click", tokens.make(SECRET, "open", 7, 42, 1)) is None


def test_cut_grown_and_non_canonical_tokens_read_as_nothing() -> None:
    good = tokens.make(SECRET, "click", 7, 42, 3)
    padded = _token(_raw(good)[:-1]) + "="  # 23 bytes: a valid base64 spelling, one short
    spaced = good[:-1] + " "
    for bad in (good[:-1], good + "A", padded, spaced, "é" * 32, "=" * 32, ""):
        assert tokens.read(SECRET, "click", bad) is None, bad
