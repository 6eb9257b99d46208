"""What the links in a person's inbox do: confirm, unsubscribe, and the preference page.

The routers (pages.py, unsubscribe.py) read the token and render; the reading and
writing of memberships is here, and the rules are memberships.py's. Services only flush.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Issue, MailingList, Subscriber, Subscription, Suppression
from app.subscribers import memberships
from app.subscribers.addresses import suppression_hash


@dataclass
class Confirmation:
    """What a confirm link finds, or did: the lists in each state, by name."""

    confirmed_now: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    confirmed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # lists she unsubscribed from since
    # The languages of the lists the page is about (None: the installation's default).
    languages: list[str | None] = field(default_factory=list)


def _state(subscriber: Subscriber, confirmed_now: list[str] | None = None) -> Confirmation:
    by_status: dict[str, list[str]] = {"pending": [], "confirmed": [], "unsubscribed": []}
    for s in subscriber.subscriptions:
        by_status[s.status].append(s.mailing_list.name)
    # The page is about the lists she is on (or waits for); about all when she left them all.
    on = [s for s in subscriber.subscriptions if s.status != "unsubscribed"]
    return Confirmation(
        languages=[s.mailing_list.language for s in on or subscriber.subscriptions],
        confirmed_now=confirmed_now or [],
        pending=sorted(by_status["pending"]),
        confirmed=sorted(by_status["confirmed"]),
        left=sorted(by_status["unsubscribed"]),
    )


async def confirmation_state(*, session: AsyncSession, subscriber_id: int) -> Confirmation | None:
    """The lists a confirm link would confirm, and the others; None if there is no one."""
    subscriber = await session.get(Subscriber, subscriber_id)
    return None if subscriber is None else _state(subscriber)


async def confirm(*, session: AsyncSession, subscriber_id: int) -> Confirmation | None:
    """Confirm every pending membership; the person's own consent lifts any suppression.

    A list she left since is not taken back by an old link: the page says she left it.
    """
    subscriber = await session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return None
    moves = memberships.confirm_pending(subscriber)
    if moves:
        await session.execute(
            delete(Suppression).where(
                Suppression.email_hash == suppression_hash(subscriber.email_key)
            )
        )
    await session.flush()
    await memberships.announce(session, subscriber, moves)
    by_slug = {s.mailing_list.slug: s.mailing_list.name for s in subscriber.subscriptions}
    return _state(subscriber, sorted(by_slug[slug] for _, slug in moves))


@dataclass
class Link:
    """What a valid unsubscribe token names."""

    subscriber: Subscriber
    issue_id: int  # 0 when the link came from no issue, or the issue is gone


async def resolve(*, session: AsyncSession, subscriber_id: int, issue_id: int) -> Link | None:
    """The subscriber and issue an unsubscribe token names; None for anyone erased."""
    subscriber = await session.get(Subscriber, subscriber_id) if subscriber_id else None
    if subscriber is None or subscriber.blocklist_reason == "erased":
        return None
    issue = await session.get(Issue, issue_id) if issue_id else None
    return Link(subscriber=subscriber, issue_id=issue.id if issue else 0)


async def lists_of(*, session: AsyncSession, link: Link) -> list[dict[str, Any]]:
    """The person's lists with their status, and whether the linked issue went to each."""
    in_issue = set(await memberships.issue_list_ids(session=session, issue_id=link.issue_id))
    stmt = (
        select(Subscription.status, MailingList)
        .join(MailingList, MailingList.id == Subscription.list_id)
        .where(Subscription.subscriber_id == link.subscriber.id)
        .order_by(MailingList.name, MailingList.id)
    )
    return [
        {
            "slug": ml.slug,
            "name": ml.name,
            "description": ml.description,
            "language": ml.language,
            "status": st,
            "in_issue": ml.id in in_issue,
        }  # fmt: skip
        for st, ml in (await session.execute(stmt)).all()
    ]


async def unsubscribe(*, session: AsyncSession, link: Link, everything: bool) -> None:
    """Leave the linked issue's lists, or every list; idempotent."""
    await memberships.unsubscribe(
        session=session,
        subscriber_id=link.subscriber.id,
        issue_id=link.issue_id or None,
        everything=everything or not link.issue_id,
    )
    await session.flush()


async def save_choices(*, session: AsyncSession, link: Link, keep: set[str]) -> None:
    """The preference page's form: keep the ticked lists, leave the others."""
    await session.refresh(link.subscriber, ["subscriptions"])
    moves = memberships.choose(link.subscriber, keep)
    await session.flush()
    await memberships.announce(session, link.subscriber, moves)
