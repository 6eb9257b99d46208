"""The guardrail: a send whose complaint or hard-bounce rate shows it hurting the sender stops.

After PAUSE_AFTER messages have an outcome, a complaint rate above
TIDINGS_PAUSE_COMPLAINT_RATE or a hard-bounce rate above TIDINGS_PAUSE_BOUNCE_RATE pauses
the issue with the figures in its status_reason. A person may resume it; the rates are
judged again on the next check, so a resume after a fix to the list goes on only if the
figures allow.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.engagement.settings import PAUSE_AFTER
from app.models import Delivery

_DONE = ("sent", "bounced", "complained", "failed")


async def verdicts(
    session: AsyncSession, settings: Settings, issue_ids: list[int]
) -> dict[int, str]:
    """The issues among `issue_ids` that must pause, with the reason for each."""
    if not issue_ids:
        return {}
    rows = await session.execute(
        select(Delivery.issue_id, Delivery.status, func.count())
        .where(Delivery.issue_id.in_(issue_ids), Delivery.status.in_(_DONE))
        .group_by(Delivery.issue_id, Delivery.status)
    )
    counts: dict[int, dict[str, int]] = {}
    for issue_id, status, count in rows:
        counts.setdefault(issue_id, {})[status] = count
    out = {}
    for issue_id, by_status in counts.items():
        reason = judge(settings, by_status)
        if reason:
            out[issue_id] = reason
    return out


def judge(settings: Settings, by_status: dict[str, int]) -> str | None:
    """The reason to pause a send with these delivery outcomes, or None."""
    messages = sum(by_status.values())
    if messages < PAUSE_AFTER:
        return None
    complaints, bounces = by_status.get("complained", 0), by_status.get("bounced", 0)
    if complaints / messages > settings.pause_complaint_rate:
        return (f"guardrail: complaint rate {complaints / messages:.2%} over "
                f"{settings.pause_complaint_rate:.2%} after {messages} messages")  # fmt: skip
    if bounces / messages > settings.pause_bounce_rate:
        return (f"guardrail: hard-bounce rate {bounces / messages:.2%} over "
                f"{settings.pause_bounce_rate:.2%} after {messages} messages")  # fmt: skip
    return None
