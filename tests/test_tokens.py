"""Tokens: forged, truncated, altered, foreign, of another purpose or expired: nothing happens."""

from __future__ import annotations

import time
from unittest import mock

import pytest

from app import tokens
from tests.conftest import AppClient
from tests.security.routes import require_route
from tests.security.seed import make_list, make_subscriber, memberships


def secret(client: AppClient) -> str:
    return client.app.state.settings.secret_key_value  # type: ignore[no-any-return]


def bad_unsubscribe_tokens(client: AppClient, victim: int, other: int) -> dict[str, str]:
    """Every way a token for `victim` can be wrong, keyed by what is wrong with it."""
    good = tokens.make(secret(client), "unsubscribe", victim, 0)
    flipped = good[:10] + ("a" if good[10] != "a" else "b") + good[11:]
    return {
        "forged (random)": "a" * len(good),
        "truncated": good[:-4],
        "one character altered": flipped,
        "extended": good + "aa",
        "another key": tokens.make("not-the-secret-key-" + "z" * 30, "unsubscribe", victim, 0),
        "confirm purpose": tokens.make(secret(client), "confirm", victim),
        "verp purpose": tokens.make(secret(client), "verp", victim),
        "confirm purpose, 2 values": tokens.make(secret(client), "confirm", victim, 0),
        "empty-ish": "-",
        "path traversal": "..%2F..%2Fetc%2Fpasswd",
        "sql": "1' OR '1'='1",
        "huge": "a" * 5000,
        # other's own, valid token, is the control: it must work for `other` only
    }


async def test_bad_unsubscribe_tokens_change_nothing(anon: AppClient) -> None:
    """Every bad token: 404 page naming no one, and every subscription stays as it was."""
    require_route(anon.app, "POST", "/u/{token}")
    list_id = await make_list(anon, "news")
    victim = await make_subscriber(anon, "victim@example.org", lists={list_id: "confirmed"})
    other = await make_subscriber(anon, "other@example.org", lists={list_id: "confirmed"})
    tried = 0
    for label, token in bad_unsubscribe_tokens(anon, victim, other).items():
        for method, path in (
            ("GET", f"/u/{token}"),
            ("POST", f"/u/{token}"),
            ("GET", f"/preferences/{token}"),
            ("POST", f"/preferences/{token}"),
        ):
            data = {"List-Unsubscribe": "One-Click", "everything": "1"}
            r = await anon.request(method, path, data=data if method == "POST" else None)
            tried += 1
            assert r.status_code == 404, f"{label}: {method} {path} -> {r.status_code}"
            assert "victim@" not in r.text and "other@" not in r.text, label
    assert await memberships(anon, victim) == {list_id: "confirmed"}
    assert await memberships(anon, other) == {list_id: "confirmed"}
    print(f"tokens: {tried} bad unsubscribe/preferences requests, none had an effect")


async def test_token_acts_only_for_its_own_subscriber(anon: AppClient) -> None:
    """A valid token for A, posted with B's address or id in the form, unsubscribes A only."""
    require_route(anon.app, "POST", "/u/{token}")
    list_id = await make_list(anon, "news")
    a = await make_subscriber(anon, "a@example.org", lists={list_id: "confirmed"})
    b = await make_subscriber(anon, "b@example.org", lists={list_id: "confirmed"})
    token = tokens.make(secret(anon), "unsubscribe", a, 0)
    r = await anon.post(
        f"/u/{token}",
        data={"List-Unsubscribe": "One-Click", "email": "b@example.org", "subscriber_id": str(b)},
    )
    assert r.status_code == 200
    assert "b@example.org" not in r.text
    assert await memberships(anon, a) == {list_id: "unsubscribed"}
    assert await memberships(anon, b) == {list_id: "confirmed"}


async def test_preferences_cannot_join_lists_the_person_is_not_on(anon: AppClient) -> None:
    """The preference form keeps or leaves the person's lists; it cannot add others."""
    require_route(anon.app, "POST", "/preferences/{token}")
    news = await make_list(anon, "news")
    secret_list = await make_list(anon, "internal")
    a = await make_subscriber(anon, "a@example.org", lists={news: "confirmed"})
    token = tokens.make(secret(anon), "unsubscribe", a, 0)
    r = await anon.post(f"/preferences/{token}", data={"list": ["news", "internal"]})
    assert r.status_code == 200
    assert await memberships(anon, a) == {news: "confirmed"}
    assert secret_list not in await memberships(anon, a)


