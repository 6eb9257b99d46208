"""subscriber and issue ids never reused; no name is NULL, not ""

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 11:00:00

Tokens (confirm, unsubscribe, preferences) sign a subscriber's id and an issue's id. An
INTEGER PRIMARY KEY without AUTOINCREMENT lets SQLite hand the highest id out again after
a delete, so an erased person's old links would act on whoever signed up next. SQLite
can only add AUTOINCREMENT by rebuilding the table; PostgreSQL's sequences never go back.
Deliveries (VERP tokens) are never deleted, so their ids cannot come back; they keep
their lean INTEGER PRIMARY KEY.
"""

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("subscribers", "issues")


def _rebuild_sqlite(table: str, edit: dict[str, str]) -> None:
    """The table rebuilt from its own CREATE text with `edit` applied (old -> new).

    Rows, column order and indexes stay; foreign keys are off meanwhile (see `upgrade`),
    so dropping the old table cascades to no child row.
    """
    conn = op.get_bind()
    create = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).scalar_one()
    indexes = list(
        conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?"
            " AND sql IS NOT NULL",
            (table,),
        ).scalars()
    )
    for old, new in edit.items():
        changed = re.sub(old, new, create, count=1)
        if changed == create:
            raise RuntimeError(f"{table}: {old!r} not found in its schema")
        create = changed
    create = re.sub(rf'^CREATE TABLE "?{table}"?', f"CREATE TABLE _new_{table}", create)
    conn.exec_driver_sql(create)
    conn.exec_driver_sql(f"INSERT INTO _new_{table} SELECT * FROM {table}")  # noqa: S608 (our own table names)
    conn.exec_driver_sql(f"DROP TABLE {table}")
    conn.exec_driver_sql(f"ALTER TABLE _new_{table} RENAME TO {table}")
    for index in indexes:
        conn.exec_driver_sql(index)


def _autoincrement(table: str) -> dict[str, str]:
    return {
        r"\bid INTEGER NOT NULL,": f"id INTEGER NOT NULL CONSTRAINT pk_{table} "
        "PRIMARY KEY AUTOINCREMENT,",
        rf",\s*CONSTRAINT pk_{table} PRIMARY KEY \(id\)": "",
    }


def _plain_key(table: str) -> dict[str, str]:
    return {
        rf"\bid INTEGER NOT NULL CONSTRAINT pk_{table} PRIMARY KEY AUTOINCREMENT,": (
            "id INTEGER NOT NULL,"
        ),
        r"\n\)$": f", \n\tCONSTRAINT pk_{table} PRIMARY KEY (id)\n)",
    }


def _sqlite(edits: dict[str, dict[str, str]]) -> None:
    # PRAGMA foreign_keys is ignored inside a transaction: leave Alembic's for a moment.
    with op.get_context().autocommit_block():
        conn = op.get_bind()
        conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
        try:
            conn.exec_driver_sql("BEGIN")
            for table, edit in edits.items():
                _rebuild_sqlite(table, edit)
            broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:
                conn.exec_driver_sql("ROLLBACK")
                raise RuntimeError(f"foreign keys broken by the rebuild: {broken[:5]}")
            conn.exec_driver_sql("COMMIT")
        finally:
            conn.exec_driver_sql("PRAGMA foreign_keys = ON")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        edits = {t: _autoincrement(t) for t in _TABLES}
        edits["subscribers"][r"\bname VARCHAR\(200\) NOT NULL,"] = "name VARCHAR(200),"
        _sqlite(edits)
    else:
        op.alter_column("subscribers", "name", existing_type=sa.String(200), nullable=True)
    # No name is no name: templates' `default()` then works for people who gave none.
    op.execute("UPDATE subscribers SET name = NULL WHERE trim(name) = ''")


def downgrade() -> None:
    op.execute("UPDATE subscribers SET name = '' WHERE name IS NULL")
    if op.get_bind().dialect.name == "sqlite":
        edits = {t: _plain_key(t) for t in _TABLES}
        edits["subscribers"][r"\bname VARCHAR\(200\),"] = "name VARCHAR(200) NOT NULL,"
        _sqlite(edits)
    else:
        op.alter_column("subscribers", "name", existing_type=sa.String(200), nullable=False)
