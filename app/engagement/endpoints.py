"""The open pixel (/o/{token}) and tracked-link redirect (/r/{token}): answer first, record later.

Both read nothing from the database on the way (the link table is cached per process
after its first read) and hand the hit to the recorder's buffer. A token that is forged,
cut short, of the other purpose or for an index the issue's table lacks is a 404: the
Location is only ever a URL the issue itself holds.
"""

from __future__ import annotations

import base64
import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from app.engagement import tokens
from app.engagement.classify import Hit
from app.engagement.links import LinkCache
from app.engagement.recorder import Recorder
from app.security import client_address

router = APIRouter(include_in_schema=False)
_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
# Every real open must be a request: no cache of ours, a proxy's or the mail client's.
_NO_CACHE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, private, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
    "Referrer-Policy": "no-referrer",
}
_NOT_FOUND = PlainTextResponse("not found", status_code=404, headers={"Cache-Control": "no-store"})


def recorder(request: Request) -> Recorder:
    """This app's recorder, made on first use."""
    state = request.app.state
    found: Recorder | None = getattr(state, "engagement_recorder", None)
    if found is None:
        found = Recorder(state.sessionmaker, state.settings)
        state.engagement_recorder = found
    return found


def link_cache(request: Request) -> LinkCache:
    """This app's cache of link tables."""
    state = request.app.state
    found: LinkCache | None = getattr(state, "engagement_links", None)
    if found is None:
        found = state.engagement_links = LinkCache()
    return found


def _note(request: Request, kind: str, values: tuple[int, int, int]) -> None:
    if request.app.state.settings.tracking == "off":
        return
    issue_id, delivery_id, index = values
    recorder(request).hit(Hit(
        kind=kind, issue_id=issue_id, delivery_id=delivery_id, index=index, at=time.time(),
        method=request.method, user_agent=request.headers.get("user-agent", ""),
        address=client_address(request),
    ))  # fmt: skip


@router.api_route("/o/{token}", methods=["GET", "HEAD"])
async def pixel(token: str, request: Request) -> Response:
    """The open pixel: a 1x1 GIF that no cache keeps."""
    values = tokens.read(request.app.state.settings.secret_key_value, "open", token)
    if values is None or values[2] != 0:
        return _NOT_FOUND
    _note(request, "open", values)
    return Response(_GIF, media_type="image/gif", headers=_NO_CACHE)


@router.api_route("/r/{token}", methods=["GET", "HEAD"])
async def redirect(token: str, request: Request) -> Response:
    """A tracked link: 302 to the URL the issue holds at that index, else 404."""
    values = tokens.read(request.app.state.settings.secret_key_value, "click", token)
    if values is None:
        return _NOT_FOUND
    cache = link_cache(request)
    table = cache.get(values[0])
    if table is None:
        async with request.app.state.sessionmaker() as session:
            table = await cache.load(session, values[0])
    url = table.get(values[2])
    if url is None:
        return _NOT_FOUND
    _note(request, "click", values)
    return Response(status_code=302, headers={**_NO_CACHE, "Location": url})


async def close(app: object) -> None:
    """Stop the flushing task and write what is left (at shutdown, before the engine goes)."""
    found: Recorder | None = getattr(app.state, "engagement_recorder", None)  # type: ignore[attr-defined]
    if found is not None:
        await found.close()
