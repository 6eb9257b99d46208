"""issue in_archive and status_reason

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 11:00:00

`status_reason` has existed since 0001; this revision adds `in_archive`. Issues already
sent to a private list leave the archive: before this column every sent issue was public,
which is the leak this revision closes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "issues",
        sa.Column("in_archive", sa.Boolean(), nullable=False, server_default=sa.true()),
    )
    op.execute(
        "UPDATE issues SET in_archive = false WHERE EXISTS (SELECT 1 FROM issue_lists il"
        " JOIN lists l ON l.id = il.list_id WHERE il.issue_id = issues.id AND NOT l.public)"
    )


def downgrade() -> None:
    with op.batch_alter_table("issues") as batch:
        batch.drop_column("in_archive")