def _confirm_routes(app: object) -> None:
    require_route(app, "POST", "/subscribe/confirm/{token}")


async def test_bad_confirm_tokens_confirm_nothing(anon: AppClient) -> None:
    """Forged, truncated, other-purpose, other-subscriber and expired confirm tokens do nothing."""
    _confirm_routes(anon.app)
    list_id = await make_list(anon, "news", double_opt_in=True)
    victim = await make_subscriber(anon, "victim@example.org", lists={list_id: "pending"})
    good = tokens.make(secret(anon), "confirm", victim)
    with mock.patch("time.time", return_value=time.time() - 400 * 86400):
        expired = tokens.make(secret(anon), "confirm", victim)
    bad = {
        "forged": "b" * len(good),
        "truncated": good[:-3],
        # The middle, not the last character: base32's last one carries padding bits.
        "altered": good[:12] + ("a" if good[12] != "a" else "b") + good[13:],
        "unsubscribe purpose": tokens.make(secret(anon), "unsubscribe", victim, 0),
        "verp purpose": tokens.make(secret(anon), "verp", victim),
        "another key": tokens.make("another-secret-" + "q" * 30, "confirm", victim),
        "expired (400 days)": expired,
        "nobody": tokens.make(secret(anon), "confirm", victim + 1000),
    }
    for label, token in bad.items():
        for method in ("GET", "POST"):
            r = await anon.request(method, f"/subscribe/confirm/{token}")
            assert r.status_code in (400, 404, 410), f"{label}: {method} -> {r.status_code}"
            assert "victim@" not in r.text, label
    assert await memberships(anon, victim) == {list_id: "pending"}
    # The control: the good token does confirm, on POST only.
    r = await anon.get(f"/subscribe/confirm/{good}")
    assert r.status_code == 200
    assert await memberships(anon, victim) == {list_id: "pending"}
    r = await anon.post(f"/subscribe/confirm/{good}")
    assert r.status_code == 200
    assert await memberships(anon, victim) == {list_id: "confirmed"}


@pytest.mark.parametrize("purpose", ["unsubscribe", "confirm"])
def test_tokens_are_bound_to_their_purpose(purpose: str) -> None:
    """At the library level: a token reads only under its own purpose and value count."""
    key = "k" * 40
    token = (
        tokens.make(key, purpose, 7, 0)
        if purpose == "unsubscribe"
        else tokens.make(key, purpose, 7)
    )
    count = 2 if purpose == "unsubscribe" else 1
    assert tokens.read(key, purpose, token, count=count) is not None
    for other in ("unsubscribe", "confirm", "verp"):
        if other != purpose:
            assert tokens.read(key, other, token, count=count) is None
    assert tokens.read(key, purpose, token[:-1], count=count) is None
    assert tokens.read(key + "x", purpose, token, count=count) is None


def test_the_cached_hmac_is_rfc_2104_and_tokens_keep_their_bytes() -> None:
    """tokens.hmac_sha256 (the key's pads cached) is HMAC-SHA256, and a token is the same
    bytes as the plain hmac.new construction made: links already sent keep working."""
    import base64
    import hashlib
    import hmac
    import struct

    for key in (b"", b"k", bytes(range(32)), bytes(range(64)), bytes(range(65)), b"x" * 200):
        for message in (b"", b"1.2", bytes(range(200))):
            assert tokens.hmac_sha256(key, message) == hmac.new(key, message, "sha256").digest()
    with mock.patch("time.time", return_value=1_790_000_000):
        made = tokens.make("the-secret", "unsubscribe", 7, 9)
    body = struct.pack(">I2Q", 1_790_000_000, 7, 9)
    key = hashlib.sha256(b"tidings:unsubscribe:the-secret").digest()
    mac = hmac.new(key, body, hashlib.sha256).digest()[:10]
    assert made == base64.b32encode(body + mac).decode().rstrip("=").lower()
    assert tokens.read("the-secret", "unsubscribe", made, count=2) == (7, 9)


def test_message_ids_keep_their_mac() -> None:
    """Message-IDs already sent are still read as ours: the same MAC as first made."""
    import hashlib
    import hmac
    from types import SimpleNamespace

    from app.issues import compose

    settings = SimpleNamespace(secret_key_value="the-secret")
    key = hashlib.sha256(b"tidings:message-id:the-secret").digest()
    old = hmac.new(key, b"12.345", hashlib.sha256).hexdigest()[:8]
    assert compose._mac(settings, 12, 345) == old  # type: ignore[arg-type]
