"""lean deliveries for fast fan-out

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 14:23:55.607042
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deliveries_claim"))
        batch_op.drop_index(batch_op.f("ix_deliveries_issue_status"))
        batch_op.drop_index(batch_op.f("ix_deliveries_message_id"))
        batch_op.create_index(
            "ix_deliveries_inflight",
            ["lease_owner", "lease_expires_at"],
            unique=False,
            postgresql_where=sa.text("status = 'sending'"),
            sqlite_where=sa.text("status = 'sending'"),
        )
        batch_op.create_index(
            "ix_deliveries_queue", ["issue_id", "status", "next_attempt_at"], unique=False
        )
        batch_op.drop_constraint(batch_op.f("fk_deliveries_issue_id_issues"), type_="foreignkey")
        batch_op.drop_constraint(
            batch_op.f("fk_deliveries_subscriber_id_subscribers"), type_="foreignkey"
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_deliveries_subscriber_id_subscribers"),
            "subscribers",
            ["subscriber_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_deliveries_issue_id_issues"),
            "issues",
            ["issue_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.drop_index("ix_deliveries_queue")
        batch_op.drop_index(
            "ix_deliveries_inflight",
            postgresql_where=sa.text("status = 'sending'"),
            sqlite_where=sa.text("status = 'sending'"),
        )
        batch_op.create_index(batch_op.f("ix_deliveries_message_id"), ["message_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_deliveries_issue_status"), ["issue_id", "status"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_deliveries_claim"), ["status", "next_attempt_at"], unique=False
        )
