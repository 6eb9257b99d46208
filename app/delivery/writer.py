"""The dispatcher's writer: every result, pause and back-off goes to the database from here.

Why one writer that batches, rather than a write per message: a round trip per message
would cost more than the message. Every 0.1 s, or as soon as FLUSH_AT results wait, the
writer takes what `Claims`, the `Board` and `Servers` collected and writes it in one
transaction, guarded by our lease (queue.record writes only rows we still hold). The
window is kept small in messages, not only in time, because a message sent but not yet
recorded is what a crash would send twice.

It owns no state of its own: it takes from the other parts through their take_/pending
methods and, when a write fails, gives everything back through restore(), so a failed
write is simply retried, and a writer cancelled half-way (on stop) leaves it all to the
final flush. Writing a result twice is harmless: the second finds no lease of ours.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

from app import metrics
from app.delivery import queue, ratelimit
from app.delivery.control import record_hard_bounces
from app.delivery.parts import Parts
from app.issues import lifecycle

log = logging.getLogger("tidings.dispatcher")


class Writer:
    """Writes results, pauses and back-offs in batches; SMTP hard bounces after them."""

    def __init__(self, parts: Parts) -> None:
        self.settings, self.sessionmaker = parts.settings, parts.sessionmaker
        self._single = parts.single
        self.owner = parts.owner
        self._board, self._claims, self._servers = parts.board, parts.claims, parts.servers
        self._bounces: list[tuple[int, str, str]] = []  # (delivery id, email, reply)
        self._closing = False  # the loop ends at its next turn

    def close(self) -> None:
        """End the loop between two writes, never in one (see Dispatcher.run)."""
        self._closing = True
        self._claims.nudge()

    @property
    def closing(self) -> bool:
        return self._closing

    def bounced(self, delivery_id: int, email: str, reply: str) -> None:
        """An SMTP-time hard bounce, for the bounce policy once its failure is written."""
        self._bounces.append((delivery_id, email, reply))

    def _pending(self) -> bool:
        return bool(
            self._claims.has_results()
            or self._board.pending()
            or self._servers.has_unwritten()
            or self._bounces
        )

    async def run(self) -> None:
        flush_now = self._claims.flush_now
        while not self._closing:
            await ratelimit._sleep(0.1, flush_now)
            flush_now.clear()
            if self._pending() and not await self.flush():
                await asyncio.sleep(1.0)

    async def final_flush(self) -> None:
        deadline = time.monotonic() + 5
        while (self._claims.has_results() or self._board.pending()) and time.monotonic() < deadline:
            if not await self.flush():
                await asyncio.sleep(0.5)

    async def flush(self) -> bool:
        # Bounces are taken with their results: the bounce policy must see a delivery only
        # after its failure is written (it moves the row past 'sending', which the write
        # of a result written after it would then skip, losing its SMTP reply).
        claims = self._claims
        results = claims.take_results()
        bounces, self._bounces = self._bounces, []
        pauses = self._board.pending()  # kept on the board until written: the tick reads them
        blocks = self._servers.take_unwritten()
        # Results alone are one UPDATE, atomic by itself: no transaction round trips for it.
        plain = not pauses and not blocks and claims.holds_any()
        try:
            async with (self._single if plain else self.sessionmaker)() as s, s.begin():
                for issue_id, reason in pauses.items():
                    await lifecycle.pause(s, issue_id, reason)
                await queue.record(session=s, owner=self.owner, results=results)
                if results and not plain and not claims.holds_any():
                    # We hold nothing more: if no one else does, the issue is done now
                    # rather than at the next control tick. Never on the autocommit session
                    # (chosen while we still held claims; senders may have emptied them
                    # during the write): the status and its issue.finished event must
                    # commit together, so that case is left to the tick.
                    await lifecycle.finish_sending(session=s)
                for name, seconds in blocks.items():
                    await ratelimit.block(session=s, key=name, seconds=seconds)
        except BaseException as exc:
            claims.restore(results)
            self._bounces[:0] = bounces
            self._servers.restore(blocks)
            if not isinstance(exc, Exception):
                raise
            log.exception("writing %d results failed; will retry", len(results))
            return False
        self._board.written(list(pauses))
        counted: Counter[str] = claims.take_counts()
        for label, n in counted.items():
            metrics.count_messages(label, n)  # nothing where no /metrics is served
        if bounces:
            # Those not recorded (a dropped connection, an outage) are tried again at the
            # next flush; each is keyed by its delivery, so a retry records it once.
            self._bounces.extend(
                await record_hard_bounces(self.sessionmaker, self.settings, bounces)
            )
        return True
