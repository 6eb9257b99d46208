"""What the console's issue report shows of engagement (the same services as the API)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.engagement import chart, reports
from app.models import Issue


async def report(session: AsyncSession, settings: Settings, issue: Issue) -> dict[str, Any]:
    """Opens, clicks, machines with their reasons, the per-link table and the timeline."""
    totals = await reports.totals(session, issue.id)
    rows = chart.mixed(await reports.timeline(session, issue.id, "hour"), issue.started_at)
    return {
        "mode": settings.tracking,
        "tracked": settings.tracking != "off" and (issue.track_opens or issue.track_clicks),
        "totals": totals,
        "links": await reports.links(session, issue.id),
        "timeline": rows,
        "chart": chart.lines(rows),
    }
