"""segments: saved audience rules; issues.segment

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 11:00:00

`segments` holds named rules (JSON data of the segment grammar, never SQL). An issue may
name one in `segment_id`: its recipients are its lists' members who also match. The
foreign key sets NULL when a segment goes, which the service allows only once no
unfinished issue uses it, so a sent issue outlives the segment it was sent to.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# `subscribers.attributes` is `json` (text, 0001): every `->` parses the whole document
# again, and one value holding \u0000 makes every `->` on that row an error. Segments read
# this stored jsonb copy instead (parsed once, at write time): 2-5 times faster at a
# million rows. A document whose text holds \u0000 (jsonb cannot) is copied as NULL, so
# segments treat its attributes as unknown, as they do on SQLite (app/segments/attributes.py).
ATTRIBUTES_JSONB = r"""
ALTER TABLE subscribers ADD COLUMN attributes_jsonb jsonb GENERATED ALWAYS AS (
  CASE WHEN strpos(attributes::text, '\u0000') > 0 THEN NULL ELSE attributes::jsonb END
) STORED
"""


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_segments"),
    )
    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds a column with a foreign key in place when it defaults to NULL; a
        # batch rebuild would drop `issues`, and with foreign keys on, its issue_lists.
        op.execute(
            "ALTER TABLE issues ADD COLUMN segment_id INTEGER"
            " REFERENCES segments (id) ON DELETE SET NULL"
        )
    else:
        op.add_column("issues", sa.Column("segment_id", sa.Integer(), nullable=True))
        op.create_foreign_key(
            "fk_issues_segment_id_segments", "issues", "segments", ["segment_id"], ["id"],
            ondelete="SET NULL",
        )  # fmt: skip
    op.create_index("ix_issues_segment_id", "issues", ["segment_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(ATTRIBUTES_JSONB)
    # The same index, now ending with subscriber_id: list membership in a segment (and a
    # list's counts, as before) are answered from the index alone, in subscriber order, so
    # PostgreSQL merge-joins it with the subscribers' primary key instead of hashing a
    # scan of every subscription.
    op.drop_index("ix_subscriptions_list_status", "subscriptions")
    op.create_index(
        "ix_subscriptions_list_status", "subscriptions", ["list_id", "status", "subscriber_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_subscriptions_list_status", "subscriptions")
    op.create_index("ix_subscriptions_list_status", "subscriptions", ["list_id", "status"])
    if op.get_bind().dialect.name == "postgresql":
        op.drop_column("subscribers", "attributes_jsonb")
    op.drop_index("ix_issues_segment_id", "issues")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE issues DROP COLUMN segment_id")
    else:
        op.drop_constraint("fk_issues_segment_id_segments", "issues", type_="foreignkey")
        op.drop_column("issues", "segment_id")
    op.drop_table("segments")
