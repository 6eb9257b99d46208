"""Public endpoints are limited per client address; X-Forwarded-For counts only from a proxy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import AppClient
from tests.security.routes import require_route
from tests.security.seed import make_list

LIMIT = 3
PROXY = "203.0.113.7"  # the address the test client connects from (tests/conftest.py)


def peer(client: AppClient, address: str) -> AppClient:
    """The same app, reached from another client address."""
    c = AppClient(
        transport=httpx.ASGITransport(app=client.app, client=(address, 40000)),
        base_url=str(client.base_url),
    )
    c.app = client.app
    return c


async def _burst(send: Callable[[], Any], n: int) -> list[int]:
    return [(await send()).status_code for _ in range(n)]


async def test_sign_up_limited_per_address(app_factory: Callable[..., Any]) -> None:
    """The limit-th sign-up passes, the next is 429; another address still gets through."""
    client = await app_factory(public_rate_limit=LIMIT)
    require_route(client.app, "POST", "/api/v1/subscribe")
    await make_list(client, "news")
    a, b = peer(client, "198.51.100.1"), peer(client, "198.51.100.2")
    n = iter(range(100))

    def signup(c: AppClient) -> Callable[[], Any]:
        return lambda: c.post(
            "/api/v1/subscribe", json={"email": f"p{next(n)}@example.org", "lists": ["news"]}
        )

    codes = await _burst(signup(a), LIMIT + 2)
    assert codes[:LIMIT] == [202] * LIMIT and codes[LIMIT:] == [429, 429], codes
    r = await signup(a)()
    assert r.status_code == 429 and "detail" in r.json() and r.headers.get("retry-after")
    assert (await signup(b)()).status_code == 202


async def test_confirm_limited_per_address(app_factory: Callable[..., Any]) -> None:
    """Guessing confirm tokens is limited: after the limit, 429 even for the pages."""
    client = await app_factory(public_rate_limit=LIMIT)
    require_route(client.app, "POST", "/subscribe/confirm/{token}")
    a = peer(client, "198.51.100.3")
    codes = await _burst(lambda: a.post("/subscribe/confirm/" + "a" * 36), LIMIT + 1)
    assert codes[-1] == 429 and 429 not in codes[:LIMIT], codes
    assert (await a.get("/subscribe/confirm/" + "b" * 36)).status_code == 429
    assert (await peer(client, "198.51.100.4").post("/subscribe/confirm/x")).status_code != 429


async def test_unsubscribe_guessing_limited_per_address(app_factory: Callable[..., Any]) -> None:
    """Invalid unsubscribe tokens (all a guesser has) are held to the public limit."""
    client = await app_factory(public_rate_limit=LIMIT)
    require_route(client.app, "POST", "/u/{token}")
    a = peer(client, "198.51.100.5")
    codes = await _burst(lambda: a.post("/u/" + "a" * 36), LIMIT + 1)
    assert codes[:LIMIT] == [404] * LIMIT and codes[LIMIT] == 429, codes
    assert (await a.get("/preferences/" + "a" * 36)).status_code == 429
    assert (await peer(client, "198.51.100.6").post("/u/" + "a" * 36)).status_code == 404


async def test_forwarded_for_ignored_without_trusted_proxies(
    app_factory: Callable[..., Any],
) -> None:
    """With no trusted proxy configured, a made-up X-Forwarded-For buys no fresh allowance."""
    client = await app_factory(public_rate_limit=LIMIT, trusted_proxies=[])
    require_route(client.app, "POST", "/subscribe/confirm/{token}")
    codes = [
        (
            await client.post(
                "/subscribe/confirm/" + "a" * 36, headers={"X-Forwarded-For": f"192.0.2.{i}"}
            )
        ).status_code
        for i in range(LIMIT + 2)
    ]
    assert codes[LIMIT:] == [429, 429], codes


async def test_forwarded_for_believed_from_trusted_proxy_only(
    app_factory: Callable[..., Any],
) -> None:
    """From a configured proxy each forwarded client has its own allowance; from others, not."""
    client = await app_factory(public_rate_limit=LIMIT, trusted_proxies=[f"{PROXY}/32"])
    require_route(client.app, "POST", "/subscribe/confirm/{token}")
    path = "/subscribe/confirm/" + "a" * 36

    # Through the proxy: client 192.0.2.1 uses its allowance, 192.0.2.2 still has one.
    def via_proxy(xff: str) -> Any:
        return client.post(path, headers={"X-Forwarded-For": xff})

    codes = [(await via_proxy("192.0.2.1")).status_code for _ in range(LIMIT + 1)]
    assert codes[-1] == 429 and 429 not in codes[:LIMIT], codes
    assert (await via_proxy("192.0.2.2")).status_code != 429
    # A client that forges the left part of the chain is still known by the proxy's entry.
    forged = [(await via_proxy(f"10.0.0.{i}, 192.0.2.1")).status_code for i in range(LIMIT)]
    assert forged == [429] * LIMIT, forged
    # Straight from an untrusted address, X-Forwarded-For is ignored.
    direct = peer(client, "198.51.100.7")
    codes = [
        (await direct.post(path, headers={"X-Forwarded-For": f"192.0.2.{50 + i}"})).status_code
        for i in range(LIMIT + 1)
    ]
    assert codes[-1] == 429, codes


async def test_ipv6_addresses_of_one_64_share_a_limit(app_factory: Callable[..., Any]) -> None:
    """Issue 16: keyed on the full IPv6 address, one /64 had 2^64 fresh allowances."""
    client = await app_factory(public_rate_limit=LIMIT)
    await make_list(client, "news")
    n = iter(range(100))

    async def signup(address: str) -> int:
        body = {"email": f"v{next(n)}@example.org", "lists": ["news"]}
        return (await peer(client, address).post("/api/v1/subscribe", json=body)).status_code

    same_64 = [f"2001:db8:1:2::{i:x}" for i in range(1, LIMIT + 3)]
    codes = [await signup(a) for a in same_64]
    assert codes[:LIMIT] == [202] * LIMIT and codes[LIMIT:] == [429, 429], codes
    assert await signup("2001:db8:1:3::1") == 202  # the next /64 is someone else


def test_limit_keys() -> None:
    from app.security import limit_key

    assert limit_key("2001:db8:1:2:aaaa::1") == limit_key("2001:db8:1:2:ffff::9")
    assert limit_key("2001:db8:1:2::1") != limit_key("2001:db8:1:3::1")
    assert limit_key("::ffff:198.51.100.1") == limit_key("198.51.100.1") == "198.51.100.1"
    assert limit_key("unknown") == "unknown"
