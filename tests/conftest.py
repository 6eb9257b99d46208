"""Shared fixtures: a migrated database per backend, the app over HTTP, a real SMTP server.

Every test that asks for `client` runs twice, on SQLite and on PostgreSQL. Each backend
gets a fresh database of its own for the session (so parallel runs never collide), built
by the real Alembic migrations; each test starts from empty tables. Under pytest-xdist
(`make test`) every worker is a session of its own: its own databases, SMTP server and
free ports, so workers share nothing but the PostgreSQL server.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.accounts import passwords
from app.config import Settings
from app.db import Base, make_engine
from app.main import create_app
from app.migrate import upgrade
from tests.smtp import SMTPServer

ADMIN_TOKEN = "test-admin-token"
IN_CI = os.environ.get("CI", "").lower() == "true"
PG_URL = os.environ.get(
    "TIDINGS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


def need(condition: bool, what: str) -> None:
    """Skip when a part is missing, saying what to install; under CI=true, fail instead."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"missing under CI: {what}")
    pytest.skip(f"missing: {what}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the SQLite half of tests marked postgres_only (several worker processes),
    and the other half of a browser walk marked one_backend(name).

    A browser walk drives the same pages whichever database is behind them, and everything
    in them that differs by backend is tested below the browser on both; so each walk runs
    on one, and the walks are shared between the two (each costs 10-90 s of the suite's two
    cores). They are deselected, not skipped: a skip under CI=true would read as a missing
    part.
    """
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("database_url") if callspec else None
        only = "postgres" if item.get_closest_marker("postgres_only") else None
        if (marker := item.get_closest_marker("one_backend")) is not None:
            only = marker.args[0]
        (drop if only is not None and backend not in (None, only) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def create_pg_database() -> str:
    """A fresh, empty PostgreSQL database; returns its SQLAlchemy URL."""
    name = f"tidings_test_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(_asyncpg_dsn(PG_URL), timeout=30)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


async def drop_pg_database(url: str) -> None:
    name = make_url(url).database
    conn = await asyncpg.connect(_asyncpg_dsn(PG_URL), timeout=30)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


# The hasher the product uses (argon2-cffi's defaults, RFC 9106's low-memory profile:
# 3 passes over 64 MiB in 4 lanes), kept for the test that pins it.
PRODUCTION_HASHER = passwords._hasher


@pytest.fixture(scope="session", autouse=True)
def quick_password_hashing() -> Iterator[None]:
    """Argon2id at its least cost in the test process: the production one is ~0.23 s of CPU a
    hash or check here, and the console's tests make several hundred (sign-ups of accounts,
    sign-ins). Hashes stay Argon2id strings, checked the same way; `tidings serve` processes
    that tests start keep the production cost."""
    saved = passwords._hasher, passwords._DUMMY
    passwords._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    passwords._DUMMY = passwords._hasher.hash("not-an-account-password")
    yield
    passwords._hasher, passwords._DUMMY = saved


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
async def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A migrated database of each backend, for the whole session."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db')}/tidings.db"
        await asyncio.to_thread(upgrade, url)
        yield url
        return
    try:
        url = await create_pg_database()
    except (OSError, asyncpg.PostgresError) as exc:
        need(False, f"PostgreSQL at {PG_URL} ({exc}); install postgresql and start it")
    try:
        await asyncio.to_thread(upgrade, url)
        yield url
    finally:
        await drop_pg_database(url)


async def truncate_all(url: str) -> None:
    engine = make_engine(url)
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    async with engine.begin() as conn:
        # Core tables outside the models (app/messages, app/issues/triggers) go first: they
        # point at the others. list_member_counts is kept by triggers on subscriptions.
        tables = ["messages", "issue_triggers", *tables]
        # Only the tables the last test wrote (most write a few): on PostgreSQL TRUNCATE
        # makes new files for every table and index it names, ~0.45 s for all of them here
        # against ~0.05 for one. In the order above, children first, as before.
        probe = " UNION ALL ".join(
            f"SELECT '{t}' FROM (SELECT 1 FROM {t} LIMIT 1) AS {t}"  # noqa: S608 (names)
            for t in tables
        )
        found = {r[0] for r in await conn.execute(text(probe))}
        written = [t for t in tables if t in found]
        if url.startswith("postgresql"):
            # CASCADE takes the empty tables that point at these, as before; a sequence a
            # test drew from starts again, as RESTART IDENTITY did.
            if written:
                await conn.execute(text(f"TRUNCATE {', '.join(written)} CASCADE"))
            await conn.execute(
                text(
                    "SELECT setval(format('%I.%I', schemaname, sequencename), start_value, false)"
                    " FROM pg_sequences WHERE schemaname = current_schema()"
                    " AND last_value IS NOT NULL"
                )
            )
        else:
            for table in written:
                await conn.execute(text(f"DELETE FROM {table}"))
            # AUTOINCREMENT ids (migration 0003) start again at 1, as RESTART IDENTITY does.
            await conn.execute(text("DELETE FROM sqlite_sequence"))
    await engine.dispose()


@pytest.fixture
async def db(database_url: str) -> str:
    """The backend's database URL, with every table emptied for this test."""
    await truncate_all(database_url)
    return database_url


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SMTPServer]:
    server = SMTPServer().start()
    yield server
    server.stop()


