"""A follow-up to those who did not open: a new draft of the issue for its non-openers.

The draft is a copy of the issue (same lists, content, archive and tracking choices) with
a new segment: the people who have no open or click of the issue by a person (machine
events never count), within the issue's own segment if it had one. Only `individual`
mode knows who opened; in the others no event names anyone, so there is no such list.
Recipients are fixed when the follow-up is sent, as for any issue: members of the lists
then, which includes anyone who joined since the first send.
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
    rule: dict[str, Any] = {"not": {"engaged": "opened", "issue": issue_id}}
    if source.segment_id is not None:
        earlier = await session.get(Segment, source.segment_id)
        if earlier is not None:
            rule = {"all": [earlier.rules, rule]}
    segment = Segment(name=f"Did not open issue {issue_id}: {source.subject}"[:200], rules=rule)
    session.add(segment)
    await session.flush()
    draft = await issues.duplicate(session=session, issue_id=issue_id)
    draft.segment_id = segment.id
    await session.flush()
    return draft
