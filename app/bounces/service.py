"""Bounces an operator reports by hand, through the one path every bounce takes."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.bounces.events import BounceEvent, event_key
from app.bounces.policy import record_bounce
from app.config import Settings
from app.db import utcnow
from app.models import Bounce
from app.subscribers.addresses import email_key


async def report_by_hand(
    *,
    session: AsyncSession,
    settings: Settings,
    type: str,  # noqa: A002
    email: str | None = None,
    message_id: str | None = None,
    reason: str | None = None,
) -> Bounce | None:
    """Record an operator's bounce or complaint; the same report on the same day is one event."""
    email = (email or "").strip() or None
    message_id = (message_id or "").strip() or None
    # A retried call (timeout, double click) must not count a soft bounce twice.
    key = event_key("api", email and email_key(email), message_id, type, reason,
                    utcnow().date().isoformat())  # fmt: skip
    event = BounceEvent(
        type=type, email=email, diagnostic=reason, message_id=message_id, event_key=key
    )
    return await record_bounce(session=session, settings=settings, event=event, source="api")
