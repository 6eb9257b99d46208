"""One path for every bounce, complaint and provider unsubscribe: record it, then apply the policy.

Policy (the contract's): a hard bounce blocklists at once; soft bounces blocklist once
`soft_bounce_limit` of them that count arrived within 30 days; a complaint blocklists and
unsubscribes from every list. Sender-side failures (5.7.x, counts=False) are recorded and
held against no one. A blocklisted address is never un-blocklisted here.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app import tokens
from app.bounces.events import BounceEvent, event_key
from app.config import Settings
from app.db import on_postgresql, utcnow
from app.issues.compose import delivery_from_message_id
from app.models import Bounce, Delivery, Subscriber
from app.subscribers.addresses import email_key
from app.subscribers.memberships import unsubscribe
from app.webhooks.events import bounce_recorded

log = logging.getLogger(__name__)

SOFT_WINDOW = timedelta(days=30)
# A delivery in one of these states has a final verdict that a later bounce must not undo.
_FINAL = ("complained",)


async def record_bounce(
    *,
    session: AsyncSession,
    settings: Settings,
    event: BounceEvent,
    source: str,
    delivery_id: int | None = None,
) -> Bounce | None:
    """Record one event and apply the policy; None when its event_key was recorded before."""
    event = _cleaned(event)
    delivery = await _find_delivery(
        session=session, settings=settings, event=event, delivery_id=delivery_id
    )
    subscriber = await _find_subscriber(session=session, event=event, delivery=delivery)
    now = utcnow()
    # A report's own date places it in the 30-day window, but never in the future.
    stamp = event.occurred_at
    if stamp is not None and stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    occurred = min(stamp, now) if stamp else now
    values: dict[str, Any] = {
        "event_key": (event.event_key or _fallback_key(source, event))[:128],
        # Stored as the mailbox key, so GET /api/v1/bounces?email= finds every spelling.
        "email": email_key(event.email)
        if event.email
        else (subscriber.email_key if subscriber else None),
        "subscriber_id": subscriber.id if subscriber else None,
        "delivery_id": delivery.id if delivery else None,
        "issue_id": delivery.issue_id if delivery else None,
        "type": event.type,
        "source": source[:16],
        "status": event.status,
        "diagnostic": event.diagnostic,
        "counts": event.counts,
        "created_at": occurred,
    }
    bounce_id = await _insert_once(session, values)
    if bounce_id is None:
        return None
    await _apply(session=session, settings=settings, event=event, subscriber=subscriber,
                 delivery=delivery, now=now)  # fmt: skip
    await bounce_recorded(session, bounce_id, values)
    await session.flush()
    return await session.get(Bounce, bounce_id)


def _text(value: object, size: int) -> str | None:
    """A provider's field as bounded text; NUL is refused by PostgreSQL, so it goes."""
    text = str(value).replace("\x00", "").strip()[:size] if value is not None else ""
    return text or None


def _cleaned(event: BounceEvent) -> BounceEvent:
    """The event with every field a string of the column's size, whatever a payload held."""
    return replace(
        event,
        type=str(event.type),
        email=_text(event.email, 320),
        status=_text(event.status, 16),
        diagnostic=_text(event.diagnostic, 2000),
        message_id=_text(event.message_id, 998),
        verp_token=_text(event.verp_token, 200),
        provider_id=_text(event.provider_id, 998),
        event_key=_text(event.event_key, 128) or "",
        occurred_at=event.occurred_at if isinstance(event.occurred_at, datetime) else None,
    )


async def _insert_once(session: AsyncSession, values: dict[str, Any]) -> int | None:
    """INSERT … ON CONFLICT (event_key) DO NOTHING: two concurrent deliveries record one row."""
    insert = postgresql.insert if on_postgresql(session) else sqlite.insert
    stmt = (
        insert(Bounce)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["event_key"])
        .returning(Bounce.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


def _fallback_key(source: str, event: BounceEvent) -> str:
    return event_key(source, event.type, event.email, event.message_id, event.provider_id,
                     event.status, event.occurred_at)  # fmt: skip


async def _find_delivery(
    *, session: AsyncSession, settings: Settings, event: BounceEvent, delivery_id: int | None
) -> Delivery | None:
    """The delivery the event is about: explicit id, VERP token, Message-ID, then provider id."""
    if delivery_id is not None:
        return await session.get(Delivery, delivery_id)
    if event.verp_token:
        found = tokens.read(settings.secret_key_value, "verp", event.verp_token, count=1)
        if found and (delivery := await session.get(Delivery, found[0])):
            return delivery
    for mid in (event.message_id, event.provider_id):
        if mid and (delivery := await _by_message_id(session, settings, mid)):
            return delivery
    return None


async def _by_message_id(session: AsyncSession, settings: Settings, mid: str) -> Delivery | None:
    mid = mid.strip()
    # Our Message-IDs name their delivery under a MAC; a foreign or altered one gives None.
    # A Message-ID that is not ours cannot name one of our deliveries: there is nothing to
    # look up by it (and deliveries keep no index on message_id for fan-out's sake).
    found = delivery_from_message_id(settings, mid)
    if found is not None:
        return await session.get(Delivery, found)
    return None


async def _find_subscriber(
    *, session: AsyncSession, event: BounceEvent, delivery: Delivery | None
) -> Subscriber | None:
    if delivery is not None and delivery.subscriber_id is not None:
        return await session.get(Subscriber, delivery.subscriber_id)
    if not event.email:
        return None
    stmt = select(Subscriber).where(Subscriber.email_key == email_key(event.email))
    return (await session.execute(stmt)).scalar_one_or_none()


async def _apply(
    *,
    session: AsyncSession,
    settings: Settings,
    event: BounceEvent,
    subscriber: Subscriber | None,
    delivery: Delivery | None,
    now: datetime,
) -> None:
    if event.type == "complaint":
        if delivery is not None:
            delivery.status = "complained"
        if subscriber is not None:
            _blocklist(subscriber, "complaint")
            await unsubscribe(session=session, subscriber_id=subscriber.id, issue_id=None)
    elif event.type == "unsubscribe":
        if subscriber is not None:
            issue_id = delivery.issue_id if delivery else None
            await unsubscribe(session=session, subscriber_id=subscriber.id, issue_id=issue_id)
    elif event.type == "hard":
        # The message did not arrive either way; only the address's own fault blocklists it.
        if delivery is not None and delivery.status not in _FINAL:
            delivery.status = "bounced"
        if subscriber is not None and event.counts:
            _blocklist(subscriber, "hard_bounce")
    elif event.type == "soft" and event.counts and subscriber is not None:
        # Soft bounces leave the delivery 'sent': the message may still arrive, and the
        # address stays good until the limit says otherwise.
        since = now - SOFT_WINDOW
        stmt = select(func.count(Bounce.id)).where(
            Bounce.subscriber_id == subscriber.id,
            Bounce.type == "soft",
            Bounce.counts.is_(True),
            Bounce.created_at >= since,
        )
        if (await session.execute(stmt)).scalar_one() >= settings.soft_bounce_limit:
            _blocklist(subscriber, "soft_bounce")


def _blocklist(subscriber: Subscriber, reason: str) -> None:
    """Blocklist once; the first reason stays, and nothing here ever lifts it."""
    if subscriber.status != "blocklisted":
        subscriber.status = "blocklisted"
        subscriber.blocklist_reason = reason
        log.info("subscriber %s blocklisted: %s", subscriber.id, reason)
