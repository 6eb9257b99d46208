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

List counts are kept, by triggers on `subscriptions`, so that every write path (the API,
the console, sign-up, import, erasure's cascade, bounce and one-click unsubscribes, list
deletion) keeps them right without knowing of them. `list_member_counts` holds signed
deltas per (list, status); a list's count is their sum. On PostgreSQL one row per
statement is added (statement triggers over the transition tables: an import batch of
5,000 is one row, a sign-up one row, and no two writers wait on a shared counter row);
service.list_counts folds a list's deltas into one row when they pile up. On SQLite (one
writer at a time) row triggers update one row per (list, status) in place.
"""

from collections.abc import Sequence

import sqlalchemy as sa
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


PG_COUNT_FUNCTION = """
CREATE FUNCTION list_member_counts_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    TRUNCATE list_member_counts;
  ELSIF TG_OP = 'INSERT' THEN
    INSERT INTO list_member_counts (list_id, status, n)
    SELECT list_id, status, count(*) FROM new_rows GROUP BY list_id, status;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO list_member_counts (list_id, status, n)
    SELECT list_id, status, -count(*) FROM old_rows GROUP BY list_id, status;
  ELSE
    INSERT INTO list_member_counts (list_id, status, n)
    SELECT list_id, status, sum(d) FROM (
      SELECT list_id, status, 1 AS d FROM new_rows
      UNION ALL SELECT list_id, status, -1 FROM old_rows
    ) c GROUP BY list_id, status HAVING sum(d) <> 0;
  END IF;
  RETURN NULL;
END $$
"""
PG_TRIGGERS = [
    "CREATE TRIGGER subscriptions_count_insert AFTER INSERT ON subscriptions"
    " REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT"
    " EXECUTE FUNCTION list_member_counts_keep()",
    "CREATE TRIGGER subscriptions_count_update AFTER UPDATE ON subscriptions"
    " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT"
    " EXECUTE FUNCTION list_member_counts_keep()",
    "CREATE TRIGGER subscriptions_count_delete AFTER DELETE ON subscriptions"
    " REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT"
    " EXECUTE FUNCTION list_member_counts_keep()",
    "CREATE TRIGGER subscriptions_count_truncate AFTER TRUNCATE ON subscriptions"
    " FOR EACH STATEMENT EXECUTE FUNCTION list_member_counts_keep()",
]


def _sqlite_bump(name: str, event: str, row: str, sign: str, when: str = "") -> str:
    return (
        f"CREATE TRIGGER {name} AFTER {event} ON subscriptions {when} BEGIN"  # noqa: S608
        " INSERT INTO list_member_counts (list_id, status, n)"
        f" VALUES ({row}.list_id, {row}.status, {sign}1)"
        f" ON CONFLICT (list_id, status) DO UPDATE SET n = n {sign} 1; END"
    )


SQLITE_TRIGGERS = [
    _sqlite_bump("subscriptions_count_insert", "INSERT", "NEW", "+"),
    _sqlite_bump("subscriptions_count_delete", "DELETE", "OLD", "-"),
    _sqlite_bump(
        "subscriptions_count_update_old", "UPDATE OF status, list_id", "OLD", "-",
        "WHEN OLD.status IS NOT NEW.status OR OLD.list_id IS NOT NEW.list_id",
    ),
    _sqlite_bump(
        "subscriptions_count_update_new", "UPDATE OF status, list_id", "NEW", "+",
        "WHEN OLD.status IS NOT NEW.status OR OLD.list_id IS NOT NEW.list_id",
    ),
]  # fmt: skip


def _kept_counts() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    # No foreign key to lists: a deleted list's members go by cascade and their deltas sum
    # to zero; reading counts always names the lists. No primary key on PostgreSQL either:
    # several delta rows per (list, status) is the point.
    op.create_table(
        "list_member_counts",
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
    )
    op.create_index(
        "ix_list_member_counts_list_id_status",
        "list_member_counts",
        ["list_id", "status"],
        unique=not postgres,
    )
    op.execute(
        "INSERT INTO list_member_counts (list_id, status, n)"
        " SELECT list_id, status, count(*) FROM subscriptions GROUP BY list_id, status"
    )
    if postgres:
        op.execute(PG_COUNT_FUNCTION)
    for statement in PG_TRIGGERS if postgres else SQLITE_TRIGGERS:
        op.execute(statement)


def upgrade() -> None:
    _kept_counts()
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
            "`tidings migrate` after `alembic downgrade 0009`, or create the index of "
            "migration 0017 by hand (ix_subscribers_search_trgm)."
        )
        return
    for name, expression in INDEXES.items():
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON subscribers USING gin ({expression})")
    # The planner's estimates for the new expression index (lower(name)) come from ANALYZE.
    op.execute("ANALYZE subscribers")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in PG_TRIGGERS if postgres else SQLITE_TRIGGERS:
        op.execute(
            f"DROP TRIGGER {statement.split()[2]}" + (" ON subscriptions" if postgres else "")
        )
    if postgres:
        op.execute("DROP FUNCTION list_member_counts_keep()")
    op.drop_table("list_member_counts")
    if not postgres:
        return
    for name in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
