"""Who may call the API (token, key or session, by scope), the client's address, rate limits."""

from __future__ import annotations

import contextlib
import functools
import hmac
import ipaddress
import json
import time
from collections import deque
from datetime import timedelta
from typing import Any

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import audit, keys, sessions
from app.accounts.principal import (
    CSRF_HEADER,
    SESSION_COOKIE,
    Principal,
    csrf_matches,
)
from app.accounts.scopes import ROLE_SCOPES, SAFE_METHODS, SCOPES, api_scope
from app.errors import Forbidden, TooMany, Unauthorized

ADMIN_TOKEN = Principal(actor="admin token", scopes=frozenset(SCOPES))


def _refuse() -> Unauthorized:
    return Unauthorized(
        "a valid admin bearer token, API key or console session is required",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def check_admin(request: Request, session: AsyncSession) -> Principal:
    """Authenticate an /api/v1 request and check its scope against the route table."""
    header = request.headers.get("authorization")
    if header is not None:
        principal = await _bearer(request, session, header)
    else:
        principal = await _console_session(request, session)
    needed = api_scope(request.method, route_template(request))
    if needed not in principal.scopes:
        raise Forbidden(f"this needs the {needed!r} scope")
    return principal


async def _bearer(request: Request, session: AsyncSession, header: str) -> Principal:
    expected = request.app.state.settings.admin_token_value
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _refuse()
    # compare_digest on bytes of any length: no early exit that would leak how much matched.
    if hmac.compare_digest(token.encode(), expected.encode()):
        return ADMIN_TOKEN
    # A key is found by the SHA-256 of what was presented: nothing to compare byte by byte.
    key = await keys.find_key(session=session, secret=token)
    if key is None:
        raise _refuse()
    return Principal(actor=f"key {key.name} ({key.prefix})", scopes=frozenset(key.scopes))


async def _console_session(request: Request, session: AsyncSession) -> Principal:
    """A browser signed in to the console; its writes carry the CSRF header."""
    cookie = request.cookies.get(SESSION_COOKIE)
    settings = request.app.state.settings
    found = await sessions.load_session(
        session=session,
        token=cookie or "",
        idle=timedelta(minutes=settings.console_idle_minutes),
    )
    if cookie is None or found is None or found[0].stage != "full":
        raise _refuse()
    if request.method not in SAFE_METHODS and not csrf_matches(
        settings.secret_key_value, cookie, request.headers.get(CSRF_HEADER)
    ):
        raise Forbidden("the CSRF token is missing or wrong; reload the page")
    account = found[1]
    return Principal(
        actor=account.email,
        scopes=ROLE_SCOPES[account.role],
        role=account.role,
        account_id=account.id,
    )


def route_template(request: Request) -> str:
    """The route's path template: the request path with each parameter's value named."""
    path = request.url.path
    if not request.path_params:
        return path
    values = {str(v): k for k, v in request.path_params.items()}
    return "/".join("{" + values[p] + "}" if p in values else p for p in path.split("/"))


async def record_write(
    request: Request, session: AsyncSession, actor: str, watcher: audit.ChangeWatcher
) -> None:
    """The audit entry of a write that succeeded, in the request's own transaction."""
    template = route_template(request)
    fields: dict[str, Any] = {}
    # Only what the handler already read: a streamed body (an import) is never read again.
    json_body = getattr(request, "_json", None)
    raw = getattr(request, "_body", None)
    if json_body is None and raw and len(raw) < 100_000:
        with contextlib.suppress(ValueError):
            json_body = json.loads(raw)
    form = getattr(request, "_form", None)
    if isinstance(json_body, dict):
        fields = json_body
    elif form is not None:
        values: dict[str, list[str]] = {}
        for key, value in form.multi_items():
            if isinstance(value, str):
                values.setdefault(key, []).append(value)
        fields = {k: v if len(v) > 1 else v[0] for k, v in values.items()}
    await audit.record(
        session=session,
        actor=actor,
        action=audit.action_for(request.method, template),
        target=audit.target_for(template, request.path_params, watcher.created),
        detail=audit.detail_for(fields),
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


@functools.lru_cache(maxsize=4096)  # parsing an address costs more than the limiter's work
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

    WINDOW = 60.0

    def __init__(self, limit: int, window: float = WINDOW, max_keys: int = 100_000) -> None:
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


# Where a fast path in front of the routes (app/subscribers/signup_fast.py) leaves the
# verdicts it already took, so a request it hands on to the route is not counted twice.
VERDICTS = "tidings.rate_verdicts"


def take_hit(state: Any, bucket: str, address: str, per_minute: int | None = None) -> bool:
    """Count one request of `address` in `bucket`; False past its allowance a minute.

    `per_minute` defaults to the public limit; the bucket's limiter is made on first use.
    """
    limiters: dict[str, RateLimiter] = state.rate_limiters
    limiter = limiters.get(bucket)
    if limiter is None:
        limit = per_minute or state.settings.public_rate_limit
        limiter = limiters[bucket] = RateLimiter(limit)
    return limiter.hit(limit_key(address))


def enforce_limit(request: Request, bucket: str, per_minute: int | None = None) -> None:
    """Count one request of the client in `bucket`; TooMany (429) past its allowance a minute.

    A verdict a fast path already took for this request (scope[VERDICTS]) is used instead.
    """
    taken: dict[str, bool] | None = request.scope.get(VERDICTS)
    if taken is not None and bucket in taken:
        allowed = taken.pop(bucket)
    else:
        allowed = take_hit(request.app.state, bucket, client_address(request), per_minute)
    if not allowed:
        raise TooMany(
            "too many requests from this address; try again in a minute",
            headers={"Retry-After": str(int(RateLimiter.WINDOW))},
        )


def rate_limited(bucket: str):  # type: ignore[no-untyped-def]
    """A dependency that answers 429 when the client has used up `bucket`'s allowance.

    Async, so FastAPI awaits it inline instead of hopping to a worker thread per request.
    """

    async def dependency(request: Request) -> None:
        enforce_limit(request, bucket)

    return dependency
