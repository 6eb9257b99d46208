"""Which issues target a list, and which of them keep it from being deleted.

The console shows this beside the Delete button, so the 409 of `delete_list` is
explained before anyone meets it; the rule itself (ISSUE_STATES_NEEDING_LISTS) stays in
service.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Issue, IssueList
from app.subscribers.lists import ISSUE_STATES_NEEDING_LISTS


@dataclass(frozen=True)
class TargetingIssue:
    id: int
    subject: str
    status: str

    @property
    def blocks_delete(self) -> bool:
        """An issue that may still send reads its lists then: the list must stay."""
        return self.status in ISSUE_STATES_NEEDING_LISTS


async def issues_targeting(
    *, session: AsyncSession, list_id: int, limit: int = 100
) -> list[TargetingIssue]:
    """The newest issues sent or to be sent to this list."""
    rows = await session.execute(
        select(Issue.id, Issue.subject, Issue.status)
        .join(IssueList, IssueList.issue_id == Issue.id)
        .where(IssueList.list_id == list_id)
        .order_by(Issue.id.desc())
        .limit(limit)
    )
    return [TargetingIssue(id=i, subject=s, status=st) for i, s, st in rows]
