"""Per-user usage counters behind the API's limits (uploads per day, searches per minute).

One row per (owner, kind) holding the current fixed window and its count, bumped by one atomic
INSERT ... ON CONFLICT DO UPDATE: shared by every Lambda instance, no advisory locks, no session
state (RDS Proxy and PgBouncer friendly), and bounded in size (a row per user and kind).

items.original_verified: the image processor keeps the verified bytes under originals/; rows
processed before this revision have no such copy (false: the API serves their upload object).

Revision ID: 0004
Revises: 0003_i8db
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003_i8db"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_counters",
        sa.Column("owner_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("owner_id", "kind", name="pk_usage_counters"),
    )
    op.add_column("items", sa.Column("original_verified", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    op.drop_column("items", "original_verified")
    op.drop_table("usage_counters")
