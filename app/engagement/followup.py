"""A follow-up to those who did not open: a new draft of the issue for its non-openers.

The draft is a copy of the issue (same lists, content, archive and tracking choices) with
a new segment whose recipients are exactly the issue's delivered recipients that no
person opened it for (machine events never count; a click counts as an open), among
those still subscribed when the follow-up is sent. Only `individual` mode knows who
opened; in the others no event names anyone, so there is no such list.

The segment grammar (CONTRACT "Segments") has no "was sent issue N", so the rule says it
as: created no later than the issue's send (no one who joined since), no open of it, and
not one of the named few who were members then or now but were never sent it (joined a
list later, pending then, skipped or failed). Those few are named by email, as many as
fit in a rule; an issue with more is refused with the reason rather than sent wide.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import utcnow
from app.engagement.models import EngagementEvent
from app.errors import Conflict
from app.issues import service as issues
from app.issues.lifecycle import EDITABLE
from app.models import Delivery, Issue, IssueList, Subscriber, Subscription
from app.segments.models import Segment
from app.segments.rules import MAX_BYTES, MAX_CONDITIONS, MAX_IN

# Room for the rule's other conditions and the JSON around the names.
_MAX_NAMED_BYTES = MAX_BYTES - 1024
_MAX_NAMED = (MAX_CONDITIONS - 8) * MAX_IN


async def create(*, session: AsyncSession, settings: Settings, issue_id: int) -> Issue:
    """The follow-up draft; 409 before the issue was sent or when no one is named by events."""
    source = await issues.get(session=session, issue_id=issue_id)
    if source.status in EDITABLE:
        raise Conflict("a follow-up is for an issue that has been sent")
    if settings.tracking != "individual":
        raise Conflict("who did not open is known only when TIDINGS_TRACKING=individual")
    first = await session.scalar(select(func.min(Delivery.sent_at)).where(
        Delivery.issue_id == issue_id))  # fmt: skip
    started = source.started_at or first or utcnow()
    rule = await _rule(session, source.id, started)
    segment = Segment(name=f"Did not open issue {issue_id}: {source.subject}"[:200], rules=rule)
    session.add(segment)
    await session.flush()
    draft = await issues.duplicate(session=session, issue_id=issue_id)
    draft.segment_id = segment.id
    await session.flush()
    return draft


def _opened(issue_id: int) -> Any:
    return exists().where(EngagementEvent.subscriber_id == Subscriber.id,
                          EngagementEvent.issue_id == issue_id,
                          EngagementEvent.kind.in_(("open", "click")),
                          EngagementEvent.machine.is_(False))  # fmt: skip


async def _rule(session: AsyncSession, issue_id: int, started_at: datetime) -> dict[str, Any]:
    sent = exists().where(Delivery.subscriber_id == Subscriber.id,
                          Delivery.issue_id == issue_id, Delivery.status == "sent")  # fmt: skip
    lists = select(IssueList.list_id).where(IssueList.issue_id == issue_id)
    # Who the rule's first two conditions would let in today without having been sent it.
    strays = await session.scalars(
        select(Subscriber.email_key)
        .join(Subscription, Subscription.subscriber_id == Subscriber.id)
        .where(Subscription.list_id.in_(lists), Subscriber.created_at <= started_at,
               ~_opened(issue_id), ~sent)
        .distinct().order_by(Subscriber.email_key)
    )  # fmt: skip
    named = list(strays)
    if len(named) > _MAX_NAMED or sum(len(e) + 3 for e in named) > _MAX_NAMED_BYTES:
        raise Conflict(f"{len(named)} members of its lists were never sent this issue: too many"
                       " to leave out of a follow-up by name")  # fmt: skip
    rule: list[dict[str, Any]] = [
        {"field": "created_at", "op": "le", "value": started_at.isoformat()},
        {"not": {"engaged": "opened", "issue": issue_id}},
    ]
    for start in range(0, len(named), MAX_IN):
        rule.append({"not": {"field": "email", "op": "in", "value": named[start : start + MAX_IN]}})
    return {"all": rule}
