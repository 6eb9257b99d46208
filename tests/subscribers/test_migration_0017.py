"""Migration 0017 on PostgreSQL with people in it: one search index in place of two, and back."""

from __future__ import annotations

import asyncio

import asyncpg
from alembic import command

from app.migrate import alembic_config
from tests.conftest import create_pg_database, drop_pg_database, need

OLD = {"ix_subscribers_email_key_trgm", "ix_subscribers_name_trgm"}
NEW = "ix_subscribers_search_trgm"
SEARCH = (
    "SELECT email_key FROM subscribers WHERE (email_key || ' ' || coalesce(lower(name), ''))"
    " LIKE $1 ORDER BY id"
)


async def _indexes(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'subscribers'")
    return {r[0] for r in rows} & (OLD | {NEW})


async def test_0017_replaces_the_two_trigram_indexes_and_goes_back() -> None:
    try:
        url = await create_pg_database()
    except (OSError, asyncpg.PostgresError) as exc:
        need(False, f"PostgreSQL ({exc})")
    dsn = url.replace("postgresql+asyncpg", "postgresql")
    try:
        await asyncio.to_thread(command.upgrade, alembic_config(url), "0016")
        conn = await asyncpg.connect(dsn)
        try:
            assert await _indexes(conn) == OLD
            # A person without a name (NULL) must still be found by her address.
            await conn.execute(
                "INSERT INTO subscribers (email, email_key, name, attributes, status, created_at,"
                " updated_at) SELECT 'p' || n || '@example.org', 'p' || n || '@example.org',"
                " CASE WHEN n % 2 = 0 THEN NULL ELSE 'Person ' || n END, '{}', 'active', now(),"
                " now() FROM generate_series(1, 3000) n"
            )
            await asyncio.to_thread(command.upgrade, alembic_config(url), "0017")
            assert await _indexes(conn) == {NEW}
            await conn.execute("SET enable_seqscan = off")  # the index must answer, not a scan
            plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + SEARCH, "%p2222@%"))
            assert NEW in plan, plan
            assert [r[0] for r in await conn.fetch(SEARCH, "%p2222@%")] == ["p2222@example.org"]
            assert [r[0] for r in await conn.fetch(SEARCH, "%person 2221%")] == [
                "p2221@example.org"
            ]
            await asyncio.to_thread(command.downgrade, alembic_config(url), "0016")
            assert await _indexes(conn) == OLD
        finally:
            await conn.close()
    finally:
        await drop_pg_database(url)
