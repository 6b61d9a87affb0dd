"""Partial index of each owner's searchable items: search counts them to pick exact or HNSW.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_items_owner_ready ON items (owner_id) "
        "WHERE status = 'ready' AND embedding IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_items_owner_ready")
