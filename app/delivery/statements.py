"""Small helpers the queue's raw statements share: which backend, UTC-typed times, and
sessions for work that is one statement.

Why sessions without a transaction: on PostgreSQL a session's transaction costs two round
trips of its own (BEGIN, then COMMIT or ROLLBACK) and the server's work for each, more
than the statement when that is a re-check of 50 recipients or the write of 50 results.
One statement is atomic by itself, so the dispatcher's one-statement work (re-checks,
plain result writes, status ticks, the message probe) runs in autocommit: one round trip.
SQLite keeps its transactions: there each autocommitted write would be a commit of its own.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db import UTCDateTime

UTC_TIME = UTCDateTime()


def is_pg(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def timed(sql: str, *times: str) -> Any:
    """`text(sql)` whose named parameters `times` are bound as UTC datetimes."""
    return text(sql).bindparams(*(bindparam(t, type_=UTC_TIME) for t in times))


def single_statements(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> async_sessionmaker[AsyncSession]:
    """Sessions whose statements each commit alone (PostgreSQL), else `sessionmaker` itself."""
    engine = sessionmaker.kw.get("bind")
    if not isinstance(engine, AsyncEngine) or engine.dialect.name != "postgresql":
        return sessionmaker
    return async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
    )
