"""ASGI middleware: request body limits and deadlines, trailing slashes, HTTP metrics."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.routing import Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics


class _TrackedSend:
    """`send`, noting whether the response has begun (after that, no error answer fits)."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)


class BodyTooLarge(HTTPException):
    """Raised from `receive` past the limit; an HTTPException so FastAPI's body parsing keeps it."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over the {limit}-byte limit")


class BodyLimitMiddleware:
    """Refuse bodies over the limit with 413, before or while they stream, never buffering them.

    A declared Content-Length over the limit is refused at once; a chunked body is counted
    as it arrives and cut off at the limit. Paths in `overrides` (CSV import) get their own.
    """

    def __init__(self, app: ASGIApp, *, limit: int, overrides: dict[str, int]) -> None:
        self.app = app
        self.limit = limit
        self.overrides = overrides

    def _limit_for(self, path: str) -> int:
        for prefix, limit in self.overrides.items():
            if path.startswith(prefix):
                return limit
        return self.limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit_for(scope["path"])
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _reply(send, 400, "invalid Content-Length")
                    return
                if declared > limit:
                    await _reply(send, 413, f"request body over the {limit}-byte limit")
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        tracked = _TrackedSend(send)
        try:
            await self.app(scope, limited_receive, tracked)
        except BodyTooLarge:
            if not tracked.started:
                await _reply(send, 413, f"request body over the {limit}-byte limit")


class BodyTimeout(HTTPException):
    """Raised from `receive` when the body is not all there in time (a slow-body client)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"the request body did not arrive within {seconds:g} s")


class BodyTimeoutMiddleware:
    """Bound the time from a request's first `receive` to the end of its body.

    uvicorn waits for body bytes for ever, so 50 clients trickling a byte at a time hold
    50 handlers. The whole body, not each chunk, is bounded: a byte every few seconds
    would reset a per-chunk timer indefinitely. Paths in `overrides` (CSV import) get
    their own bound.
    """

    def __init__(self, app: ASGIApp, *, seconds: float, overrides: dict[str, float]) -> None:
        self.app = app
        self.seconds = seconds
        self.overrides = overrides

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        seconds = next((v for p, v in self.overrides.items() if path.startswith(p)), self.seconds)
        deadline: float | None = None
        done = False

        async def timed_receive() -> Message:
            nonlocal deadline, done
            if done:
                return await receive()  # after the body: only a disconnect is left to wait for
            loop = asyncio.get_running_loop()
            deadline = deadline or loop.time() + seconds
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise BodyTimeout(seconds) from None
            done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        tracked = _TrackedSend(send)
        try:
            await self.app(scope, timed_receive, tracked)
        except BodyTimeout as exc:
            if not tracked.started:
                await _reply(send, 408, exc.detail)


class RelativeSlashRedirect:
    """`/archive/` → `/archive` (and back) with a relative Location, never built from Host.

    Starlette's own redirect (redirect_slashes, turned off in create_app) writes
    `http://<Host>/archive`, so whoever sets the Host header of a request picks where
    its redirect leads. As there, a path is redirected only when it matches no route
    and its other form does; the routes are only searched when the app answered 404
    (matching every route costs ~80 µs, too much to spend on every request).
    """

    def __init__(self, app: ASGIApp, *, router: Router) -> None:
        self.app = app
        self.router = router

    def _routed(self, scope: Scope) -> bool:
        return any(route.matches(scope)[0] == Match.FULL for route in self.router.routes)

    def _location(self, scope: Scope) -> bytes | None:
        """Where the other form of this unrouted path leads, or None when it leads nowhere."""
        path = scope["path"]
        other = path.rstrip("/") if path.endswith("/") else path + "/"
        if not other or self._routed(scope) or not self._routed({**scope, "path": other}):
            return None
        raw: bytes = scope.get("raw_path") or path.encode()
        raw = raw.rstrip(b"/") if path.endswith("/") else raw + b"/"
        # One leading slash: `//evil.example` (or `/\\evil.example`, which browsers read
        # the same way) must not become a protocol-relative URL to another site.
        location = b"/" + raw.lstrip(b"/\\")
        query = scope.get("query_string", b"")
        return location + b"?" + query if query else location

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "/") == "/":
            await self.app(scope, receive, send)
            return
        redirected = False

        async def redirect_a_404(message: Message) -> None:
            nonlocal redirected
            if redirected:
                return  # the rest of the 404 we replaced
            if message["type"] == "http.response.start" and message["status"] == 404:
                location = self._location(scope)
                if location is not None:
                    redirected = True
                    status = 307 if scope["method"] in ("GET", "HEAD") else 308
                    await send({"type": "http.response.start", "status": status,
                                "headers": [(b"location", location),
                                            (b"content-length", b"0")]})  # fmt: skip
                    await send({"type": "http.response.body", "body": b""})
                    return
            await send(message)

        await self.app(scope, receive, redirect_a_404)


async def _reply(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})


class MetricsMiddleware:
    """Counts requests by route template (not raw path, so ids don't explode the series)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route: Any = scope.get("route")
            name = getattr(route, "path", "unmatched")
            metrics.http_requests.labels(scope["method"], name, str(status)).inc()
            metrics.http_latency.labels(name).observe(time.perf_counter() - start)
