"""Subscribers: add, read, change, erase and export a person (GDPR), by the rules of consent.

Lists live in lists.py and the search in search.py; they are re-exported here, so a
caller reads every audience service from this one module. Services only flush; the
request's session is committed by its dependency.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, func, literal, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.errors import Conflict, Invalid, NotFound
from app.messages.store import messages
from app.models import Bounce, Delivery, Issue, Subscriber, Suppression
from app.subscribers.addresses import InvalidAddress, normalize, suppression_hash
from app.subscribers.lists import (
    ISSUE_STATES_NEEDING_LISTS,
    browse_lists,
    create_list,
    delete_list,
    get_list,
    list_counts,
    lists_by_slug,
    update_list,
)
from app.subscribers.memberships import Moves, announce, set_membership
from app.subscribers.schemas import SubscriberCreate, SubscriberUpdate
from app.subscribers.search import search_subscribers
from app.webhooks.events import emit, subscriber_data

__all__ = [
    "ISSUE_STATES_NEEDING_LISTS", "browse_lists", "by_key", "create_list", "create_subscriber",
    "delete_list", "erase_subscriber", "export_subscriber", "get_list", "get_subscriber",
    "is_suppressed", "list_counts", "lists_by_slug", "memberships", "normalize_or_invalid",
    "search_subscribers", "subscriber_out", "update_list", "update_subscriber",
]  # fmt: skip


def normalize_or_invalid(raw: str, *, check_deliverability: bool) -> tuple[str, str]:
    try:
        return normalize(raw, check_deliverability=check_deliverability)
    except InvalidAddress as exc:
        raise Invalid(f"invalid email address: {exc}", loc=("body", "email")) from None


async def is_suppressed(*, session: AsyncSession, key: str) -> bool:
    hashed = suppression_hash(key)
    return bool(await session.scalar(select(Suppression.email_hash).filter_by(email_hash=hashed)))


async def by_key(*, session: AsyncSession, key: str) -> Subscriber | None:
    return await session.scalar(select(Subscriber).where(Subscriber.email_key == key))


async def get_subscriber(*, session: AsyncSession, subscriber_id: int) -> Subscriber:
    subscriber = await session.get(Subscriber, subscriber_id)
    if subscriber is None:
        raise NotFound(f"no subscriber with id {subscriber_id}")
    return subscriber


def memberships(subscriber: Subscriber) -> list[dict[str, str]]:
    subs = sorted(subscriber.subscriptions, key=lambda s: s.mailing_list.slug)
    return [{"slug": s.mailing_list.slug, "status": s.status} for s in subs]


def subscriber_out(subscriber: Subscriber) -> dict[str, Any]:
    """The contract's subscriber object."""
    return {
        "id": subscriber.id,
        "email": subscriber.email,
        "name": subscriber.name,
        "attributes": subscriber.attributes or {},
        "status": subscriber.status,
        "blocklist_reason": subscriber.blocklist_reason,
        "lists": memberships(subscriber),
        "created_at": subscriber.created_at,
    }


async def create_subscriber(
    *, session: AsyncSession, data: SubscriberCreate, check_deliverability: bool
) -> Subscriber:
    """An admin's addition: confirmed (the admin vouches for consent) unless pending is asked."""
    address, key = normalize_or_invalid(data.email, check_deliverability=check_deliverability)
    lists = await lists_by_slug(session=session, slugs=data.lists)
    if await is_suppressed(session=session, key=key):
        raise Conflict(
            "this address is on the suppression list (erased or blocked); only the person's own "
            "sign-up through the public form can add it back"
        )
    existing = await by_key(session=session, key=key)
    if existing is not None:
        raise Conflict(f"a subscriber with this address exists (id {existing.id})")
    subscriber = Subscriber(
        email=address, email_key=key, name=data.name, attributes=data.attributes, subscriptions=[]
    )
    moves: Moves = []
    for mailing_list in lists:
        moved = set_membership(subscriber, mailing_list, data.subscription_status, actor="admin")
        if moved:
            moves.append((moved, mailing_list.slug))
    session.add(subscriber)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("a subscriber with this address exists") from None
    await emit(session, "subscriber.created", subscriber_data(subscriber))
    await announce(session, subscriber, moves)
    return subscriber


