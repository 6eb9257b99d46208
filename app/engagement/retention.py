"""Events kept no longer than needed: TIDINGS_EVENTS_RETENTION_DAYS; the rollups stay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import utcnow
from app.engagement.models import EngagementEvent

EVERY_SECONDS = 3600.0  # the recorder's task purges at most this often


async def purge(session: AsyncSession, settings: Settings) -> int:
    """Delete individual events older than the retention period; how many went."""
    cutoff = utcnow() - timedelta(days=settings.events_retention_days)
    result = await session.execute(delete(EngagementEvent).where(EngagementEvent.at < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
