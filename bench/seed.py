"""Fast seeding of a migrated database: one list and N confirmed subscribers, set-based.

A million subscribers through the API would take longer than the benchmark itself, so the
rows are made by the database: `INSERT ... SELECT generate_series` on PostgreSQL, a
recursive CTE on SQLite. The rows look like the API's: normalised email, lowercased key,
a name and attributes the newsletter uses.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime

import asyncpg

from app.migrate import upgrade
from bench.infra import _asyncpg_dsn

LIST_SLUG = "weekly"

_PG_SUBSCRIBERS = """
INSERT INTO subscribers (id, email, email_key, name, attributes, status, created_at, updated_at)
SELECT i, 'reader' || i || '@example.com', 'reader' || i || '@example.com',
       'Reader Nümber ' || i,
       json_build_object('city', 'Paris', 'plan', CASE WHEN i % 2 = 0 THEN 'pro' ELSE 'free' END),
       'active', now(), now()
FROM generate_series($1::bigint, $2::bigint) AS i
"""
_PG_SUBSCRIPTIONS = """
INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, confirmed_at)
SELECT i, $3, 'confirmed', now(), now() FROM generate_series($1::bigint, $2::bigint) AS i
"""
_SQLITE_SUBSCRIBERS = """
INSERT INTO subscribers (id, email, email_key, name, attributes, status, created_at, updated_at)
WITH RECURSIVE seq(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM seq WHERE i < ?)
SELECT i, 'reader' || i || '@example.com', 'reader' || i || '@example.com',
       'Reader Nümber ' || i,
       json_object('city', 'Paris', 'plan', CASE WHEN i % 2 = 0 THEN 'pro' ELSE 'free' END),
       'active', ?, ? FROM seq
"""
_SQLITE_SUBSCRIPTIONS = """
INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, confirmed_at)
SELECT id, ?, 'confirmed', ?, ? FROM subscribers WHERE id BETWEEN ? AND ?
"""


async def migrate(url: str) -> None:
    """Run the real Alembic migrations on a fresh database."""
    await asyncio.to_thread(upgrade, url)


async def seed(url: str, *, subscribers: int, double_opt_in: bool = False) -> int:
    """Create the list `weekly` with `subscribers` confirmed members; return the list id."""
    if url.startswith("sqlite"):
        return await asyncio.to_thread(_seed_sqlite, url, subscribers, double_opt_in)
    conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=10)
    try:
        list_id = await conn.fetchval(
            "INSERT INTO lists (slug, name, description, double_opt_in, public, created_at) "
            "VALUES ($1, 'Weekly News', '', $2, true, now()) RETURNING id",
            LIST_SLUG,
            double_opt_in,
        )
        # Chunks of 250k keep each transaction's memory small on a 1M seed.
        for lo in range(1, subscribers + 1, 250_000):
            hi = min(subscribers, lo + 249_999)
            await conn.execute(_PG_SUBSCRIBERS, lo, hi)
            await conn.execute(_PG_SUBSCRIPTIONS, lo, hi, list_id)
        await conn.execute(
            "SELECT setval(pg_get_serial_sequence('subscribers', 'id'), $1)", max(subscribers, 1)
        )
        await conn.execute("ANALYZE subscribers; ANALYZE subscriptions")
        return int(list_id)
    finally:
        await conn.close()


def _seed_sqlite(url: str, subscribers: int, double_opt_in: bool) -> int:
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    db = sqlite3.connect(url.split("///", 1)[1])
    try:
        cur = db.execute(
            "INSERT INTO lists (slug, name, description, double_opt_in, public, created_at) "
            "VALUES (?, 'Weekly News', '', ?, 1, ?)",
            (LIST_SLUG, double_opt_in, now),
        )
        list_id = int(cur.lastrowid or 0)
        for lo in range(1, subscribers + 1, 250_000):
            hi = min(subscribers, lo + 249_999)
            db.execute(_SQLITE_SUBSCRIBERS, (lo, hi, now, now))
            db.execute(_SQLITE_SUBSCRIPTIONS, (list_id, now, now, lo, hi))
        db.commit()
        db.execute("ANALYZE")
        return list_id
    finally:
        db.close()
