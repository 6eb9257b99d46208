"""messages in deliveries and routes

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 14:00:00

A transactional message becomes a row of `deliveries` (the one queue every dispatcher
claims from), under the system issue 0 "Transactional messages", linked to the request
it came from by `deliveries.message_ref`; the `messages` table keeps only what the request
carried. Issues and messages may name the SMTP servers they go through (`smtp_route`).
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What deliveries now hold for a message; dropped from `messages` once copied.
_MOVED = ("status", "attempts", "last_error", "next_attempt_at", "lease_owner",
          "lease_expires_at", "message_id", "sent_at")  # fmt: skip


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("message_ref", sa.Integer(), nullable=True))
    # Partial: fan-out's rows carry NULL and never enter it; GET /messages/{id} reads by it.
    op.create_index(
        "ix_deliveries_message_ref", "deliveries", ["message_ref"], unique=True,
        postgresql_where=sa.text("message_ref IS NOT NULL"),
        sqlite_where=sa.text("message_ref IS NOT NULL"),
    )  # fmt: skip
    op.add_column("issues", sa.Column("smtp_route", sa.JSON(), nullable=True))
    op.add_column("messages", sa.Column("smtp_route", sa.JSON(), nullable=True))
    now = datetime.now(UTC)
    issues = sa.table(
        "issues", *(sa.column(c) for c in ("id", "subject", "preheader", "template", "format",
        "body", "status", "recipients", "in_archive", "track_opens", "track_clicks",
        "created_at", "updated_at")),
    )  # fmt: skip
    op.bulk_insert(issues, [{
        "id": 0, "subject": "Transactional messages", "preheader": "", "template": "message",
        "format": "markdown", "body": "", "status": "system", "recipients": 0,
        "in_archive": False, "track_opens": False, "track_clicks": False,
        "created_at": now, "updated_at": now,
    }])  # fmt: skip
    # Every message so far gets its delivery (one in flight goes back to the queue).
    op.execute(
        "INSERT INTO deliveries (issue_id, subscriber_id, status, attempts, next_attempt_at,"
        " last_error, message_id, sent_at, message_ref)"
        " SELECT 0, NULL, CASE WHEN status = 'sending' THEN 'queued' ELSE status END, attempts,"
        " next_attempt_at, last_error, substr(message_id, 1, 255), sent_at, id FROM messages"
    )
    op.drop_index("ix_messages_queue", table_name="messages")
    for column in _MOVED:
        op.drop_column("messages", column)


def downgrade() -> None:
    columns = [
        sa.Column("status", sa.String(16), nullable=False, server_default="queued"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(100), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("message_id", sa.String(300), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    ]
    for column in columns:
        op.add_column("messages", column)
    op.execute(
        "UPDATE messages SET status = (SELECT CASE WHEN d.status IN ('queued', 'sending', 'sent',"
        " 'failed') THEN d.status ELSE 'failed' END FROM deliveries d WHERE d.message_ref ="
        " messages.id), attempts = (SELECT d.attempts FROM deliveries d WHERE d.message_ref ="
        " messages.id), last_error = (SELECT d.last_error FROM deliveries d WHERE d.message_ref"
        " = messages.id), next_attempt_at = COALESCE((SELECT d.next_attempt_at FROM deliveries"
        " d WHERE d.message_ref = messages.id), created_at), message_id = (SELECT d.message_id"
        " FROM deliveries d WHERE d.message_ref = messages.id), sent_at = (SELECT d.sent_at"
        " FROM deliveries d WHERE d.message_ref = messages.id)"
    )
    op.create_index("ix_messages_queue", "messages", ["status", "next_attempt_at"])
    op.execute("DELETE FROM deliveries WHERE message_ref IS NOT NULL")
    op.execute("DELETE FROM issues WHERE id = 0")
    op.drop_column("messages", "smtp_route")
    op.drop_column("issues", "smtp_route")
    op.drop_index("ix_deliveries_message_ref", table_name="deliveries")
    op.drop_column("deliveries", "message_ref")
