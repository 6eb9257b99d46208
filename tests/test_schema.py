"""The schema that the whole chain of migrations leaves, on SQLite, keeps what earlier steps set.

A later migration that rebuilds a table on SQLite (Alembic's batch mode) silently drops
AUTOINCREMENT and ON DELETE actions it does not know about; these are promises other code
relies on (an erased person's tokens never reach a new one; a deleted segment leaves its
sent issues in place).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.migrate import upgrade

# Tables whose ids tokens or links carry: an id must never be handed out twice.
NEVER_REUSED = ("subscribers", "issues")


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    path = Path(tmp_path_factory.mktemp("schema")) / "t.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
        return {name: sql or "" for name, sql in rows}


@pytest.mark.parametrize("table", NEVER_REUSED)
def test_ids_are_never_reused_after_every_migration(schema: dict[str, str], table: str) -> None:
    assert "AUTOINCREMENT" in schema[table].upper(), schema[table]


def test_a_deleted_segment_leaves_its_issues(schema: dict[str, str]) -> None:
    assert "ON DELETE SET NULL" in schema["issues"].upper(), schema["issues"]