@pytest.fixture
def smtpd(smtp_server: SMTPServer) -> SMTPServer:
    """The loopback SMTP server, emptied and answering 250 for this test."""
    smtp_server.reset()
    return smtp_server


@pytest.fixture
def make_settings(db: str, smtpd: SMTPServer, tmp_path: Path) -> Callable[..., Settings]:
    """Settings for a test app: its database, the loopback SMTP server, a temp var dir."""

    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": db,
            "smtp_url": smtpd.url,
            "var_dir": tmp_path / "var",
            "admin_token": ADMIN_TOKEN,
            "secret_key": "test-secret-key-" + "x" * 32,
            "public_url": "http://tidings.test",
            "embedded_worker": False,
            "public_rate_limit": 1000,
            "retry_delays": [1, 1, 1],
        }
        values.update(overrides)
        return Settings(**values)

    return factory


class AppClient(httpx.AsyncClient):
    """An HTTP client bound to a running app; `.app` gives access to its state."""

    app: Any


async def start_client(settings: Settings) -> tuple[AppClient, Any]:
    app = create_app(settings)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    client = AppClient(
        transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 5000)),
        base_url="http://tidings.test",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    client.app = app
    return client, lifespan


@pytest.fixture
async def app_factory(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[Callable[..., Any]]:
    """Start apps with custom settings; all are shut down after the test."""
    started: list[tuple[AppClient, Any]] = []

    async def factory(**overrides: Any) -> AppClient:
        client, lifespan = await start_client(make_settings(**overrides))
        started.append((client, lifespan))
        return client

    yield factory
    for client, lifespan in reversed(started):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


@pytest.fixture
async def client(app_factory: Callable[..., Any]) -> AppClient:
    """The app over HTTP with the admin token, on this test's backend."""
    return await app_factory()  # type: ignore[no-any-return]


@pytest.fixture
def anon(client: AppClient) -> AppClient:
    """The same app, as the public: no token."""
    c = AppClient(transport=client._transport, base_url=str(client.base_url))
    c.app = client.app
    return c


async def make_list(
    client: AppClient, slug: str = "news", name: str | None = None, **fields: Any
) -> int:
    """The one test helper for a list: written straight to the app's database (any client,
    with or without a token); `fields` are the list's columns. Returns its id."""
    from app.models import MailingList

    async with client.app.state.sessionmaker() as session:
        ml = MailingList(slug=slug, name=name or slug.title(), **{"description": "", **fields})
        session.add(ml)
        await session.commit()
        return ml.id


def tool(name: str) -> str | None:
    return shutil.which(name)
