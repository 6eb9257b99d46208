"""Rate limits that hold across every dispatcher sharing the database.

Each SMTP server with a `rate` has a token bucket in `rate_buckets` (key = its name),
refilled at `rate` tokens per second up to one second's worth. An optional hourly quota
(TIDINGS_HOURLY_QUOTA, for providers' sending limits) is a window row of its own. A
throttling server is backed off by `blocked_until` on its row, so every worker backs off.

Going to the database for every message would cost more than the message; a dispatcher
reserves a block of up to one second's worth of tokens per round trip (`Budget`), and
drops what it did not use after a second, so the sum over all workers stays within the
rate plus one second of burst.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import on_postgresql
from app.models import RateBucket

HOURLY_KEY = "quota:hourly"
WINDOW = 3600.0
HOLD_SECONDS = 1.0  # reserved tokens older than this are dropped, not hoarded


@dataclass(frozen=True)
class Grant:
    count: int
    wait: float  # when count is 0: seconds until asking again can succeed


async def _locked_row(session: AsyncSession, key: str, now: float) -> RateBucket:
    dialect = postgresql if on_postgresql(session) else sqlite
    await session.execute(
        dialect.insert(RateBucket)
        .values(
            key=key, tokens=0.0, updated_at=now, window_start=now, window_count=0, blocked_until=0.0
        )  # fmt: skip
        .on_conflict_do_nothing(index_elements=["key"])
    )
    row = await session.scalar(
        select(RateBucket)
        .where(RateBucket.key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert row is not None
    return row


async def reserve(
    *, session: AsyncSession, key: str, rate: float, want: int, quota: int | None = None
) -> Grant:
    """Take up to `want` tokens from a server's bucket (and the hourly quota); flushes only."""
    now = time.time()
    allowed = want
    quota_row = None
    # Always lock the quota row before the server row: one order, no deadlocks.
    if quota:
        quota_row = await _locked_row(session, HOURLY_KEY, now)
        if now - quota_row.window_start >= WINDOW:
            quota_row.window_start, quota_row.window_count = now, 0
        allowed = min(allowed, quota - quota_row.window_count)
        if allowed <= 0:
            return Grant(0, quota_row.window_start + WINDOW - now)
    if rate > 0:
        row = await _locked_row(session, key, now)
        if row.blocked_until > now:
            return Grant(0, row.blocked_until - now)
        capacity = max(1.0, rate)
        tokens = min(capacity, row.tokens + max(0.0, now - row.updated_at) * rate)
        granted = min(allowed, math.floor(tokens))
        row.tokens, row.updated_at = tokens - granted, now
        if granted <= 0:
            return Grant(0, (1.0 - tokens) / rate)
        allowed = granted
    if quota_row is not None:
        quota_row.window_count += allowed
    await session.flush()
    return Grant(allowed, 0.0)


async def block(*, session: AsyncSession, key: str, seconds: float) -> None:
    """Back a server off for `seconds` for every dispatcher (throttling replies)."""
    now = time.time()
    row = await _locked_row(session, key, now)
    row.blocked_until = max(row.blocked_until, now + seconds)
    row.tokens = 0.0
    await session.flush()


class Budget:
    """The tokens one dispatcher holds for one transport, refilled from the database in blocks."""

    def __init__(
        self,
        *,
        key: str,
        rate: float,
        quota: int | None,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        self.key, self.rate, self.quota = key, rate, quota
        self.sessionmaker = sessionmaker
        self._tokens = 0
        self._taken_at = 0.0
        self.blocked_local = 0.0  # set by the dispatcher on throttling, before the DB knows

    @property
    def limited(self) -> bool:
        return self.rate > 0 or bool(self.quota)

    def drop(self) -> None:
        """Forget held tokens (the server is being backed off)."""
        self._tokens = 0

    async def take(self, want: int, stopping: asyncio.Event) -> int:
        """Wait until at least one token is ours; return how many (≤ want), 0 when stopping."""
        while not stopping.is_set():
            wait = self.blocked_local - time.time()
            if wait > 0:
                await _sleep(min(wait, 0.5), stopping)
                continue
            if not self.limited:
                return want
            if self._tokens and time.monotonic() - self._taken_at > HOLD_SECONDS:
                self._tokens = 0
            if self._tokens:
                n = min(want, self._tokens)
                self._tokens -= n
                return n
            block = max(want, math.ceil(self.rate)) if self.rate > 0 else want
            async with self.sessionmaker() as session, session.begin():
                grant = await reserve(
                    session=session, key=self.key, rate=self.rate, want=block, quota=self.quota
                )
            if grant.count:
                self._tokens, self._taken_at = grant.count, time.monotonic()
                continue
            await _sleep(min(max(grant.wait, 0.01), 0.5), stopping)
        return 0


async def _sleep(seconds: float, stopping: asyncio.Event) -> None:
    try:
        await asyncio.wait_for(stopping.wait(), timeout=seconds)
    except TimeoutError:
        pass
