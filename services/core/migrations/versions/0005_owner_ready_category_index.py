"""Each owner's searchable items by category: search counts the candidates of a filtered query
(index-only) to choose exact distances or the HNSW scan. Replaces ix_items_owner_ready, whose
owner_id column leads this index.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_items_owner_ready_category ON items (owner_id, category) "
        "WHERE status = 'ready' AND embedding IS NOT NULL"
    )
    op.execute("DROP INDEX IF EXISTS ix_items_owner_ready")


def downgrade() -> None:
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_items_owner_ready ON items (owner_id) "
        "WHERE status = 'ready' AND embedding IS NOT NULL"
    )
    op.execute("DROP INDEX IF EXISTS ix_items_owner_ready_category")
