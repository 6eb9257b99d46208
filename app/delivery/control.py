"""The dispatcher's control loop (every TICK = 0.1 s), and hard bounces from SMTP.

Why a tick and not notifications: every dispatcher, embedded or a `tidings worker` on
another machine, learns of a send, a pause, a cancel or a schedule from the one shared
database, with no broker; one indexed query a tenth of a second is cheap, and bounds how
long a pause takes to hold. The rest is upkeep counted in ticks: the scheduler, finished
issues and others' back-offs every 0.5 s; the guardrail, expired leases and a look at the
statistics of deliveries (statistics.py) every 2 s; the heartbeat, the branding and the
stored layouts every 5 s; our leases every third of their length.

The control loop owns the board's statuses (it alone replaces them) and its tick count.
It tells the feeder when an issue starts or ends, the claims to give back what waits of
an issue that left 'sending', and `Servers` the back-offs others set. It runs beside the
feeder and senders on the same event loop and awaits only inside its one transaction,
so each decision is taken on statuses that no other part changes half-way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import replies
from app.bounces.dsn import BounceEvent
from app.bounces.policy import record_bounce
from app.config import Settings
from app.db import database_away, on_postgresql, utcnow
from app.delivery import queue, statistics
from app.delivery.feeder import Feeder, refresh_branding
from app.delivery.parts import Parts
from app.engagement import guardrail
from app.issues import lifecycle
from app.models import Worker

log = logging.getLogger("tidings.dispatcher")

TICK = 0.1  # seconds between control ticks
# Statuses every tick (one indexed query): a send starts, and a pause or cancel takes
# hold, within a tenth of a second. The rest, counted in ticks, is upkeep.
EVERY_HALF_SECOND, EVERY_2_S, EVERY_5_S = 5, 20, 50


class Control:
    """One control tick at a time: statuses, scheduler, guardrail, leases, heartbeat."""

    def __init__(self, parts: Parts, *, feeder: Feeder) -> None:
        self.settings, self.sessionmaker = parts.settings, parts.sessionmaker
        self._single = parts.single
        self.owner = parts.owner
        self._board, self._claims, self._servers = parts.board, parts.claims, parts.servers
        self._feeder = feeder
        self._tick = 0
        self._analysing: set[asyncio.Task[bool]] = set()  # statistics.keep_up

    async def tick(self) -> None:
        """Issue statuses every tick; scheduler, finished issues and upkeep every few ticks."""
        tick, self._tick = self._tick, self._tick + 1
        board, claims, settings = self._board, self._claims, self.settings
        # Leases are renewed every third of their length.
        renew = claims.holds_any() and tick % max(1, int(settings.lease_seconds / 3 / TICK)) == 0
        # Four ticks in five read the statuses and nothing else: one statement, no transaction.
        upkeep = renew or tick % EVERY_HALF_SECOND == 0
        async with (self.sessionmaker if upkeep else self._single)() as s, s.begin():
            watched = claims.issues() | board.known()
            statuses = await queue.issue_statuses(session=s, held=watched)
            if tick % EVERY_HALF_SECOND == 0:
                started = await lifecycle.promote_scheduled(
                    session=s, inline_limit=settings.fanout_inline_limit
                )
                finished = await lifecycle.finish_sending(session=s)
                if started or finished:
                    log.info("issues started %s, finished %s", started, finished)
                await self._servers.learn(s)
            if tick % EVERY_2_S == 0:
                verdicts = await guardrail.verdicts(s, settings, board.sending())
                for issue_id, reason in verdicts.items():
                    log.warning("issue %s paused: %s", issue_id, reason)
                    claims.pause(issue_id, reason)  # written through lifecycle.pause by the writer
                if board.sending():
                    self._analyse()  # a send writing its rows as it claims: keep up
                recovered = await queue.recover_expired(session=s)
                if recovered:
                    log.warning(
                        "%d deliveries of a vanished dispatcher back in the queue", recovered
                    )
            if renew:
                await queue.extend_leases(
                    session=s, owner=self.owner, lease_seconds=settings.lease_seconds
                )
        previous = board.replace(statuses)
        for issue_id, status in statuses.items():  # with our unwritten pauses laid over
            if status != "sending":
                claims.release_issue(issue_id)
            if status in ("sent", "cancelled"):
                self._feeder.done_with(issue_id)
            elif status == "sending" and previous.get(issue_id) != "sending":
                self._feeder.started(issue_id)
                self._analyse()  # the send call may have written its rows at once
        if tick % EVERY_5_S == 0:
            await heartbeat(self.sessionmaker, self.owner)
            async with self.sessionmaker() as s:
                await refresh_branding(s, settings)  # at most a query each per 30 s

    def _analyse(self) -> None:
        # In a task of its own: the tick goes on while ANALYZE samples the table.
        if self._analysing or not on_postgresql(self.sessionmaker):
            return  # one look at a time; SQLite keeps no statistics
        task = asyncio.create_task(self._analyse_quietly())
        self._analysing.add(task)
        task.add_done_callback(self._analysing.discard)

    async def _analyse_quietly(self) -> bool:
        try:
            return await statistics.keep_up(self.sessionmaker)
        except Exception:  # noqa: BLE001 - statistics are an optimisation, never a failure
            log.warning("ANALYZE deliveries failed", exc_info=True)
            return False

    async def wind_down(self) -> None:
        for task in self._analysing:
            task.cancel()
        await asyncio.gather(*self._analysing, return_exceptions=True)


async def heartbeat(sessionmaker: async_sessionmaker[AsyncSession], owner: str) -> None:
    """Say this dispatcher is alive (its row in `workers`, made on the first beat)."""
    async with sessionmaker() as s, s.begin():
        row = await s.get(Worker, owner)
        if row is None:
            s.add(Worker(id=owner, hostname=socket.gethostname()[:255], pid=os.getpid()))
        else:
            row.heartbeat_at = utcnow()


def hard_bounce(code: int | None, error: str) -> bool:
    """A 5xx that says the address itself is dead; the meaning of replies lives in app.replies."""
    return replies.hard_bounce(code, error)


async def record_hard_bounces(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    bounces: list[tuple[int, str, str]],
) -> list[tuple[int, str, str]]:
    """Hand SMTP-time hard bounces to the bounce policy, one transaction each; returns
    those that could not be recorded, for the caller to try again."""
    failed = []
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
        except Exception as exc:
            log.exception("recording the hard bounce of delivery %s failed", delivery_id)
            if database_away(exc):  # the database, not the bounce: worth another try
                failed.append((delivery_id, email, error))
    return failed
