"""An issue's counters and its per-recipient log: what the deliveries say of it.

Read-only, one GROUP BY or one page at a time over the (issue_id, status) index; the
API, the console report and the overview call them through app.issues.service.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.delivery.fanout import issue_fanouts
from app.engagement import reports as engagement_reports
from app.errors import NotFound
from app.models import Delivery, Issue, Subscriber


async def _issue(session: AsyncSession, issue_id: int) -> Issue:
    issue = await session.get(Issue, issue_id, populate_existing=True)
    if issue is None:
        raise NotFound(f"issue {issue_id} not found")
    return issue


async def stats(*, session: AsyncSession, issue_id: int) -> dict[str, Any]:
    """The issue's counters from one GROUP BY over its deliveries (the issue_id, status index)."""
    issue = await _issue(session, issue_id)
    rows = await session.execute(
        select(
            Delivery.status,
            func.count(),
            func.count(Delivery.unsubscribed_at),
            func.count(Delivery.sent_at),
            func.max(Delivery.sent_at),
        )
        .where(Delivery.issue_id == issue_id)
        .group_by(Delivery.status)
    )
    by_status: dict[str, int] = {}
    unsubscribed = left = 0
    last_sent: datetime | None = None
    for status, count, unsub, with_sent_at, max_sent in rows:
        by_status[status] = count
        unsubscribed += unsub
        left += with_sent_at
        if max_sent is not None:
            # max() over a UTCDateTime comes back untyped on SQLite: normalise it.
            max_sent = _aware(max_sent)
            last_sent = max(last_sent, max_sent) if last_sent else max_sent
    end = utcnow() if issue.status == "sending" else last_sent
    rate = 0.0
    if left and issue.started_at and end:
        # At least a second: a few messages sent in a blink are not a rate of thousands.
        rate = round(left / max((end - issue.started_at).total_seconds(), 1.0), 2)
    queued = by_status.get("queued", 0) + by_status.get("sending", 0)
    if issue.status in ("sending", "paused"):
        # A batched fan-out (app/delivery/fanout.py) has not written every row yet: the
        # recipients it still owes are waiting too, so progress and ETA count them.
        owed = await session.scalar(
            select(func.count()).where(issue_fanouts.c.issue_id == issue_id,
                                       issue_fanouts.c.done.is_(False))
        )  # fmt: skip
        if owed:
            queued += max(0, (issue.recipients or 0) - sum(by_status.values()))
    stats = {
        "status": issue.status,
        "recipients": issue.recipients,
        "queued": queued,
        "sent": by_status.get("sent", 0),
        "failed": by_status.get("failed", 0),
        "bounced": by_status.get("bounced", 0),
        "complained": by_status.get("complained", 0),
        "unsubscribed": unsubscribed,
        "started_at": issue.started_at,
        "finished_at": issue.finished_at,
        "messages_per_second": rate,
    }
    figures = {**stats, **await engagement_reports.totals(session, issue_id)}
    return {**figures, **engagement_reports.rates(figures)}


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def deliveries(
    *, session: AsyncSession, issue_id: int, status: str | None, limit: int, after: int
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of the issue's per-recipient log, by delivery id."""
    await _issue(session, issue_id)
    query = (
        select(Delivery, Subscriber.email)
        .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.issue_id == issue_id, Delivery.id > after)
        .order_by(Delivery.id)
        .limit(limit + 1)
    )
    if status:
        query = query.where(Delivery.status == status)
    rows = (await session.execute(query)).all()
    items: list[dict[str, Any]] = [
        {
            "id": d.id,
            "subscriber_id": d.subscriber_id,
            "email": email,
            "status": d.status,
            "attempts": d.attempts,
            "last_error": d.last_error,
            "message_id": d.message_id,
            "sent_at": d.sent_at,
        }
        for d, email in rows[:limit]
    ]
    return items, rows[limit - 1][0].id if len(rows) > limit else None
