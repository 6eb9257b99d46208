"""Engine, sessions and the declarative Base with a naming convention."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, TypeDecorator, event
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite keeps no zone, so values are normalised to UTC on the way in and tagged on
    the way out; PostgreSQL stores `timestamptz` and the same code works on both.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def database_away(exc: BaseException) -> bool:
    """The database did not answer (a lost or refused connection, a timeout), as opposed
    to refusing what was asked: another try may succeed. A 503 over HTTP, a retry inside."""
    if isinstance(exc, DBAPIError):
        return isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated
    return isinstance(exc, OSError | TimeoutError)


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An engine tuned for the backend: WAL and a busy timeout on SQLite, a pool on PostgreSQL."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine.sync_engine, "invalidate")
        def _sqlite_roll_back(dbapi_conn: Any, _record: Any, _exc: BaseException | None) -> None:
            # A task cancelled mid-statement (a stop, a timeout) invalidates its connection,
            # which SQLAlchemy then closes without a rollback. sqlite3 closes with
            # sqlite3_close_v2: while the cancelled statement is still held, the handle
            # lives on with its transaction, and its write lock stops every other writer
            # (seen: a dispatcher's stop left "database is locked" for the next test).
            # ROLLBACK releases the lock whatever still holds the handle. It is queued on
            # the connection's own thread (after the statement in flight) before anything
            # is awaited, so it runs even if this wait is cancelled again; an error here
            # (the handle gone, no greenlet at garbage collection) leaves only the close.
            with suppress(BaseException):
                dbapi_conn.rollback()

        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_timeout", 10)
    return create_async_engine(url, **kwargs)


def on_postgresql(
    where: AsyncSession
    | AsyncConnection
    | Connection
    | AsyncEngine
    | async_sessionmaker[AsyncSession],
) -> bool:
    """Whether this session, connection (async, or sync inside run_sync), engine or
    sessionmaker talks to PostgreSQL.

    The one test that the backend-specific statements (upserts, SKIP LOCKED claims, COPY,
    trigram search, ANALYZE) branch on; anything else is SQLite, the embedded default.
    """
    if isinstance(where, async_sessionmaker):
        bind = where.kw.get("bind")
        return isinstance(bind, AsyncEngine) and bind.dialect.name == "postgresql"
    if isinstance(where, AsyncSession):
        return where.get_bind().dialect.name == "postgresql"
    return where.dialect.name == "postgresql"


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def session_scope(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One session per request: committed when the handler returns, rolled back on error."""
    async with maker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


# The units of work outside the request's session, each named for where it begins and ends.


@asynccontextmanager
async def transaction(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A standalone unit on a session of its own: committed when the block ends, else rolled back.

    For a short read or write that must not wait for the request's session (an import's
    lookup before its own batches, a page rendered after a refusal).
    """
    async with maker() as session, session.begin():
        yield session


@asynccontextmanager
async def core_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A unit of Core statements on a bare connection, committed when the block ends.

    The measured fast paths (the public sign-up) use it: no ORM session, no identity map.
    The block ends before the handler answers, so a 2xx follows the commit.
    """
    async with engine.begin() as conn:
        yield conn


@asynccontextmanager
async def driver_transaction(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[Any]:
    """A unit on a pooled connection's own driver handle (asyncpg), committed when the block ends.

    For bulk writes that bind whole arrays in C (the PostgreSQL import); SQLAlchemy sends
    nothing on this connection meanwhile, so the driver's transaction is the only one.
    """
    async with maker() as session:
        raw = await (await session.connection()).get_raw_connection()
        driver = raw.driver_connection
        async with driver.transaction():  # type: ignore[union-attr]
            yield driver
