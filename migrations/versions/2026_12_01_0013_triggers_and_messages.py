"""triggered issues and transactional messages

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A triggered issue's rule lives beside the issue, not in it: most issues have none.
    # Its deliveries wait in the ordinary queue with next_attempt_at = confirmed_at + N,
    # so the claim index (issue_id, status, next_attempt_at) serves the wait as well.
    op.create_table(
        "issue_triggers",
        sa.Column(
            "issue_id",
            sa.Integer(),
            sa.ForeignKey("issues.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "list_id", sa.Integer(), sa.ForeignKey("lists.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("after_seconds", sa.Integer(), nullable=False),
    )
    op.create_index("ix_issue_triggers_list", "issue_triggers", ["list_id"])


def downgrade() -> None:
    op.drop_index("ix_issue_triggers_list", table_name="issue_triggers")
    op.drop_table("issue_triggers")
