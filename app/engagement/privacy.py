"""A reader's own choice about tracking: attributes.tracking, set from the preference page."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Subscriber


def tracked(subscriber: Subscriber) -> bool:
    """Whether this reader lets us count their opens and clicks (yes unless they said no)."""
    return (subscriber.attributes or {}).get("tracking") is not False


async def set_tracking(session: AsyncSession, subscriber: Subscriber, allowed: bool) -> None:
    """Record the reader's choice; it applies from the next message and the next click."""
    # A new dict: the JSON column notices a new value, not a change inside the old one.
    subscriber.attributes = {**(subscriber.attributes or {}), "tracking": allowed}
    await session.flush()
