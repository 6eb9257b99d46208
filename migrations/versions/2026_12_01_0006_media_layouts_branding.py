"""media library, stored layouts, branding settings

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 11:00:00

`media` holds what the library knows of each stored image (the bytes live in the media
store under generated keys); `email_layouts` holds the MJML layouts owners add from the
console; `site_settings` is a small key/value table for what the console may change over
the environment's defaults (branding).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "media",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("key", sa.String(80), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("content_type", sa.String(32), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("email_key", sa.String(80), nullable=True),
        sa.Column("email_width", sa.Integer(), nullable=True),
        sa.Column("email_height", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_media"),
        sa.UniqueConstraint("key", name="uq_media_key"),
    )
    op.create_table(
        "email_layouts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("mjml", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_email_layouts"),
        sa.UniqueConstraint("name", name="uq_email_layouts_name"),
    )
    op.create_table(
        "site_settings",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_site_settings"),
    )


def downgrade() -> None:
    op.drop_table("site_settings")
    op.drop_table("email_layouts")
    op.drop_table("media")
