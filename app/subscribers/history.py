"""What one person was sent and what came back: the deliveries and bounces of a subscriber.

The console's person page and `GET /api/v1/subscribers/{id}/history` read it. Newest
first, bounded: a reader of twenty years' issues needs the recent ones, not all of them
(the GDPR export in service.py has everything).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Bounce, Delivery, Issue
from app.subscribers.service import get_subscriber

HISTORY_LIMIT = 50


async def deliveries_of(
    *, session: AsyncSession, subscriber_id: int, limit: int = HISTORY_LIMIT
) -> list[dict[str, Any]]:
    """The latest deliveries to this subscriber, with each issue's subject."""
    rows = await session.execute(
        select(Delivery, Issue.subject)
        .join(Issue, Issue.id == Delivery.issue_id)
        # Deliveries carry no index on subscriber_id alone: probing (issue, subscriber)
        # for each issue uses the unique index, one probe per issue, never a scan.
        .where(Delivery.subscriber_id == subscriber_id, Delivery.issue_id == Issue.id)
        .order_by(Delivery.id.desc())
        .limit(limit)
    )
    return [
        {
            "issue_id": d.issue_id,
            "issue_subject": subject,
            "status": d.status,
            "attempts": d.attempts,
            "last_error": d.last_error,
            "sent_at": d.sent_at,
            "unsubscribed_at": d.unsubscribed_at,
        }
        for d, subject in rows
    ]


async def bounces_of(
    *, session: AsyncSession, subscriber_id: int, limit: int = HISTORY_LIMIT
) -> list[dict[str, Any]]:
    """The latest bounces and complaints recorded against this subscriber."""
    rows = await session.scalars(
        select(Bounce)
        .where(Bounce.subscriber_id == subscriber_id)
        .order_by(Bounce.id.desc())
        .limit(limit)
    )
    return [
        {
            "id": b.id,
            "type": b.type,
            "source": b.source,
            "status": b.status,
            "diagnostic": b.diagnostic,
            "counts": b.counts,
            "issue_id": b.issue_id,
            "created_at": b.created_at,
        }
        for b in rows
    ]


async def history(*, session: AsyncSession, subscriber_id: int) -> dict[str, list[Any]]:
    """Deliveries and bounces of one subscriber; NotFound when there is no such person."""
    await get_subscriber(session=session, subscriber_id=subscriber_id)
    return {
        "deliveries": await deliveries_of(session=session, subscriber_id=subscriber_id),
        "bounces": await bounces_of(session=session, subscriber_id=subscriber_id),
    }
