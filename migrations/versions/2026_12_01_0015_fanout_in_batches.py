"""fanout in batches: a large send's recipients fixed by a snapshot, rows written as claimed

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # One row per send too large to write in the send call (app/delivery/fanout.py): its
    # snapshot time, a cursor on subscriber ids and the segment's rules at the send call.
    # A new table only: nothing existing is rebuilt.
    op.create_table(
        "issue_fanouts",
        sa.Column(
            "issue_id",
            sa.Integer(),
            sa.ForeignKey("issues.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("snapshot_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("batch_from", sa.BigInteger(), nullable=False),
        sa.Column("next_subscriber_id", sa.BigInteger(), nullable=False),
        sa.Column("last_subscriber_id", sa.BigInteger(), nullable=False),
        sa.Column("segment_rules", sa.JSON(), nullable=True),
        sa.Column("done", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_table("issue_fanouts")
