"""A task cancelled in the middle of a transaction leaves no lock behind (app.db.make_engine).

Stops and timeouts cancel tasks, and a cancelled task may be half-way through a write
transaction (a dispatcher's stop met the feeder inside a rate-limit reservation). Its
connection is invalidated and closed; on SQLite that close alone kept the handle, its
transaction and its write lock alive while the cancelled statement was still held, so
every other writer then waited out its busy timeout ("database is locked"). The
transaction here writes a row, then runs a statement slow enough to be cancelled in
flight; another connection must then write the same row at once.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.db import make_engine, make_sessionmaker

# Slow on purpose (hundreds of ms), so that the cancel lands while it runs.
SLOW = {
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c"
    " WHERE x < 3000000) SELECT count(*) FROM c",
    "postgresql": "SELECT pg_sleep(2)",
}


async def _write_elsewhere(url: str) -> float:
    """Update the row on a connection of another engine; seconds it took (bounded: 3 s)."""
    if url.startswith("sqlite"):
        other = create_async_engine(url, connect_args={"timeout": 3})
    else:
        other = create_async_engine(url, connect_args={"server_settings": {"lock_timeout": "3s"}})
    try:
        started = time.monotonic()
        async with other.begin() as conn:
            await conn.execute(text("UPDATE rate_buckets SET tokens = tokens + 1 WHERE key = 'k'"))
        return time.monotonic() - started
    finally:
        await other.dispose()


async def test_a_cancelled_transaction_releases_its_locks(db: str) -> None:
    engine = make_engine(db)
    sessions = make_sessionmaker(engine)
    slow = SLOW["sqlite" if db.startswith("sqlite") else "postgresql"]
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO rate_buckets (key, tokens, updated_at, window_start,"
                " window_count, blocked_until) VALUES ('k', 0, 0, 0, 0, 0)"
            )
        )
    in_flight = asyncio.Event()

    async def half_way() -> None:
        async with sessions() as s, s.begin():
            await s.execute(text("UPDATE rate_buckets SET tokens = 10 WHERE key = 'k'"))
            in_flight.set()
            await s.execute(text(slow))

    try:
        for _ in range(3):  # each round must leave the row writable
            task = asyncio.create_task(half_way())
            await asyncio.wait_for(in_flight.wait(), 10)
            await asyncio.sleep(0.05)  # the slow statement is running now
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            in_flight.clear()
            assert await _write_elsewhere(db) < 2.5
        async with engine.connect() as conn:
            tokens = await conn.scalar(text("SELECT tokens FROM rate_buckets WHERE key = 'k'"))
        assert tokens == 3  # no cancelled write of 10 landed; the three others did
    finally:
        await engine.dispose()