async def update_subscriber(
    *, session: AsyncSession, subscriber_id: int, data: SubscriberUpdate
) -> Subscriber:
    """Apply an admin's changes; memberships not named are left as they are."""
    subscriber = await get_subscriber(session=session, subscriber_id=subscriber_id)
    if data.blocklist_reason and data.status != "blocklisted":
        raise Invalid(
            "blocklist_reason goes with status 'blocklisted'", loc=("body", "blocklist_reason")
        )
    moves: Moves = []
    if data.lists is not None:
        # The last word on a slug named twice wins, as it would in two PATCHes.
        wanted = {m.slug: m.status for m in data.lists}
        lists = await lists_by_slug(session=session, slugs=list(wanted))
        for mailing_list in lists:
            moved = set_membership(subscriber, mailing_list, wanted[mailing_list.slug],
                                   actor="admin")  # fmt: skip
            if moved:
                moves.append((moved, mailing_list.slug))
    if data.name is not None:
        subscriber.name = data.name or None
    if data.attributes is not None:
        subscriber.attributes = data.attributes
    if data.status == "blocklisted":
        subscriber.status = "blocklisted"
        subscriber.blocklist_reason = data.blocklist_reason or "manual"
    elif data.status == "active":
        subscriber.status, subscriber.blocklist_reason = "active", None
    subscriber.updated_at = utcnow()
    await session.flush()
    await announce(session, subscriber, moves)
    return subscriber


async def erase_subscriber(*, session: AsyncSession, subscriber_id: int) -> None:
    """GDPR erasure: the row and its memberships go, a hash of the address stays suppressed."""
    subscriber = await get_subscriber(session=session, subscriber_id=subscriber_id)
    hashed = suppression_hash(subscriber.email_key)
    # Bounce reports keep a copy of the address; it is personal data too.
    await session.execute(
        update(Bounce)
        .where(
            or_(
                Bounce.subscriber_id == subscriber.id,
                func.lower(Bounce.email) == subscriber.email_key,
            )
        )
        .values(email=None, diagnostic=None)
    )
    # Deliveries keep no foreign key (it would cost fan-out a lookup per row): unlink them
    # here. Probing (issue, subscriber) per issue uses the unique index instead of a scan.
    await session.execute(
        update(Delivery)
        .where(
            tuple_(Delivery.issue_id, Delivery.subscriber_id).in_(
                select(Issue.id, literal(subscriber.id, BigInteger))
            )
        )
        .values(subscriber_id=None)
        .execution_options(synchronize_session=False)
    )
    await _erase_messages(session, subscriber.id, subscriber.email_key)
    if not await is_suppressed(session=session, key=subscriber.email_key):
        session.add(Suppression(email_hash=hashed, reason="erased"))
    await emit(session, "subscriber.erased", {"id": subscriber.id})
    await session.delete(subscriber)
    await session.flush()


async def _erase_messages(session: AsyncSession, subscriber_id: int, key: str) -> None:
    """Transactional messages to the person keep no address, subject or data; those still
    waiting are cancelled (their delivery row stays, as the log of a message not sent)."""
    theirs = select(messages.c.id).where(
        or_(messages.c.subscriber_id == subscriber_id, func.lower(messages.c.email) == key)
    )
    await session.execute(
        update(Delivery)
        .where(Delivery.message_ref.in_(theirs), Delivery.status == "queued")
        .values(status="cancelled", last_error="the recipient was erased")
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(messages)
        .where(messages.c.id.in_(theirs))
        .values(email="", subject="", data={}, subscriber_id=None)
    )


async def export_subscriber(*, session: AsyncSession, subscriber_id: int) -> dict[str, Any]:
    """Every piece of data held on one person, as JSON-ready values."""
    subscriber = await get_subscriber(session=session, subscriber_id=subscriber_id)
    deliveries = await session.execute(
        select(Delivery, Issue.subject)
        .join(Issue, Issue.id == Delivery.issue_id)
        # Joining from issues lets the (issue, subscriber) index find the rows.
        .where(Delivery.subscriber_id == subscriber.id, Delivery.issue_id == Issue.id)
        .order_by(Delivery.id)
    )
    bounces = await session.scalars(
        select(Bounce).where(Bounce.subscriber_id == subscriber.id).order_by(Bounce.id)
    )
    return {
        "subscriber": {**subscriber_out(subscriber), "updated_at": subscriber.updated_at},
        "subscriptions": [
            {
                "slug": s.mailing_list.slug,
                "list_name": s.mailing_list.name,
                "status": s.status,
                "created_at": s.created_at,
                "confirmed_at": s.confirmed_at,
                "unsubscribed_at": s.unsubscribed_at,
            }
            for s in sorted(subscriber.subscriptions, key=lambda s: s.mailing_list.slug)
        ],
        "deliveries": [
            {
                "issue_id": d.issue_id,
                "issue_subject": subject,
                "status": d.status,
                "attempts": d.attempts,
                "message_id": d.message_id,
                "sent_at": d.sent_at,
                "unsubscribed_at": d.unsubscribed_at,
            }
            for d, subject in deliveries
        ],
        "bounces": [
            {
                "type": b.type,
                "source": b.source,
                "status": b.status,
                "diagnostic": b.diagnostic,
                "issue_id": b.issue_id,
                "created_at": b.created_at,
            }
            for b in bounces
        ],
        "exported_at": utcnow(),
    }
