"""Live progress of a send, cheap for the database however many people watch it.

Every viewer's poll reads one snapshot per issue, refreshed at most once per TICK by one
query (the issue's stats); a lock makes concurrent viewers wait for that one query rather
than each running their own. The snapshot lives in the process, on the app's state.

That query counts the issue's deliveries, so it grows with the list: at 1,000,000 it took
160-220 ms on PostgreSQL here, a parallel scan in three backends (2026-12-02), about half
a core if it ran every second, taken from the send being watched. So a snapshot stays
fresh for SHARE times what its query took, when that is longer than TICK (up to MAX_AGE):
watching costs the database at most 1/SHARE of its time per issue, whatever the list's
size, and a busy database, whose queries take longer, is asked less often.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.issues import service
from app.issues.lifecycle import EDITABLE
from app.models import MESSAGES_ISSUE, Delivery, Issue

TICK = 1.0
SHARE = 20  # a snapshot is fresh for this many times its query's time (at least TICK)
MAX_AGE = 15.0  # seconds: however long the query, a watched send moves at least this often
LIVE = ("sending", "scheduled", "paused")  # statuses whose figures still move
STREAM_SECONDS = 20.0  # a progress stream's life; the browser's EventSource reconnects


class ProgressBoard:
    """The latest progress of each issue being watched, shared by all its viewers."""

    def __init__(self) -> None:
        # issue id -> (until when it is fresh, the snapshot)
        self._snapshots: dict[int, tuple[float, dict[str, Any]]] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    def _fresh(self, issue_id: int) -> dict[str, Any] | None:
        cached = self._snapshots.get(issue_id)
        return cached[1] if cached and time.monotonic() < cached[0] else None

    async def read(self, maker: async_sessionmaker[AsyncSession], issue_id: int) -> dict[str, Any]:
        """The issue's progress, at most TICK seconds old (longer for a costly count, see
        above); NotFound for an unknown issue."""
        if (fresh := self._fresh(issue_id)) is not None:
            return fresh
        lock = self._locks.setdefault(issue_id, asyncio.Lock())
        async with lock:
            if (fresh := self._fresh(issue_id)) is not None:
                return fresh
            start = time.monotonic()
            async with maker() as session:
                snapshot = await _measure(session, issue_id)
            now = time.monotonic()
            age = min(MAX_AGE, max(TICK, (now - start) * SHARE))
            self._snapshots[issue_id] = (now + age, snapshot)
            if len(self._snapshots) > 1000:  # issues nobody watches any more
                self._snapshots.pop(next(iter(self._snapshots)))
            return snapshot

    def forget(self, issue_id: int) -> None:
        """Drop a snapshot after a pause, resume or cancel, so the next poll shows it at once."""
        self._snapshots.pop(issue_id, None)


async def _measure(session: AsyncSession, issue_id: int) -> dict[str, Any]:
    stats = await service.stats(session=session, issue_id=issue_id)
    reason = await session.get(Issue, issue_id)
    rate = float(stats["messages_per_second"] or 0)
    left = int(stats["queued"])
    done = stats["sent"] + stats["failed"] + stats["bounced"] + stats["complained"]
    return {
        "status": stats["status"],
        "status_reason": reason.status_reason if reason else None,
        "recipients": stats["recipients"],
        "sent": stats["sent"],
        "failed": stats["failed"],
        "bounced": stats["bounced"],
        "complained": stats["complained"],
        "unsubscribed": stats["unsubscribed"],
        "queued": left,
        "done": done,
        "rate": rate,
        "eta_seconds": round(left / rate) if rate > 0 and left else None,
    }


def board(state: Any) -> ProgressBoard:
    """The app's board, made on first use."""
    found = getattr(state, "progress_board", None)
    if found is None:
        found = state.progress_board = ProgressBoard()
    return found  # type: ignore[no-any-return]


# The issues list: a page of issues and their figures, without a count per issue.

LIST_PAGE = 50
LIST_FIGURES = ("sent", "failed", "bounced")


async def list_page(
    session: AsyncSession, *, before: int | None, limit: int = LIST_PAGE
) -> tuple[list[Issue], int | None]:
    """A page of issues, newest first, and the id the next (older) page starts before."""
    # Issue 0 holds the transactional messages (app/messages), not an issue anyone wrote.
    query = select(Issue).where(Issue.id != MESSAGES_ISSUE).order_by(Issue.id.desc())
    query = query.limit(limit + 1)
    if before is not None:
        query = query.where(Issue.id < before)
    rows = list((await session.scalars(query)).all())
    return rows[:limit], rows[limit - 1].id if len(rows) > limit else None


async def list_figures(session: AsyncSession, issues: list[Issue]) -> dict[int, dict[str, int]]:
    """Sent, failed and bounced of each issue that has started, from one grouped query.

    Bounded by the page: only these issues' rows of the three statuses are read, each
    (issue, status) a range of the ix_deliveries_queue (issue_id, status, ...) index.
    There is no kept counter to read instead; drafts and scheduled issues have no rows.
    """
    started = [i.id for i in issues if i.status not in EDITABLE]
    found: dict[int, dict[str, int]] = {i: dict.fromkeys(LIST_FIGURES, 0) for i in started}
    if not started:
        return found
    rows = await session.execute(
        select(Delivery.issue_id, Delivery.status, func.count())
        .where(Delivery.issue_id.in_(started), Delivery.status.in_(LIST_FIGURES))
        .group_by(Delivery.issue_id, Delivery.status)
    )
    for issue_id, status, count in rows.tuples():
        found[issue_id][status] = count
    return found
