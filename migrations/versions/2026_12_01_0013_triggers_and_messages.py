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
    # A transactional message is its own queue entry, claimed under a lease like a delivery.
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True, unique=True),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column(
            "subscriber_id",
            sa.Integer(),
            sa.ForeignKey("subscribers.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("message_id", sa.String(length=300), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_messages_queue", "messages", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_messages_queue", table_name="messages")
    op.drop_table("messages")
    op.drop_index("ix_issue_triggers_list", table_name="issue_triggers")
    op.drop_table("issue_triggers")
