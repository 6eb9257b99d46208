"""Reliability fixtures: the `soak` marker, a private PostgreSQL cluster, worker processes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from app.migrate import upgrade
from tests.conftest import need
from tests.reliability import pgcluster


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-soak", action="store_true", default=False, help="run the long soak tests"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "soak: a long soak run; only with --run-soak")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The option exists only when this conftest was loaded at start-up (pytest tests/reliability).
    if config.getoption("--run-soak", default=False):
        return
    # Deselected rather than skipped: under CI=true a skip reads as a missing part.
    soak = [item for item in items if "soak" in item.keywords]
    if soak:
        config.hook.pytest_deselected(items=soak)
        items[:] = [item for item in items if "soak" not in item.keywords]


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[pgcluster.PgCluster]:
    """A private PostgreSQL cluster this session may stop and start at will."""
    missing = pgcluster.available()
    need(missing is None, missing or "")
    cluster = pgcluster.PgCluster().init()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
async def private_db(pg_cluster: pgcluster.PgCluster) -> AsyncIterator[str]:
    """A fresh, migrated database on the private cluster, for one test."""
    if not pg_cluster.running:  # a previous test failed while the server was down
        pg_cluster.start()
    name = f"tidings_rel_{uuid.uuid4().hex[:8]}"
    url = await asyncio.to_thread(pg_cluster.create_database, name)
    await asyncio.to_thread(upgrade, url)
    yield url
