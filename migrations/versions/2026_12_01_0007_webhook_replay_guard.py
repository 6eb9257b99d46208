"""bounce webhooks: tokens seen within the freshness window

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # One row per signed webhook token accepted; the primary key is what refuses a replay,
    # in every process that shares the database.
    op.create_table(
        "webhook_tokens",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_webhook_tokens")),
    )
    op.create_index(op.f("ix_webhook_tokens_seen_at"), "webhook_tokens", ["seen_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_webhook_tokens_seen_at"), table_name="webhook_tokens")
    op.drop_table("webhook_tokens")
