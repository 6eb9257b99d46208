"""audience events: the sender finds the events not yet fanned out without reading the rest

Imports now write one webhook event per person (200,000 rows, two events each), and the
outbox keeps finished events for 30 days. The sender's `fan_out` asks for the oldest
events with `fanned_out = false`: a partial index on created_at holding only those rows
answers it from the few pending entries, where the boolean index made it read them all.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A new index only: no table is rebuilt.
    op.create_index(
        "ix_webhook_events_unfanned",
        "webhook_events",
        ["created_at"],
        postgresql_where=sa.text("fanned_out = false"),
        sqlite_where=sa.text("fanned_out = 0"),
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_events_unfanned", table_name="webhook_events")
