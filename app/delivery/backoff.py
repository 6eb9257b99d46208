"""Per-server sending budgets and back-off: which server to use next, and how fast.

One `Servers` per dispatcher owns, for each transport: its rate budget (ratelimit.Budget,
shared with other workers through the database), when this dispatcher last saw it
throttle, and the back-off it is under. The senders report each outcome here (succeeded,
throttled); the feeder asks for a server and its tokens; the control tick tells it about
back-offs other workers set; the writer takes the new back-offs to write to the
database, so every worker backs off, not just the one that was told to.

The local block (Budget.blocked_local) takes hold at once, before the database knows,
and is only ever moved later by this part: a back-off read from the database never
shortens one we set ourselves. All on one event loop; no method awaits except take().
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.delivery import ratelimit
from app.delivery.transport import DeliveryError, Transport, pick_weighted, routed
from app.models import RateBucket

THROTTLE_CODES = (421, 451, 452)


class Servers:
    """Budgets, throttling history and back-offs of this dispatcher's transports."""

    def __init__(
        self,
        transports: list[Transport],
        *,
        quota: int | None,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        self._transports = transports
        self._budgets = {
            t.name: ratelimit.Budget(
                key=t.name, rate=t.rate, quota=quota, sessionmaker=sessionmaker
            )
            for t in transports
        }
        self._backoff: dict[str, float] = {}  # seconds of the last episode, doubled per episode
        self._throttles: dict[str, deque[float]] = {}  # the last three throttling replies
        self._unwritten: dict[str, float] = {}  # server -> back-off seconds to write

    def claim_size(self, batch_size: int) -> int:
        budgets = self._budgets.values()
        if all(b.rate > 0 for b in budgets):
            # Under a rate limit, hold no more than ~2 s of work: pause and take-over stay cheap.
            rate = sum(b.rate for b in budgets)
            return max(1, min(batch_size, math.ceil(2 * rate)))
        return batch_size

    def pick(self, route: tuple[str, ...] | None = None) -> Transport | None:
        """A server by rate among those the route names (None: all), not backed off if any.

        None when the route names no configured server (TIDINGS_SMTP_URL changed since the
        issue was saved): its messages must not leave through another brand's server.
        """
        now = time.time()
        pool = routed(self._transports, route)
        if not pool:
            return None
        blocked = {n for n, b in self._budgets.items() if b.blocked_local > now}
        return pick_weighted(pool, blocked)

    async def take(self, name: str, want: int, stopping: asyncio.Event) -> int:
        return await self._budgets[name].take(want, stopping)

    def succeeded(self, name: str) -> None:
        self._backoff.pop(name, None)

    def throttled(self, name: str, exc: DeliveryError) -> float | None:
        """Seconds to wait before trying this message again when the server is throttling us."""
        if not self._is_throttle(name, exc):
            return None
        budget = self._budgets[name]
        if budget.blocked_local < time.time():  # a new episode: back off twice as long
            self._backoff[name] = min(60.0, max(1.0, 2 * self._backoff.get(name, 0.5)))
            budget.blocked_local = time.time() + self._backoff[name]
            budget.drop()
            self._unwritten[name] = self._backoff[name]
        return max(1.0, budget.blocked_local - time.time())

    def _is_throttle(self, name: str, exc: DeliveryError) -> bool:
        if exc.code not in THROTTLE_CODES:
            return False
        recent = self._throttles.setdefault(name, deque(maxlen=3))
        recent.append(time.monotonic())
        # 421 says the server as a whole wants us gone; 451/452 only when they come in a burst.
        return exc.code == 421 or (len(recent) == 3 and recent[-1] - recent[0] < 5.0)

    def has_unwritten(self) -> bool:
        return bool(self._unwritten)

    def take_unwritten(self) -> dict[str, float]:
        blocks, self._unwritten = self._unwritten, {}
        return blocks

    def restore(self, blocks: dict[str, float]) -> None:
        self._unwritten = {**blocks, **self._unwritten}

    async def learn(self, session: AsyncSession) -> None:
        """Learn the back-offs other workers set on our servers."""
        rows = await session.execute(
            select(RateBucket.key, RateBucket.blocked_until).where(
                RateBucket.key.in_(self._budgets)
            )
        )
        for key, until in rows:
            budget = self._budgets[key]
            budget.blocked_local = max(budget.blocked_local, float(until or 0.0))
