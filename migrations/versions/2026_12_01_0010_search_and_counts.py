"""trigram search on subscribers (PostgreSQL)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 11:30:00

Searching subscribers by a substring of the address or the name (`LIKE '%x%'`) read
every row: 430 ms at a million. pg_trgm's GIN indexes serve such a LIKE from three
characters on (app/subscribers/service.py says what shorter searches do). Creating the
extension needs a superuser, or, since PostgreSQL 13 (pg_trgm is a trusted extension),
the CREATE privilege on the database. Without either the migration goes on without the
indexes and says so: search gives the same answers, only slower. SQLite has no trigram
index; its LIKE stays a scan.

List counts are not kept here: service.list_counts counts, and keeps a large list's count
for a few seconds (see there).
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy.exc import DBAPIError

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The expressions are the search query's own: email_key is already lowercase.
INDEXES = {
    "ix_subscribers_email_key_trgm": "email_key gin_trgm_ops",
    "ix_subscribers_name_trgm": "lower(name) gin_trgm_ops",
}


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    try:
        with bind.begin_nested():
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DBAPIError as exc:
        print(
            "warning: pg_trgm could not be created "
            f"({type(exc.orig).__name__}); subscriber search works without its index, "
            "scanning the table. As a superuser: CREATE EXTENSION pg_trgm; then re-run "
            "`tidings migrate` after `alembic downgrade 0009`, or create the indexes of "
            "migration 0010 by hand."
        )
        return
    for name, expression in INDEXES.items():
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON subscribers USING gin ({expression})")
    # The planner's estimates for the new expression index (lower(name)) come from ANALYZE.
    op.execute("ANALYZE subscribers")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
