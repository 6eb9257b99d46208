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

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy import bindparam, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import UTCDateTime, on_postgresql

UTC_TIME = UTCDateTime()


def timed(sql: str, *times: str) -> Any:
    """`text(sql)` whose named parameters `times` are bound as UTC datetimes."""
    return text(sql).bindparams(*(bindparam(t, type_=UTC_TIME) for t in times))


def single_statements(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> async_sessionmaker[AsyncSession]:
    """Sessions whose statements each commit alone (PostgreSQL), else `sessionmaker` itself."""
    if not on_postgresql(sessionmaker):
        return sessionmaker
    engine = sessionmaker.kw["bind"]
    return async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
    )


# The per-chunk statements (re-checks, result writes) go to asyncpg itself on an autocommit
# session: SQLAlchemy's async layer costs ~18 us of the worker's CPU a message on the re-
# check alone (a greenlet hop, its cursor adapter and Row objects for each of 50 rows),
# against ~4 us for asyncpg's own fetch of the same rows.
_DISCONNECTS = (
    asyncpg.InterfaceError,  # "connection is closed"
    asyncpg.PostgresConnectionError,  # 08xxx, ConnectionDoesNotExistError among them
    asyncpg.AdminShutdownError,  # the server is stopping (57P01) or crashed (57P02)
    asyncpg.CrashShutdownError,
    asyncpg.InternalClientError,  # the protocol's state broken: a FATAL arrived mid-use
    OSError,
)


async def driver_fetch(session: AsyncSession, sql: str, *args: Any) -> list[Any] | None:
    """Rows of one statement run by asyncpg on the session's connection, when that is an
    autocommit PostgreSQL one (single_statements); None otherwise: use SQLAlchemy then.

    Failures come as SQLAlchemy's DBAPIError, as every caller already handles; a dropped
    connection is invalidated first (OperationalError), so the pool never hands it out again.
    """
    if not on_postgresql(session):
        return None
    conn = await session.connection()
    if conn.sync_connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":  # type: ignore[union-attr]
        return None  # in a transaction SQLAlchemy has begun or will begin: stay in it
    pooled = await conn.get_raw_connection()
    driver = pooled.driver_connection
    try:
        return await driver.fetch(sql, *args)  # type: ignore[union-attr,no-any-return]
    except Exception as exc:  # whatever asyncpg raises, as SQLAlchemy's adapter maps it all
        if isinstance(exc, _DISCONNECTS) or driver.is_closed():  # type: ignore[union-attr]
            # As SQLAlchemy does on a disconnect: every connection of the pool made before
            # now is suspect (the server restarted?), and this one is dropped at once.
            conn.sync_engine.pool._invalidate(pooled, exc)
            await conn.invalidate(exc)
            raise OperationalError(sql, args, exc, connection_invalidated=True) from exc
        raise DBAPIError(sql, args, exc) from exc
    except BaseException:
        # Cancelled mid-statement (a stop, a timeout): asyncpg's cancel request may still be
        # on its way; the connection is not given to the next user.
        await asyncio.shield(conn.invalidate())
        raise


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


def sqlite_time(value: datetime | None) -> str | None:
    """A time as SQLAlchemy stores it in SQLite (naive UTC, six-digit fraction), for values
    passed inside a JSON parameter, so that they compare with the rest as before."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")  # as UTCDateTime says
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def storable_text(error: str | None) -> str | None:
    """An error as both databases keep it: a server's reply may hold a NUL (PostgreSQL
    refuses it in text, and so every later write of the batch) or broken UTF-8."""
    if error is None or (error.isprintable() and error.isascii()):
        return error
    return error.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
