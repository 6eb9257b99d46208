"""The dispatcher's side duties: its 0.5 s control tick and hard bounces from SMTP.

Kept apart from dispatcher.py so that the hot path (claim, render, send, record) reads
in one place; everything here runs at most a few times a second, or once per chunk.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import metrics
from app.config import Settings
from app.delivery import queue
from app.models import RateBucket

if TYPE_CHECKING:
    from app.delivery.dispatcher import Dispatcher

log = logging.getLogger("tidings.dispatcher")

_HARD_STATUS = re.compile(r"\b5\.1\.\d{1,3}\b")
_USER_UNKNOWN = re.compile(
    r"user unknown|no such user|unknown user|does not exist|mailbox unavailable|"
    r"recipient rejected|no mailbox|invalid recipient",
    re.I,
)


async def control_tick(d: Dispatcher, tick: int) -> None:
    """Every 0.5 s: issue statuses; every second: scheduler and finished issues; and upkeep."""
    async with d.sessionmaker() as s, s.begin():
        statuses = await queue.issue_statuses(session=s, held=set(d.held.values()) | set(d.status))
        if tick % 2 == 0:
            started = await queue.promote_scheduled(session=s)
            finished = await queue.finish_issues(session=s)
            if started or finished:
                log.info("issues started %s, finished %s", started, finished)
            await _refresh_blocks(d, s)
        if tick % 4 == 0:
            recovered = await queue.recover_expired(session=s)
            if recovered:
                log.warning("%d deliveries of a vanished dispatcher back in the queue", recovered)
        if d.held and tick % max(1, int(d.settings.lease_seconds * 2 / 3)) == 0:
            await queue.extend_leases(
                session=s, owner=d.owner, lease_seconds=d.settings.lease_seconds
            )
    for issue_id in d.pauses:  # our own pause, not written yet: the database lags behind us
        statuses[issue_id] = "paused"
    for issue_id, status in statuses.items():
        if status != "sending":
            d.release_issue(issue_id)
        if status in ("sent", "cancelled"):
            d.compiled.pop(issue_id, None)
    d.status = statuses
    if tick % 10 == 0:
        await d._heartbeat()
        await _gauges(d)


async def _refresh_blocks(d: Dispatcher, s: AsyncSession) -> None:
    """Learn the back-offs other workers set on our servers."""
    rows = await s.execute(
        select(RateBucket.key, RateBucket.blocked_until).where(RateBucket.key.in_(d.budgets))
    )
    for key, until in rows:
        budget = d.budgets[key]
        budget.blocked_local = max(budget.blocked_local, float(until or 0.0))


async def _gauges(d: Dispatcher) -> None:
    now = time.monotonic()
    while d.sent_log and now - d.sent_log[0][0] > 60:
        d.sent_log.popleft()
    if d.sent_log:
        span = max(1.0, now - d.sent_log[0][0])
        metrics.send_rate.set(sum(n for _, n in d.sent_log) / span)
    else:
        metrics.send_rate.set(0)
    async with d.sessionmaker() as s:
        metrics.queue_depth.set(await queue.queue_depth(session=s))


def hard_bounce(code: int | None, error: str) -> bool:
    """A 5xx that says the address does not exist (5.1.x, or user-unknown wording)."""
    if code is None or code < 500:
        return False
    if _HARD_STATUS.search(error):
        return True
    return code in (550, 551, 553) and bool(_USER_UNKNOWN.search(error))


async def record_hard_bounces(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    bounces: list[tuple[int, str, str]],
) -> None:
    """Hand SMTP-time hard bounces to the bounce policy, one transaction each."""
    try:
        from app.bounces.dsn import BounceEvent
        from app.bounces.policy import record_bounce
    except ImportError:  # the bounce policy is not installed in this build
        return
    for delivery_id, email, error in bounces:
        status = _HARD_STATUS.search(error)
        event = BounceEvent(
            type="hard",
            email=email,
            status=status.group(0) if status else "5.0.0",
            diagnostic=error,
            event_key=f"smtp:{delivery_id}",
        )
        try:
            async with sessionmaker() as s, s.begin():
                await record_bounce(
                    session=s, settings=settings, event=event, source="smtp",
                    delivery_id=delivery_id,
                )  # fmt: skip
        except Exception:
            log.exception("recording the hard bounce of delivery %s failed", delivery_id)
