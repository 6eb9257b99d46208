"""The open pixel (/o/{token}) and tracked-link redirect (/r/{token}): answer first, record later.

Both read nothing from the database on the way (the link table is cached per process
after its first read) and hand the hit to the recorder's buffer. A token that is forged,
cut short, of the other purpose or for an index the issue's table lacks is a 404: the
Location is only ever a URL the issue itself holds.

`FastPath` answers the same two paths as plain ASGI in front of the app's middleware
(branding refresh, body limits, metrics, routing through some hundred routes), which
cost ~1 ms a request and, when branding is due, a database round trip per waiting
request; the routes below stay for an app without it and give the same answers.
"""

from __future__ import annotations

import base64
import time
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app import metrics
from app.engagement import tokens
from app.engagement.classify import Hit
from app.engagement.links import LinkCache
from app.engagement.recorder import Recorder
from app.security import client_address

router = APIRouter(include_in_schema=False)
_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
# Every real open must be a request: no cache of ours, a proxy's or the mail client's.
_NO_CACHE = [
    (b"cache-control", b"no-store, no-cache, must-revalidate, private, max-age=0"),
    (b"pragma", b"no-cache"),
    (b"expires", b"0"),
    (b"referrer-policy", b"no-referrer"),
]
_GIF_HEADERS = [(b"content-type", b"image/gif"), (b"content-length", b"%d" % len(_GIF)),
                *_NO_CACHE]  # fmt: skip
_MISSING = b"not found"
_MISSING_HEADERS = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"9"),
                    (b"cache-control", b"no-store")]  # fmt: skip
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]
_NOT_FOUND: Answer = (404, _MISSING_HEADERS, _MISSING)
_ROUTES = {"/o/": "/o/{token}", "/r/": "/r/{token}"}


def recorder(state: Any) -> Recorder:
    """This app's recorder, made on first use."""
    found: Recorder | None = getattr(state, "engagement_recorder", None)
    if found is None:
        found = Recorder(state.sessionmaker, state.settings)
        state.engagement_recorder = found
    return found


def link_cache(state: Any) -> LinkCache:
    """This app's cache of link tables."""
    found: LinkCache | None = getattr(state, "engagement_links", None)
    if found is None:
        found = state.engagement_links = LinkCache()
    return found


async def answer(scope: Scope, purpose: str, token: str) -> Answer:
    """The answer to a GET or HEAD of the pixel ("open") or a link ("click"); the hit noted.

    Nothing is awaited but the link table of an issue this process has not read yet.
    """
    state = scope["app"].state
    values = tokens.read(state.settings.secret_key_value, purpose, token)
    if values is None:
        return _NOT_FOUND
    if purpose == "open":
        if values[2] != 0:
            return _NOT_FOUND
        _note(scope, state, purpose, values, "")
        return 200, _GIF_HEADERS, _GIF
    cache = link_cache(state)
    table = cache.get(values[0])
    if table is None:
        table = await cache.fetch(state.sessionmaker, values[0])
    url = table.get(values[2])
    if url is None:
        return _NOT_FOUND
    _note(scope, state, purpose, values, url)
    return 302, [*_NO_CACHE, (b"location", _ascii(url)), (b"content-length", b"0")], b""


def _ascii(url: str) -> bytes:
    try:
        return url.encode("ascii")
    except UnicodeEncodeError:  # an IRI in the issue: its UTF-8 percent-encoded
        return quote(url, safe="!#$%&'()*+,-./:;=?@[]~_").encode("ascii")


def _note(scope: Scope, state: Any, kind: str, values: tuple[int, int, int], url: str) -> None:
    if state.settings.tracking == "off":
        return
    agent = next((v for k, v in scope["headers"] if k == b"user-agent"), b"")
    if state.settings.trusted_proxies:
        address = client_address(Request(scope))
    else:
        address = scope["client"][0] if scope.get("client") else "unknown"
    issue_id, delivery_id, index = values
    recorder(state).hit(Hit(
        kind=kind, issue_id=issue_id, delivery_id=delivery_id, link_idx=index, at=time.time(),
        method=scope["method"], user_agent=agent.decode("latin-1"), address=address, url=url,
    ))  # fmt: skip


class FastPath:
    """ASGI middleware, outermost: /o/ and /r/ answered before the rest of the stack."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        route = _ROUTES.get(path[:3])
        if (route is None or scope["type"] != "http" or len(path) != 3 + tokens.LENGTH
                or scope["method"] not in ("GET", "HEAD")):  # fmt: skip
            await self.app(scope, receive, send)  # the routes give 404 or 405 as ever
            return
        start = time.perf_counter()
        purpose = "open" if route == "/o/{token}" else "click"
        status, headers, body = await answer(scope, purpose, path[3:])
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        metrics.count_request(scope["method"], route, status, time.perf_counter() - start)


def install(app: Any) -> None:
    """Put FastPath outermost in `app`, once (before the app's first request)."""
    if not any(m.cls is FastPath for m in app.user_middleware):
        app.add_middleware(FastPath)


async def _routed(request: Request, purpose: str, token: str) -> Response:
    status, headers, body = await answer(request.scope, purpose, token)
    response = Response(body, status_code=status)
    response.raw_headers = list(headers)
    return response


@router.api_route("/o/{token}", methods=["GET", "HEAD"])
async def pixel(token: str, request: Request) -> Response:
    """The open pixel: a 1x1 GIF that no cache keeps."""
    return await _routed(request, "open", token)


@router.api_route("/r/{token}", methods=["GET", "HEAD"])
async def redirect(token: str, request: Request) -> Response:
    """A tracked link: 302 to the URL the issue holds at that index, else 404."""
    return await _routed(request, "click", token)


async def close(app: object) -> None:
    """Stop the flushing task and write what is left (at shutdown, before the engine goes)."""
    found: Recorder | None = getattr(app.state, "engagement_recorder", None)  # type: ignore[attr-defined]
    if found is not None:
        await found.close()
