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


def claim_statement(pg: bool, *, guard: str = "") -> Any:
    """UPDATE … RETURNING id that leases up to :n due deliveries of issue :i to :owner.

    `guard`: one more condition of the rows' WHERE (the bulk claim's "its issue is still
    sending"). A plan that no statistics can turn: ORDER BY the queue index's last column
    walks that index, and on PostgreSQL `= ANY(ARRAY(...))` makes the outer UPDATE look
    ids up by primary key. With `IN (...)`, fresh statistics after a fan-out (every row
    'queued') made PostgreSQL hash the whole table per claim: 2.0 -> 8.6 ms a batch at
    20,000 rows, growing with the send. SKIP LOCKED: concurrent workers each take other
    rows without waiting; SQLite has one writer at a time, so it needs no lock clause.
    """
    lock = " FOR UPDATE SKIP LOCKED" if pg else ""
    ids = ("id = ANY(ARRAY(", "))") if pg else ("id IN (", ")")
    return timed(
        "UPDATE deliveries SET status = 'sending', lease_owner = :owner,"  # noqa: S608 (constants only)
        f" lease_expires_at = :lease, attempts = attempts + 1 WHERE {ids[0]}"
        "SELECT id FROM deliveries WHERE issue_id = :i AND status = 'queued'"
        f" AND next_attempt_at <= :now{guard}"
        f" ORDER BY next_attempt_at LIMIT :n{lock}{ids[1]} RETURNING id",
        "now",
        "lease",
    )
