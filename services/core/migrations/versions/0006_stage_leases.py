"""Stage leases instead of pipeline_locks; the thumbnails for analysis and listing, recorded once.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

1. items.lease_owner / items.lease_expires_at: a stage claims an item in a short transaction
   (services/core/stage_runner.py) and calls its model with no transaction open, so no row lock is
   held across a model call any more; pipeline_locks goes. The partial index finds what cleanup
   looks for: items whose lease is set (live or expired).
2. items.analysis_thumbnail_key / items.list_thumbnail_key: the image processor records which of
   the item's thumbnails the analyzer (and retry) read and which lists show, so nothing else picks a
   size. Existing rows: the largest and the smallest of their thumbnail_keys.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


# Per existing row: its largest thumbnail for analysis, its smallest for lists (sizes are the keys).
BACKFILL = """
UPDATE items SET
    analysis_thumbnail_key = (SELECT value FROM jsonb_each_text(thumbnail_keys) WHERE key ~ '^[0-9]+$'
                              ORDER BY key::int DESC LIMIT 1),
    list_thumbnail_key = (SELECT value FROM jsonb_each_text(thumbnail_keys) WHERE key ~ '^[0-9]+$'
                          ORDER BY key::int ASC LIMIT 1)
WHERE thumbnail_keys IS NOT NULL AND thumbnail_keys <> '{}'::jsonb
"""


def upgrade() -> None:
    op.add_column("items", sa.Column("lease_owner", postgresql.UUID(as_uuid=True), nullable=True))
    op.add_column("items", sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("items", sa.Column("analysis_thumbnail_key", sa.String(1024), nullable=True))
    op.add_column("items", sa.Column("list_thumbnail_key", sa.String(1024), nullable=True))
    op.create_index(
        "ix_items_leased", "items", ["lease_expires_at"], postgresql_where=sa.text("lease_owner IS NOT NULL")
    )
    op.execute(BACKFILL)
    op.drop_index("ix_pipeline_locks_item_id", table_name="pipeline_locks")
    op.drop_table("pipeline_locks")


def downgrade() -> None:
    op.create_table(
        "pipeline_locks",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column(
            "item_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("items.id", ondelete="CASCADE"),
            nullable=False,
        ),
    )
    op.create_index("ix_pipeline_locks_item_id", "pipeline_locks", ["item_id"])
    op.drop_index("ix_items_leased", table_name="items")
    for column in ("list_thumbnail_key", "analysis_thumbnail_key", "lease_expires_at", "lease_owner"):
        op.drop_column("items", column)
