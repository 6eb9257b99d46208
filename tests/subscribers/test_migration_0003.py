"""Migration 0003 on a database with people in it: ids never reused, blank names NULL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from sqlalchemy import text

from app.db import make_engine
from app.migrate import alembic_config
from tests.conftest import create_pg_database, drop_pg_database, need

PEOPLE = [(1, "a@example.org", "Ann"), (2, "b@example.org", ""), (3, "c@example.org", "  ")]


@pytest.fixture(params=["sqlite", "postgres"])
async def at_0002(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database migrated to 0002, with three people on a list."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/old.db"
    else:
        try:
            url = await create_pg_database()
        except (OSError, asyncpg.PostgresError) as exc:
            need(False, f"PostgreSQL ({exc})")
    try:
        await asyncio.to_thread(command.upgrade, alembic_config(url), "0002")
        engine = make_engine(url)
        async with engine.begin() as conn:
            now = datetime(2026, 1, 1, tzinfo=UTC)
            await conn.execute(
                text(
                    "INSERT INTO lists (id, slug, name, description, double_opt_in, public,"
                    " created_at) VALUES (1, 'news', 'News', '', true, true, :now)"
                ),
                {"now": now},
            )
            for sid, email, name in PEOPLE:
                await conn.execute(
                    text(
                        "INSERT INTO subscribers (id, email, email_key, name, attributes, status,"
                        " created_at, updated_at) VALUES (:id, :e, :e, :n, '{}', 'active', :now,"
                        " :now)"
                    ),
                    {"id": sid, "e": email, "n": name, "now": now},
                )
                await conn.execute(
                    text(
                        "INSERT INTO subscriptions (subscriber_id, list_id, status, created_at)"
                        " VALUES (:id, 1, 'confirmed', :now)"
                    ),
                    {"id": sid, "now": now},
                )
        await engine.dispose()
        yield url
    finally:
        if url.startswith("postgresql"):
            await drop_pg_database(url)


async def test_0003_keeps_rows_nulls_blank_names_and_never_reuses_ids(at_0002: str) -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(at_0002), "0003")
    engine = make_engine(at_0002)
    async with engine.begin() as conn:
        names = dict((await conn.execute(text("SELECT id, name FROM subscribers"))).all())
        assert names == {1: "Ann", 2: None, 3: None}
        kept = (await conn.execute(text("SELECT count(*) FROM subscriptions"))).scalar_one()
        assert kept == 3  # the table rebuild cascaded to no membership
        if conn.dialect.name == "postgresql":  # rows above came with explicit ids
            await conn.execute(
                text("SELECT setval(pg_get_serial_sequence('subscribers', 'id'), 3)")
            )
        await conn.execute(text("DELETE FROM subscribers WHERE id = 3"))
        new_id = (
            await conn.execute(
                text(
                    "INSERT INTO subscribers (email, email_key, attributes, status, created_at,"
                    " updated_at) VALUES ('d@example.org', 'd@example.org', '{}', 'active',"
                    " '2026-01-02 00:00:00', '2026-01-02 00:00:00') RETURNING id"
                )
            )
        ).scalar_one()
        assert new_id == 4  # the highest id, erased, is never handed out again
    await engine.dispose()
    await asyncio.to_thread(command.downgrade, alembic_config(at_0002), "0002")
    engine = make_engine(at_0002)
    async with engine.begin() as conn:
        after = dict((await conn.execute(text("SELECT id, name FROM subscribers"))).all())
        assert after[2] == ""
    await engine.dispose()
