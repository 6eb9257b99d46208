"""Hits recorded in batches: a redirect or pixel answers at once and never waits on a write.

A hit goes into an in-process buffer; a task flushes it every FLUSH_SECONDS (sooner at
FLUSH_AT hits). A hit is judged only once it is HOLD_SECONDS old, so the other links one
scanner follows from the same message are all in view. Each flush adds to the rollups
(engagement_counts), marks deliveries counted once (engagement_seen: keyed digests, no
ids), and, in `individual` mode only, writes one event row per hit. If the database is
away the hits wait for the next flush (bounded: the oldest are dropped past MAX_PENDING).
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

from sqlalchemy import insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.engagement import classify, retention
from app.engagement.classify import Hit
from app.engagement.models import EngagementCount, EngagementEvent, EngagementSeen
from app.models import Delivery, Subscriber
from app.tokens import _key

log = logging.getLogger(__name__)
FLUSH_SECONDS = 0.5
FLUSH_AT = 500
HOLD_SECONDS = 2.5
MAX_PENDING = 200_000
REPEAT_SECONDS = 10.0  # the same link of one message again from one address: one hit
RECENT_PER_MESSAGE = 32


class Recorder:
    """One process's buffer of hits and the task that flushes it."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings):
        self.sessionmaker = sessionmaker
        self.settings = settings
        self._digest_key = _key(settings.secret_key_value, "engagement-seen")
        self.pending: deque[Hit] = deque(maxlen=MAX_PENDING)
        # delivery -> its last hits: bounded, so a flood on one token costs no more per hit
        self.recent: dict[int, deque[Hit]] = {}
        self.counted: dict[tuple[int, str, int, str], float] = {}  # when each was last counted
        self.wake = asyncio.Event()
        self.arrived = 0
        self.purged = float("-inf")  # the first flush also purges
        self.task: asyncio.Task[None] | None = None

    def hit(self, hit: Hit) -> None:
        """Note one hit (no I/O); the flushing task starts with the first."""
        self.pending.append(hit)
        self.arrived += 1
        # Counted since the last flush, not pending: the held hits always number more.
        if self.arrived >= FLUSH_AT:
            self.wake.set()
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
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
        batch: list[Hit] = []
        while self.pending and self.pending[0].at <= cutoff:
            batch.append(self.pending.popleft())
        if not batch:
            return 0
        try:
            async with self.sessionmaker() as session, session.begin():
                await self._write(session, batch)
        except BaseException:
            self.pending.extendleft(reversed(batch))
            raise
        return len(batch)

    def _fresh(self, hits: list[Hit]) -> list[Hit]:
        """The hits that are not a repeat, each also noted among its message's recent hits."""
        now, out = time.time(), []
        for h in hits:
            key = (h.delivery_id, h.kind, h.index, h.address)
            last = self.counted.get(key)
            if last is not None and 0 <= h.at - last < REPEAT_SECONDS:
                continue  # the same link of one message again from one address: one hit
            self.counted[key] = h.at
            found = self.recent.get(h.delivery_id)
            if found is None:
                found = self.recent[h.delivery_id] = deque(maxlen=RECENT_PER_MESSAGE)
            found.append(h)
            out.append(h)
        for delivery in [k for k, v in self.recent.items() if v[-1].at < now - 30]:
            del self.recent[delivery]
        for counted in [k for k, at in self.counted.items() if at < now - 30]:
            del self.counted[counted]
        return out

    def _context(self, h: Hit) -> tuple[bool, bool]:
        """(burst, trap): other links of the same message followed around the same moment."""
        window = classify.BURST_SECONDS
        clicks = [o for o in self.recent.get(h.delivery_id, ())
                  if o is not h and o.kind == "click" and abs(o.at - h.at) <= window]  # fmt: skip
        return any(o.index != h.index for o in clicks), any(o.index == 1 for o in clicks)

    async def _write(self, session: AsyncSession, batch: list[Hit]) -> None:
        mode = self.settings.tracking
        if mode == "off":
            return
        rows = await session.execute(
            select(Delivery.id, Delivery.issue_id, Delivery.subscriber_id, Delivery.sent_at,
                   Subscriber.attributes)
            .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.id.in_({h.delivery_id for h in batch}))
        )  # fmt: skip
        known = {r[0]: r for r in rows}
        # Judging is CPU work: off the event loop, so redirects keep answering meanwhile.
        counts, seen, events = await asyncio.to_thread(self._judge, batch, known, mode)
        await self._uniques(session, seen, counts)
        await _add_counts(session, counts)
        if events:
            await session.execute(insert(EngagementEvent), events)

    def _judge(self, batch: list[Hit], known: dict[int, Any], mode: str) -> tuple[
        dict[tuple[int, str, int, datetime, str], list[int]],
        list[tuple[Hit, str, list[int]]],
        list[dict[str, Any]],
    ]:  # fmt: skip
        """Each hit's verdict, added up into rollup cells, uniques to check, event rows."""
        counts: dict[tuple[int, str, int, datetime, str], list[int]] = {}
        seen: list[tuple[Hit, str, list[int]]] = []
        events: list[dict[str, Any]] = []
        for h in self._fresh(batch):
            row = known.get(h.delivery_id)
            # An issue deleted since: nothing to count against. A reader who said no: nothing.
            if row is None or row[1] != h.issue_id or (row[4] or {}).get("tracking") is False:
                continue
            burst, trap = self._context(h)
            sent = row[3]
            after = h.at - sent.timestamp() if sent is not None else None
            ev = classify.judge(h, seconds_after=after, burst=burst, trap=trap)
            verdict = ev["reasons"][0].split(":")[0] if ev["machine"] else ""
            at = datetime.fromtimestamp(h.at, UTC)
            bucket = at.replace(minute=0, second=0, microsecond=0)
            cell = counts.setdefault((h.issue_id, h.kind, h.index, bucket, verdict), [0, 0])
            cell[0] += 1
            if not ev["machine"]:
                seen.append((h, self._digest(h.delivery_id), cell))
            if mode == "individual" and row[2] is not None:
                events.append({"issue_id": h.issue_id, "delivery_id": h.delivery_id,
                               "subscriber_id": row[2], "kind": h.kind, "link_idx": h.index,
                               "at": at, "machine": ev["machine"], "evidence": ev})  # fmt: skip
        return counts, seen, events

    def _digest(self, delivery_id: int) -> str:
        data = delivery_id.to_bytes(8, "big")
        return hashlib.blake2b(data, key=self._digest_key, digest_size=8).hexdigest()

    async def _uniques(self, session: AsyncSession, seen: list[tuple[Hit, str, list[int]]],
                       counts: dict[Any, list[int]]) -> None:  # fmt: skip
        """Count a person's first open, first click of each link and first click at all."""
        if not seen:
            return
        keys: dict[tuple[int, str, int, str], list[int]] = {}
        for h, digest, cell in seen:
            keys.setdefault((h.issue_id, h.kind, h.index, digest), cell)
            if h.kind == "click":
                any_cell = counts.setdefault((h.issue_id, "click", -1, _hour(h.at), ""), [0, 0])
                keys.setdefault((h.issue_id, "click", -1, digest), any_cell)
        values = [{"issue_id": i, "kind": k, "link_idx": x, "digest": d} for i, k, x, d in keys]
        insert = _insert(session, EngagementSeen)
        stmt = insert.values(values).on_conflict_do_nothing().returning(
            EngagementSeen.issue_id, EngagementSeen.kind, EngagementSeen.link_idx,
            EngagementSeen.digest,
        )  # fmt: skip
        for new in await session.execute(stmt):
            keys[tuple(new)][1] += 1  # type: ignore[index]


def _hour(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC).replace(minute=0, second=0, microsecond=0)


def _insert(session: AsyncSession, model: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert(model)


async def _add_counts(session: AsyncSession, counts: dict[Any, list[int]]) -> None:
    if not counts:
        return
    insert = _insert(session, EngagementCount)
    values = [{"issue_id": i, "kind": k, "link_idx": x, "bucket": b, "verdict": v,
               "total": t, "uniq": u} for (i, k, x, b, v), (t, u) in counts.items()]  # fmt: skip
    stmt = insert.values(values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["issue_id", "kind", "link_idx", "bucket", "verdict"],
        set_={"total": EngagementCount.total + stmt.excluded.total,
              "uniq": EngagementCount.uniq + stmt.excluded.uniq},
    )  # fmt: skip
    await session.execute(stmt)
