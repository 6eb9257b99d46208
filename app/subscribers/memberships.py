"""Memberships of lists: confirm, unsubscribe, resubscribe, and who may undo an opt-out.

Every path that changes a subscription asks `next_status` what the change becomes and
writes `stamps` of it: the admin API, the public sign-up (Core statements), the confirm
link, the preference page, the importer, and the bounce policy's unsubscribe.

The rule of consent: an explicit opt-out is undone only by the person, through a link
that reached her own inbox (the confirm link, the preference page). Anyone can type her
address into the public form, so a sign-up for a list she left asks her again by email
(pending, even on a single opt-in list); an import skips her; an admin is refused.

Every move to confirmed or unsubscribed is announced as well: one `subscriber.confirmed`
or `subscriber.unsubscribed` outbox row per (person, list), in the transaction of the
move. The ORM paths collect the moves `set_membership` returns and `announce` them once
flushed; the Core writers (sign-up, import, `unsubscribe` here) write theirs beside
their statements. Triggered issues enrol the same confirmations (app/issues/triggers.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.errors import Conflict
from app.issues import triggers
from app.models import Delivery, IssueList, MailingList, Subscriber, Subscription
from app.webhooks.events import membership_moved, subscribed_events, subscriber_data

# Every flush that confirms a membership enrols it in the list's active triggered issues.
triggers.install()

# person: acts from a link in her own inbox; public: anyone at the sign-up form;
# admin: the API's operator; import: a CSV the operator uploads.
Actor = Literal["person", "public", "admin", "import"]


class OptedOut(Conflict):
    """The change would undo the person's own opt-out, and she is not the one asking."""


def next_status(current: str | None, wanted: str, *, actor: Actor) -> str | None:
    """What a membership in `current` becomes when `actor` asks for `wanted`; None: unchanged."""
    if current == wanted:
        return None
    if wanted == "unsubscribed":
        return wanted
    if current == "confirmed" and actor in ("public", "import"):
        return None  # a new sign-up or import never demotes a confirmed member
    if current == "pending" and actor == "public":
        return None  # it waits for her inbox; a second stranger's sign-up is no answer
    if current == "unsubscribed" and actor != "person":
        if actor == "public":
            return "pending"  # only a link in her own inbox brings her back
        raise OptedOut(
            "this person unsubscribed from the list; only her own confirmation can bring her "
            "back (a sign-up through the public form sends her one)"
        )
    return wanted


def stamps(status: str, now: datetime) -> dict[str, Any]:
    """The columns a move to `status` writes: confirming again clears the old opt-out's time."""
    if status == "confirmed":
        return {"status": status, "confirmed_at": now, "unsubscribed_at": None}
    if status == "unsubscribed":
        return {"status": status, "unsubscribed_at": now}
    return {"status": status}


def set_membership(
    subscriber: Subscriber, mailing_list: MailingList, wanted: str, *, actor: Actor
) -> str | None:
    """Put a loaded subscriber on the list as `wanted` allows; the status it moved to, or None."""
    current = next((s for s in subscriber.subscriptions if s.list_id == mailing_list.id), None)
    status = next_status(current.status if current else None, wanted, actor=actor)
    if status is None:
        return None
    if current is None:
        current = Subscription(list_id=mailing_list.id, mailing_list=mailing_list)
        subscriber.subscriptions.append(current)
    for column, value in stamps(status, utcnow()).items():
        setattr(current, column, value)
    return status


# What the ORM paths collect and announce once flushed: (new status, list slug).
Moves = list[tuple[str, str]]


def confirm_pending(subscriber: Subscriber) -> Moves:
    """The person's own confirmation: every pending list confirmed; the moves made."""
    moves: Moves = []
    for subscription in subscriber.subscriptions:
        if subscription.status == "pending":
            mailing_list = subscription.mailing_list
            if set_membership(subscriber, mailing_list, "confirmed", actor="person"):
                moves.append(("confirmed", mailing_list.slug))
    return moves


def choose(subscriber: Subscriber, keep: set[str]) -> Moves:
    """The preference page: checked lists kept (or taken back), unchecked ones left.

    A pending list is confirmed only when she ticked it herself; left unticked, it stays
    pending (the page never shows it ticked), so saving never confirms what she did not choose.
    """
    moves: Moves = []
    for subscription in subscriber.subscriptions:
        mailing_list = subscription.mailing_list
        moved = None
        if mailing_list.slug in keep:
            moved = set_membership(subscriber, mailing_list, "confirmed", actor="person")
        elif subscription.status == "confirmed":
            moved = set_membership(subscriber, mailing_list, "unsubscribed", actor="person")
        if moved:
            moves.append((moved, mailing_list.slug))
    return moves


async def announce(session: AsyncSession, subscriber: Subscriber, moves: Moves) -> None:
    """The webhook events of `moves`, in the session's transaction (after its flush)."""
    await membership_moved(session, subscriber_data(subscriber), moves)


async def issue_list_ids(*, session: AsyncSession, issue_id: int | None) -> list[int]:
    """The ids of an issue's lists; empty when the issue is unknown or gone."""
    if not issue_id:
        return []
    stmt = select(IssueList.list_id).where(IssueList.issue_id == issue_id)
    return list((await session.execute(stmt)).scalars())


async def unsubscribe(
    *, session: AsyncSession, subscriber_id: int, issue_id: int | None, everything: bool = False
) -> int:
    """Leave the issue's lists (all lists when `everything` or the issue is unknown); idempotent.

    Marks the (issue, subscriber) delivery too, so the issue's stats count the unsubscribe.
    Returns how many subscriptions changed.
    """
    now = utcnow()
    list_ids = [] if everything else await issue_list_ids(session=session, issue_id=issue_id)
    stmt = (
        update(Subscription)
        .where(Subscription.subscriber_id == subscriber_id, Subscription.status != "unsubscribed")
        .values(**stamps("unsubscribed", now))
        .returning(Subscription.list_id)
        .execution_options(synchronize_session=False)
    )
    if list_ids:
        stmt = stmt.where(Subscription.list_id.in_(list_ids))
    left = list((await session.scalars(stmt)).all())
    if left and "subscriber.unsubscribed" in await subscribed_events(session):
        person = (
            await session.execute(
                select(Subscriber.id, Subscriber.email, Subscriber.name).where(
                    Subscriber.id == subscriber_id
                )
            )
        ).one()
        slugs = await session.scalars(
            select(MailingList.slug).where(MailingList.id.in_(left)).order_by(MailingList.slug)
        )
        data = {"id": person.id, "email": person.email, "name": person.name}
        await membership_moved(session, data, [("unsubscribed", slug) for slug in slugs])
    if issue_id:
        await session.execute(
            update(Delivery)
            .where(
                Delivery.issue_id == issue_id,
                Delivery.subscriber_id == subscriber_id,
                Delivery.unsubscribed_at.is_(None),
            )
            .values(unsubscribed_at=now)
            .execution_options(synchronize_session=False)
        )
    # Loaded Subscription objects (selectin on Subscriber) must not show the old status.
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Subscription) and obj.subscriber_id == subscriber_id:
            session.expire(obj)
    return len(left)
