"""Admin authentication, the client's address, and per-address limits on public endpoints."""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections import deque

from fastapi import HTTPException, Request, status

from app.errors import TooMany


def check_admin(request: Request) -> None:
    """Require the admin bearer token, compared in constant time."""
    expected = request.app.state.settings.admin_token_value
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    # compare_digest on bytes of any length: no early exit that would leak how much matched.
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), expected.encode()
    ):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a valid admin bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )


def client_address(request: Request) -> str:
    """The client's address; X-Forwarded-For is believed only from a configured proxy."""
    peer = request.client.host if request.client else "unknown"
    proxies = request.app.state.settings.trusted_proxies
    if not proxies or not _in_networks(peer, proxies):
        return peer
    # Walk the chain from the right: the first hop that is not one of our proxies is the client.
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _in_networks(hop, proxies):
            return hop
    return hops[0] if hops else peer


def limit_key(address: str) -> str:
    """The key a per-address limit counts under: an IPv4 address, or an IPv6 /64.

    One IPv6 customer is usually handed a whole /64, so keying on the full address would
    give one machine 2^64 fresh allowances.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _in_networks(address: str, networks: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(n, strict=False) for n in networks)


class RateLimiter:
    """A sliding window of at most `limit` hits per key per `window` seconds, in memory.

    Public endpoints are served by one process per machine behind a load balancer; a
    limit per process is what the sign-up abuse it guards against needs, and it costs no
    database round trip on the hot path.
    """

    def __init__(self, limit: int, window: float = 60.0, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str) -> bool:
        """Record one request; False when the key is over its limit."""
        now = time.monotonic()
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self.max_keys:
                self._evict(now)
            hits = self._hits[key] = deque()
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        return True

    def _evict(self, now: float) -> None:
        stale = [k for k, h in self._hits.items() if not h or h[-1] <= now - self.window]
        for k in stale:
            del self._hits[k]
        if len(self._hits) >= self.max_keys:  # still full of live keys: forget the oldest half
            for k in list(self._hits)[: self.max_keys // 2]:
                del self._hits[k]


def enforce_limit(request: Request, bucket: str, per_minute: int | None = None) -> None:
    """Count one request of the client in `bucket`; TooMany (429) past its allowance a minute.

    `per_minute` defaults to the public limit; the bucket's limiter is made on first use.
    """
    limiters: dict[str, RateLimiter] = request.app.state.rate_limiters
    limiter = limiters.get(bucket)
    if limiter is None:
        limit = per_minute or request.app.state.settings.public_rate_limit
        limiter = limiters[bucket] = RateLimiter(limit)
    if not limiter.hit(limit_key(client_address(request))):
        raise TooMany(
            "too many requests from this address; try again in a minute",
            headers={"Retry-After": str(int(limiter.window))},
        )


def rate_limited(bucket: str):  # type: ignore[no-untyped-def]
    """A dependency that answers 429 when the client has used up `bucket`'s allowance.

    Async, so FastAPI awaits it inline instead of hopping to a worker thread per request.
    """

    async def dependency(request: Request) -> None:
        enforce_limit(request, bucket)

    return dependency
