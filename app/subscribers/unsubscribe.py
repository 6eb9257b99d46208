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

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from app.bounces.policy import issue_list_ids, unsubscribe
from app.db import utcnow
from app.deps import SessionDep
from app.models import Issue, MailingList, Subscriber, Subscription
from app.security import RateLimiter, client_address
from app import tokens
from app.web.pages import not_found_page, render_page

router = APIRouter(tags=["unsubscribe"])

VALID_FACTOR = 50  # at the default public limit of 20/min: 1,000 one-clicks/min per address


@dataclass
class Link:
    """What a valid token names."""

    subscriber: Subscriber
    issue_id: int  # 0 when the link came from no issue, or the issue is gone


def _limit(request: Request, bucket: str, per_minute: int) -> None:
    limiters: dict[str, RateLimiter] = request.app.state.rate_limiters
    limiter = limiters.get(bucket)
    if limiter is None:
        limiter = limiters[bucket] = RateLimiter(per_minute)
    if not limiter.hit(client_address(request)):
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too many requests from this address; try again in a minute",
            headers={"Retry-After": str(int(limiter.window))},
        )


async def _resolve(request: Request, session: AsyncSession, token: str) -> Link | None:
    """The subscriber and issue a token names, or None for anything forged or erased."""
    public_limit = request.app.state.settings.public_rate_limit
    _limit(request, "unsubscribe", public_limit * VALID_FACTOR)
    secret = request.app.state.settings.secret_key_value
    values = tokens.read(secret, "unsubscribe", token, count=2) if len(token) < 200 else None
    subscriber = await session.get(Subscriber, values[0]) if values and values[0] else None
    if subscriber is None or subscriber.blocklist_reason == "erased":
        _limit(request, "unsubscribe-invalid", public_limit)
        return None
    assert values is not None
    issue = await session.get(Issue, values[1]) if values[1] else None
    return Link(subscriber=subscriber, issue_id=issue.id if issue else 0)


async def _memberships(session: AsyncSession, link: Link) -> list[dict[str, Any]]:
    """The person's lists with their status, and whether the linked issue went to each."""
    in_issue = set(await issue_list_ids(session=session, issue_id=link.issue_id))
    stmt = (
        select(Subscription.status, MailingList)
        .join(MailingList, MailingList.id == Subscription.list_id)
        .where(Subscription.subscriber_id == link.subscriber.id)
        .order_by(MailingList.name, MailingList.id)
    )
    rows = (await session.execute(stmt)).all()
    return [
        {
            "slug": ml.slug,
            "name": ml.name,
            "description": ml.description,
            "status": st,
            "in_issue": ml.id in in_issue,
        }  # fmt: skip
        for st, ml in rows
    ]


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
    lists = await _memberships(session, link)
    context = {
        "email": link.subscriber.email,
        "lists": lists,
        "issue_lists": [m for m in lists if m["in_issue"]],
        "token": request.path_params["token"],
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
    await unsubscribe(
        session=session,
        subscriber_id=link.subscriber.id,
        issue_id=link.issue_id or None,
        everything=everything,
    )
    await session.flush()
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
    """Keep the checked lists and leave the others; a re-checked list is confirmed again."""
    link = await _resolve(request, session, token)
    if link is None:
        return not_found_page(request)
    form = await _form(request)
    keep = {str(v) for v in form.getlist("list")}
    await apply_preferences(session=session, subscriber_id=link.subscriber.id, keep=keep)
    return await _page(request, session, link, "preferences.html", saved=True)


async def apply_preferences(*, session: AsyncSession, subscriber_id: int, keep: set[str]) -> None:
    """Set each of the person's subscriptions from the checked slugs in `keep`.

    The person acts from a link that reached their own inbox, which proves the address
    as well as a confirmation email would, so a re-checked or pending list is confirmed.
    """
    now = utcnow()
    stmt = (
        select(Subscription, MailingList.slug)
        .join(MailingList, MailingList.id == Subscription.list_id)
        .where(Subscription.subscriber_id == subscriber_id)
    )
    for sub, slug in (await session.execute(stmt)).all():
        if slug in keep and sub.status != "confirmed":
            sub.status = "confirmed"
            sub.confirmed_at = now
            sub.unsubscribed_at = None
        elif slug not in keep and sub.status != "unsubscribed":
            sub.status = "unsubscribed"
            sub.unsubscribed_at = now
    await session.flush()
