"""engagement: issue links, events, rollups

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 11:50:00

`issue_links` is each issue's link table, written when the issue is compiled for sending:
a redirect only ever leads to a URL held here. It has no foreign key to `issues`, so a
link in an old message still leads somewhere after its issue is deleted.

`engagement_counts` are the rollups the reports read (one row per issue, kind, link, hour
and verdict: '' for a person, else the first reason a machine was judged one);
`engagement_seen` holds keyed digests of the deliveries already counted, so unique counts
need no event row; `engagement_events` exist only in `individual` mode.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STAMP = sa.DateTime(timezone=True)
BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Plain ADD COLUMN, never a batch rebuild: rebuilding `issues` on SQLite would drop its
    # AUTOINCREMENT (0003: ids never reused) and the segment foreign key's ON DELETE SET NULL.
    for column in ("track_opens", "track_clicks"):
        op.add_column(
            "issues", sa.Column(column, sa.Boolean(), nullable=False, server_default=sa.true())
        )
    op.create_table(
        "issue_links",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("issue_id", "idx", name="pk_issue_links"),
    )
    op.create_table(
        "engagement_counts",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("link_idx", sa.Integer(), nullable=False),
        sa.Column("bucket", STAMP, nullable=False),
        sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("uniq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "issue_id", "kind", "link_idx", "bucket", "verdict", name="pk_engagement_counts"
        ),
    )
    op.create_table(
        "engagement_seen",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("link_idx", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint(
            "issue_id", "kind", "link_idx", "digest", name="pk_engagement_seen"
        ),
    )
    op.create_table(
        "engagement_events",
        sa.Column("id", BIG, primary_key=True),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", BIG, nullable=True),
        sa.Column(
            "subscriber_id",
            BIG,
            sa.ForeignKey(
                "subscribers.id",
                name="fk_engagement_events_subscriber_id_subscribers",
                ondelete="CASCADE",
            ),
            nullable=True,
        ),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("link_idx", sa.Integer(), nullable=False),
        sa.Column("at", STAMP, nullable=False),
        sa.Column("machine", sa.Boolean(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_engagement_events"),
    )
    op.create_index(
        "ix_engagement_events_subscriber_id_at", "engagement_events", ["subscriber_id", "at"]
    )
    op.create_index("ix_engagement_events_at", "engagement_events", ["at"])


def downgrade() -> None:
    op.drop_index("ix_engagement_events_at", "engagement_events")
    op.drop_index("ix_engagement_events_subscriber_id_at", "engagement_events")
    op.drop_table("engagement_events")
    op.drop_table("engagement_seen")
    op.drop_table("engagement_counts")
    op.drop_table("issue_links")
    with op.batch_alter_table("issues") as batch:
        batch.drop_column("track_clicks")
        batch.drop_column("track_opens")
