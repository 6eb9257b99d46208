"""A follow-up to those who did not open: a new draft of the issue for its non-openers.

The draft is a copy of the issue (same lists, content, archive and tracking choices) with
a new segment whose recipients are exactly the issue's delivered recipients that no
person opened it for (machine events never count; a click counts as an open), among
those still subscribed when the follow-up is sent. Only `individual` mode knows who
opened; in the others no event names anyone, so there is no such list.

The segment says it in the grammar's own words: sent this issue (a delivery of it is
`sent`), and no person's open of it. It is evaluated when the follow-up is sent, so who
joined a list since, who was pending or skipped then, whose message failed, and who has
left since are all out, however many they are.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.errors import Conflict
from app.issues import service as issues
from app.issues.lifecycle import EDITABLE
from app.models import Issue
from app.segments.models import Segment


async def create(*, session: AsyncSession, settings: Settings, issue_id: int) -> Issue:
    """The follow-up draft; 409 before the issue was sent or when no one is named by events."""
    source = await issues.get(session=session, issue_id=issue_id)
    if source.status in EDITABLE:
        raise Conflict("a follow-up is for an issue that has been sent")
    if settings.tracking != "individual":
        raise Conflict("who did not open is known only when TIDINGS_TRACKING=individual")
    rule = non_openers(source.id)
    segment = Segment(name=f"Did not open issue {issue_id}: {source.subject}"[:200], rules=rule)
    session.add(segment)
    await session.flush()
    draft = await issues.duplicate(session=session, issue_id=issue_id)
    draft.segment_id = segment.id
    await session.flush()
    return draft


def non_openers(issue_id: int) -> dict[str, Any]:
    """The rule: delivered this issue, and no person opened it (a click counts as an open)."""
    return {"all": [{"engaged": "sent", "issue": issue_id},
                    {"not": {"engaged": "opened", "issue": issue_id}}]}  # fmt: skip
