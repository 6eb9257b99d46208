"""The dispatcher's side duties: its control tick (every TICK = 0.1 s) and hard bounces from SMTP.

Kept apart from dispatcher.py so that the hot path (claim, render, send, record) reads
in one place; everything here runs at most a few times a second, or once per chunk.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import replies
from app.bounces.dsn import BounceEvent
from app.bounces.policy import record_bounce
from app.config import Settings
from app.delivery import queue
from app.delivery.feeder import precompile
from app.engagement import guardrail
from app.issues import lifecycle
from app.models import RateBucket

if TYPE_CHECKING:
    from app.delivery.dispatcher import Dispatcher

log = logging.getLogger("tidings.dispatcher")

TICK = 0.1  # seconds between control ticks
# Statuses every tick (one indexed query): a send starts, and a pause or cancel takes
# hold, within a tenth of a second. The rest, counted in ticks, is upkeep.
EVERY_HALF_SECOND, EVERY_2_S, EVERY_5_S = 5, 20, 50


async def control_tick(d: Dispatcher, tick: int) -> None:
    """Issue statuses every tick; scheduler, finished issues and upkeep every few ticks."""
    async with d.sessionmaker() as s, s.begin():
        statuses = await queue.issue_statuses(session=s, held=set(d.held.values()) | set(d.status))
        if tick % EVERY_HALF_SECOND == 0:
            started = await lifecycle.promote_scheduled(session=s)
            finished = await lifecycle.finish_sending(session=s)
            if started or finished:
                log.info("issues started %s, finished %s", started, finished)
            await _refresh_blocks(d, s)
        if tick % EVERY_2_S == 0:
            sending = [i for i, status in d.status.items() if status == "sending"]
            for issue_id, reason in (await guardrail.verdicts(s, d.settings, sending)).items():
                log.warning("issue %s paused: %s", issue_id, reason)
                d.pause(issue_id, reason)  # written through lifecycle.pause by the writer
            recovered = await queue.recover_expired(session=s)
            if recovered:
                log.warning("%d deliveries of a vanished dispatcher back in the queue", recovered)
        # Leases are renewed every third of their length.
        if d.held and tick % max(1, int(d.settings.lease_seconds / 3 / TICK)) == 0:
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
        elif status == "sending" and d.status.get(issue_id) != "sending":
            precompile(d, issue_id)  # while the feeder claims the first batch
            d.wake.set()  # an idle feeder starts on it now, not at its next look
    d.status = statuses
    if tick % EVERY_5_S == 0:
        await d._heartbeat()


async def _refresh_blocks(d: Dispatcher, s: AsyncSession) -> None:
    """Learn the back-offs other workers set on our servers."""
    rows = await s.execute(
        select(RateBucket.key, RateBucket.blocked_until).where(RateBucket.key.in_(d.budgets))
    )
    for key, until in rows:
        budget = d.budgets[key]
        budget.blocked_local = max(budget.blocked_local, float(until or 0.0))


def hard_bounce(code: int | None, error: str) -> bool:
    """A 5xx that says the address itself is dead; the meaning of replies lives in app.replies."""
    return replies.hard_bounce(code, error)


async def record_hard_bounces(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    bounces: list[tuple[int, str, str]],
) -> None:
    """Hand SMTP-time hard bounces to the bounce policy, one transaction each."""
    for delivery_id, email, error in bounces:
        event = BounceEvent(
            type="hard",
            email=email,
            status=replies.best_status(None, error) or "5.0.0",
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
