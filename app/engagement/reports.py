"""What the reports read: rollups (engagement_counts) and, per subscriber, event rows.

Every figure of one issue comes from its rollup rows (one per link, hour and verdict: a
few hundred for a big send), never from counting events, so a report costs the same at a
million events as at ten. Sends, bounces and unsubscribes come from the deliveries and
bounces tables by their issue_id indexes.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import on_postgresql
from app.engagement.links import FIRST
from app.engagement.models import EngagementCount, EngagementEvent, IssueLink
from app.errors import Conflict
from app.models import Bounce, Delivery


async def _rows(session: AsyncSession, issue_id: int, *by: Any) -> list[Any]:
    """The issue's rollups summed in the database by `by` (a few dozen rows come back)."""
    c = EngagementCount
    return list(await session.execute(
        select(*by, func.sum(c.total), func.sum(c.uniq))
        .where(c.issue_id == issue_id).group_by(*by)
    ))  # fmt: skip


async def totals(session: AsyncSession, issue_id: int) -> dict[str, Any]:
    """Opens, clicks, their unique counts, and machine counts with their reasons."""
    out: dict[str, Any] = {"opens": 0, "unique_opens": 0, "clicks": 0, "unique_clicks": 0,
           "machine_opens": 0, "machine_clicks": 0}  # fmt: skip
    reasons: dict[str, dict[str, int]] = {"open": defaultdict(int), "click": defaultdict(int)}
    c = EngagementCount
    any_link = (c.link_idx == -1).label("any_link")
    for kind, verdict, idx_any, total, uniq in await _rows(session, issue_id, c.kind, c.verdict,
                                                            any_link):  # fmt: skip
        total, uniq = int(total or 0), int(uniq or 0)
        if verdict:
            out[f"machine_{kind}s"] += total
            reasons[kind][verdict] += total
        elif kind == "open":
            out["opens"] += total
            out["unique_opens"] += uniq
        elif idx_any:
            out["unique_clicks"] += uniq
        else:
            out["clicks"] += total
    out["machine_reasons"] = {k: dict(v) for k, v in reasons.items()}
    return out


def rates(stats: dict[str, Any]) -> dict[str, float]:
    """Complaint and hard-bounce rates over the messages that left."""
    done = stats.get("sent", 0) + stats.get("bounced", 0) + stats.get("complained", 0)
    if not done:
        return {"complaint_rate": 0.0, "bounce_rate": 0.0}
    return {"complaint_rate": round(stats.get("complained", 0) / done, 6),
            "bounce_rate": round(stats.get("bounced", 0) / done, 6)}  # fmt: skip


async def links(session: AsyncSession, issue_id: int) -> list[dict[str, Any]]:
    """The per-link table: URL, clicks, unique clicks, machine clicks, in message order."""
    table = dict(
        (await session.execute(
            select(IssueLink.idx, IssueLink.url)
            .where(IssueLink.issue_id == issue_id, IssueLink.idx >= FIRST)
        )).all()
    )  # fmt: skip
    cells: dict[int, dict[str, Any]] = {
        i: {"url": u, "clicks": 0, "unique_clicks": 0, "machine_clicks": 0}
        for i, u in sorted(table.items())
    }
    c = EngagementCount
    person = (c.verdict == "").label("person")
    for kind, idx, is_person, total, uniq in await _rows(session, issue_id, c.kind, c.link_idx,
                                                          person):  # fmt: skip
        cell = cells.get(idx)
        if kind != "click" or cell is None:
            continue
        if not is_person:
            cell["machine_clicks"] += int(total or 0)
        else:
            cell["clicks"] += int(total or 0)
            cell["unique_clicks"] += int(uniq or 0)
    return list(cells.values())


def _floor(at: datetime, bucket: str) -> datetime:
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    at = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return at.replace(hour=0) if bucket == "day" else at


def _trunc(session: AsyncSession, column: Any, bucket: str) -> Any:
    if on_postgresql(session):
        return func.date_trunc(bucket, column)
    return func.strftime("%Y-%m-%d %H:00:00" if bucket == "hour" else "%Y-%m-%d 00:00:00", column)


def _parse(value: datetime | str) -> datetime:
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value


async def timeline(session: AsyncSession, issue_id: int, bucket: str) -> list[dict[str, Any]]:
    """Per hour or day: sent, people's opens and clicks, bounces, unsubscribes, complaints."""
    keys = ("sent", "opens", "clicks", "bounces", "unsubscribes", "complaints")
    cells: dict[datetime, dict[str, int]] = defaultdict(lambda: dict.fromkeys(keys, 0))
    c = EngagementCount
    counted = (c.verdict == "") & (c.link_idx != -1)
    for kind, at, is_counted, total, _ in await _rows(session, issue_id, c.kind, c.bucket,
                                                       counted.label("counted")):  # fmt: skip
        if is_counted:
            cells[_floor(_parse(at), bucket)]["opens" if kind == "open" else "clicks"] += int(total)
    for column, key in ((Delivery.sent_at, "sent"), (Delivery.unsubscribed_at, "unsubscribes")):
        # Grouped in the database: a million deliveries are a few dozen rows here.
        slot = _trunc(session, column, bucket)
        for at, count in await session.execute(
            select(slot, func.count())
            .where(Delivery.issue_id == issue_id, column.is_not(None))
            .group_by(slot)
        ):
            cells[_floor(_parse(at), bucket)][key] += count
    rows = await session.execute(
        select(Bounce.type, Bounce.created_at).where(Bounce.issue_id == issue_id, Bounce.counts)
    )
    for kind, at in rows:
        if kind in ("hard", "complaint"):
            cells[_floor(at, bucket)]["complaints" if kind == "complaint" else "bounces"] += 1
    return [{"at": at, **cells[at]} for at in sorted(cells)]


async def subscriber_events(
    session: AsyncSession, settings: Settings, subscriber_id: int, limit: int = 500
) -> list[dict[str, Any]]:
    """One subscriber's opens and clicks, newest first (`individual` mode only)."""
    if settings.tracking != "individual":
        raise Conflict("events per subscriber are kept only when TIDINGS_TRACKING=individual")
    rows = await session.execute(
        select(EngagementEvent.at, EngagementEvent.issue_id, EngagementEvent.kind,
               EngagementEvent.machine, IssueLink.url)
        .outerjoin(IssueLink, (IssueLink.issue_id == EngagementEvent.issue_id)
                   & (IssueLink.idx == EngagementEvent.link_idx)
                   & (EngagementEvent.kind == "click"))
        .where(EngagementEvent.subscriber_id == subscriber_id)
        .order_by(EngagementEvent.at.desc()).limit(limit)
    )  # fmt: skip
    out = []
    for at, issue_id, kind, machine, url in rows:
        item: dict[str, Any] = {"at": at, "issue_id": issue_id, "type": kind, "machine": machine}
        if kind == "click":
            item["url"] = url
        out.append(item)
    return out


async def event_count(session: AsyncSession) -> int:
    """How many event rows exist (tests and the retention purge's log)."""
    return int(await session.scalar(select(func.count()).select_from(EngagementEvent)) or 0)
