"""Unsubscribe links (RFC 8058 one-click) and the preference center behind them.

The token in `/u/{token}` and `/preferences/{token}` is signed and names a subscriber and
the issue it came in (0 when none). It is the only proof asked for: the link reached
the person's inbox. GET never changes anything, because mail scanners follow links;
POST acts at once and needs no cookie or CSRF token, because mailbox providers post it
from their servers (RFC 8058).

Rate limits: one-click POSTs come in bursts from a few mailbox-provider addresses right
after a send, so requests with a valid token get a generous per-address allowance
(`VALID_FACTOR` × `public_rate_limit` a minute), while invalid tokens, the only thing a
guesser produces, are held to the ordinary public limit.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from app import i18n, tokens
from app.deps import SessionDep
from app.engagement import privacy
from app.security import enforce_limit
from app.subscribers import links
from app.subscribers.links import Link
from app.web.pages import not_found_page, render_page

router = APIRouter(tags=["unsubscribe"])

VALID_FACTOR = 50  # at the default public limit of 20/min: 1,000 one-clicks/min per address


async def _resolve(request: Request, session: AsyncSession, token: str) -> Link | None:
    """The subscriber and issue a token names, or None for anything forged or erased."""
    public_limit = request.app.state.settings.public_rate_limit
    enforce_limit(request, "unsubscribe", public_limit * VALID_FACTOR)
    secret = request.app.state.settings.secret_key_value
    values = tokens.read(secret, "unsubscribe", token, count=2) if len(token) < 200 else None
    link = None
    if values:
        link = await links.resolve(session=session, subscriber_id=values[0], issue_id=values[1])
    if link is None:
        enforce_limit(request, "unsubscribe-invalid", public_limit)
    return link


async def _form(request: Request) -> FormData:
    """The posted form, urlencoded or multipart; a body that is neither counts as empty."""
    try:
        return await request.form(max_files=0, max_fields=200)
    except HTTPException as exc:
        if exc.status_code == status.HTTP_413_REQUEST_ENTITY_TOO_LARGE:
            raise
        return FormData()
    except (ValueError, KeyError, AssertionError):
        return FormData()


async def _page(
    request: Request, session: AsyncSession, link: Link, name: str, **extra: Any
) -> HTMLResponse:
    lists = await links.lists_of(session=session, link=link)
    issue_lists = [m for m in lists if m["in_issue"]]
    # Unsubscribing is about the issue's lists; the preference page about all of hers.
    about = issue_lists if name.startswith("unsubscribe") and issue_lists else lists
    default = i18n.default_language(request.app.state.settings)
    context = {
        "email": link.subscriber.email,
        "lists": lists,
        "issue_lists": issue_lists,
        "token": request.path_params["token"],
        "lang": i18n.language_of([m["language"] for m in about], default),
        "tracking": privacy.tracked(link.subscriber),
        **extra,
    }
    return render_page(request, name, context)


@router.get("/u/{token}", response_class=HTMLResponse)
async def unsubscribe_page(token: str, request: Request, session: SessionDep) -> HTMLResponse:
    """The unsubscribe page: a confirm button and the person's lists; changes nothing."""
    link = await _resolve(request, session, token)
    if link is None:
        return not_found_page(request)
    return await _page(request, session, link, "unsubscribe.html")


@router.post("/u/{token}", response_class=HTMLResponse)
async def unsubscribe_now(token: str, request: Request, session: SessionDep) -> HTMLResponse:
    """Unsubscribe from the issue's lists (RFC 8058 one-click, or the page's form); idempotent."""
    link = await _resolve(request, session, token)
    if link is None:
        return not_found_page(request)
    form = await _form(request)
    everything = bool(form.get("everything")) or not link.issue_id
    await links.unsubscribe(session=session, link=link, everything=everything)
    return await _page(request, session, link, "unsubscribe_done.html", everything=everything)


@router.get("/preferences/{token}", response_class=HTMLResponse)
async def preferences_page(token: str, request: Request, session: SessionDep) -> HTMLResponse:
    """The preference center: the person's lists, each to keep or leave; changes nothing."""
    link = await _resolve(request, session, token)
    if link is None:
        return not_found_page(request)
    return await _page(request, session, link, "preferences.html", saved=False)


@router.post("/preferences/{token}", response_class=HTMLResponse)
async def preferences_save(token: str, request: Request, session: SessionDep) -> HTMLResponse:
    """Keep the ticked lists and leave the others; a ticked list is confirmed (her own choice)."""
    link = await _resolve(request, session, token)
    if link is None:
        return not_found_page(request)
    form = await _form(request)
    keep = {str(v) for v in form.getlist("list")}
    await links.save_choices(session=session, link=link, keep=keep)
    return await _page(request, session, link, "preferences.html", saved=True)


@router.post("/preferences/{token}/tracking", response_class=HTMLResponse)
async def tracking_choice(token: str, request: Request, session: SessionDep) -> HTMLResponse:
    """Let or stop us counting this person's opens and clicks (attributes.tracking)."""
    link = await _resolve(request, session, token)
    if link is None:
        return not_found_page(request)
    form = await _form(request)
    await privacy.set_tracking(session, link.subscriber, not form.get("no_tracking"))
    return await _page(request, session, link, "preferences.html", saved=True)
