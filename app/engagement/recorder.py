"""Hits recorded in batches: a redirect or pixel answers at once and never waits on a write.

A hit goes into an in-process buffer (and, for a click, among its message's recent
clicks, so every link one scanner follows from a message is in view); a task flushes the
buffer every FLUSH_SECONDS (sooner at FLUSH_AT hits). A hit is judged only once it is
HOLD_SECONDS old. Each flush adds to the rollups (engagement_counts), marks deliveries
counted once (engagement_seen: keyed digests, no ids), in `individual` mode only writes
one event row per hit, and writes link.clicked for each person's click, all in one
transaction. If the database is away the hits wait for the next flush (bounded: the
oldest are dropped past MAX_PENDING).

The flush shares the event loop with the redirects, so no stretch of it is long: hits
are judged SLICE at a time with a yield between, rows are written by executemany in
slices (rollups.py), what is forgotten expires in arrival order, never by a scan, and
crawlerdetect's patterns are compiled in a thread when the task starts.

What is kept between flushes is plain tuples of strings and numbers (each hit, a message's
recent clicks as (at, index) pairs, the counted keys), which CPython's garbage collector
stops tracking at the first collection they live through. A tracked object per hit (the
Hit itself, a deque per message), kept 30 s, made every full collection walk them all:
100-300 ms with the loop held, the redirect's p99. They are kept only as long as a verdict
can need them: clicks BURST_SECONDS, counted keys REPEAT_SECONDS before the oldest hit
not yet judged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.engagement import classify, ranges, retention, rollups
from app.engagement.classify import Hit
from app.models import Delivery, Subscriber
from app.tokens import purpose_key

log = logging.getLogger(__name__)
FLUSH_SECONDS = 0.5
FLUSH_AT = 500
HOLD_SECONDS = 2.5
MAX_PENDING = 200_000
REPEAT_SECONDS = 10.0  # the same link of one message again from one address: one hit
RECENT_PER_MESSAGE = 32
SLICE = 100  # hits judged between two yields to the event loop (~0.5 ms)
Row = tuple[Any, ...]  # a Hit as a plain tuple, as buffered (Hit._make reads it back)
_AT, _DELIVERY = Hit._fields.index("at"), Hit._fields.index("delivery_id")


class Recorder:
    """One process's buffer of hits and the task that flushes it."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings):
        self.sessionmaker = sessionmaker
        self.settings = settings
        self._digest_key = purpose_key(settings.secret_key_value, "engagement-seen")
        self.pending: deque[Row] = deque(maxlen=MAX_PENDING)
        # delivery -> (at, index) of its last clicks: bounded, so a flood on one token
        # costs no more per hit
        self.recent: dict[int, tuple[tuple[float, int], ...]] = {}
        self.counted: dict[tuple[int, str, int, str], float] = {}  # when each was last counted
        self._expiry: deque[tuple[float, int]] = deque()  # (arrival, delivery) of recent
        self._counted_expiry: deque[tuple[float, tuple[int, str, int, str]]] = deque()
        self.wake = asyncio.Event()
        self.arrived = 0
        self.purged = float("-inf")  # the first flush also purges
        self.task: asyncio.Task[None] | None = None
        self.prefetchers = ranges.Ranges()

    def hit(self, hit: Hit) -> None:
        """Note one hit (no I/O); the flushing task starts with the first."""
        self.pending.append(tuple(hit))
        if hit.kind == "click":
            kept = self.recent.get(hit.delivery_id, ())[1 - RECENT_PER_MESSAGE :]
            self.recent[hit.delivery_id] = (*kept, (hit.at, hit.link_idx))
            self._expiry.append((hit.at, hit.delivery_id))
        self.arrived += 1
        # Counted since the last flush, not pending: the held hits always number more.
        if self.arrived >= FLUSH_AT:
            self.wake.set()
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        await asyncio.to_thread(classify.warm)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), FLUSH_SECONDS)
            self.wake.clear()
            self.arrived = 0
            try:
                await self.flush()
                if time.monotonic() - self.purged > retention.EVERY_SECONDS:
                    self.purged = time.monotonic()
                    async with self.sessionmaker() as session, session.begin():
                        gone = await retention.purge(session, self.settings)
                    if gone:
                        log.info("engagement: %d events past their retention deleted", gone)
            except (SQLAlchemyError, OSError):
                log.warning("engagement: flush failed; hits kept for the next", exc_info=True)

    async def close(self) -> None:
        """Stop flushing and write every hit left, judged on what is in view."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        try:
            await self.flush(hold=0)
        except (SQLAlchemyError, OSError):
            log.warning("engagement: %d hits lost at shutdown", len(self.pending))

    async def flush(self, *, hold: float = HOLD_SECONDS) -> int:
        """Judge and write every hit older than `hold` seconds; how many were taken."""
        cutoff = time.time() - hold
        batch: list[Row] = []
        while self.pending and self.pending[0][_AT] <= cutoff:
            batch.append(self.pending.popleft())
        if not batch:
            self._forget()
            return 0
        try:
            async with self.sessionmaker() as session, session.begin():
                await self._write(session, batch)
        except BaseException:
            self.pending.extendleft(reversed(batch))
            raise
        self._forget()
        return len(batch)

    def _forget(self) -> None:
        """Drop what no verdict can need any more: clicks BURST_SECONDS and counted hits
        REPEAT_SECONDS older than the oldest hit not yet judged (or now), oldest first:
        each entry is looked at once, when it expires."""
        oldest = min(time.time(), self.pending[0][_AT]) if self.pending else time.time()
        horizon = oldest - classify.BURST_SECONDS
        while self._expiry and self._expiry[0][0] < horizon:
            delivery = self._expiry.popleft()[1]
            found = self.recent.get(delivery)
            if found is not None and found[-1][0] < horizon:
                del self.recent[delivery]
        horizon = oldest - REPEAT_SECONDS
        while self._counted_expiry and self._counted_expiry[0][0] < horizon:
            at, key = self._counted_expiry.popleft()
            if self.counted.get(key) == at:
                del self.counted[key]

    def _fresh(self, h: Hit) -> bool:
        """Whether the hit is not a repeat of one counted in the last REPEAT_SECONDS."""
        key = (h.delivery_id, h.kind, h.link_idx, h.address)
        last = self.counted.get(key)
        if last is not None and 0 <= h.at - last < REPEAT_SECONDS:
            return False  # the same link of one message again from one address: one hit
        self.counted[key] = h.at
        self._counted_expiry.append((h.at, key))
        return True

    def _context(self, h: Hit) -> tuple[bool, bool]:
        """(burst, trap): other links of the same message followed around the same moment.
        The hit's own click among them changes neither (its index is its own, and a click
        of the hidden link is judged so by its index)."""
        window = classify.BURST_SECONDS
        near = [i for at, i in self.recent.get(h.delivery_id, ()) if abs(at - h.at) <= window]
        return any(i != h.link_idx for i in near), 1 in near

    async def _write(self, session: AsyncSession, batch: list[Row]) -> None:
        mode = self.settings.tracking
        if mode == "off":
            return
        self.prefetchers = ranges.load(self.settings.var_dir)  # read again if a file changed
        judged = rollups.Judged(announce=await rollups.announcing(session))
        conn = await session.connection()  # Core: the rows as tuples, no ORM on the way
        for start in range(0, len(batch), SLICE):
            part = batch[start : start + SLICE]
            rows = await conn.execute(
                select(Delivery.id, Delivery.issue_id, Delivery.subscriber_id, Delivery.sent_at,
                       Subscriber.attributes)
                .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .where(Delivery.id.in_({r[_DELIVERY] for r in part}))
            )  # fmt: skip
            # Made after the await: no tracked object per hit waits across it.
            hits = [Hit._make(r) for r in part]
            self._judge(hits, {r[0]: r for r in rows}, mode, judged)
            await asyncio.sleep(0)  # let the redirects waiting meanwhile answer
        await rollups.write(session, judged)

    def _judge(self, part: list[Hit], known: dict[int, Any], mode: str,
               judged: rollups.Judged) -> None:  # fmt: skip
        """Each hit's verdict, added up into rollup cells, uniques to check, event rows."""
        for h in part:
            if not self._fresh(h):
                continue
            row = known.get(h.delivery_id)
            # An issue deleted since: nothing to count against. A reader who said no: nothing.
            if row is None or row[1] != h.issue_id or (row[4] or {}).get("tracking") is False:
                continue
            burst, trap = self._context(h) if h.kind == "click" else (False, False)
            sent = row[3]
            after = h.at - sent.timestamp() if sent is not None else None
            ev = classify.judge(h, seconds_after=after, burst=burst, trap=trap,
                                prefetchers=self.prefetchers)  # fmt: skip
            verdict = ev["reasons"][0].split(":")[0] if ev["machine"] else ""
            at = datetime.fromtimestamp(h.at, UTC)
            bucket = at.replace(minute=0, second=0, microsecond=0)
            cell = judged.counts.setdefault(
                (h.issue_id, h.kind, h.link_idx, bucket, verdict), [0, 0]
            )
            cell[0] += 1
            person = row[2] if mode == "individual" else None
            if not ev["machine"]:
                digest = self._digest(h.delivery_id)
                judged.seen.setdefault((h.issue_id, h.kind, h.link_idx, digest), cell)
                if h.kind == "click":
                    anyone = judged.counts.setdefault((h.issue_id, "click", -1, bucket, ""), [0, 0])
                    judged.seen.setdefault((h.issue_id, "click", -1, digest), anyone)
                if h.kind == "click" and judged.announce:
                    judged.clicks.append({"issue_id": h.issue_id, "url": h.url,
                                          "subscriber_id": person,
                                          "at": at.isoformat()})  # fmt: skip
            if person is not None:
                judged.events.append({"issue_id": h.issue_id, "delivery_id": h.delivery_id,
                                      "subscriber_id": person, "kind": h.kind,
                                      "link_idx": h.link_idx, "at": at, "machine": ev["machine"],
                                      "evidence": ev})  # fmt: skip

    def _digest(self, delivery_id: int) -> str:
        data = delivery_id.to_bytes(8, "big")
        return hashlib.blake2b(data, key=self._digest_key, digest_size=8).hexdigest()
