"""pgvector extension, items table and its indexes.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects import postgresql

from services.core.settings import get_settings

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

STATUSES = ("pending", "processed", "analyzed", "ready", "failed", "deleted")
STAGES = ("process", "analyze", "embed")


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    status = postgresql.ENUM(*STATUSES, name="item_status", create_type=False)
    stage = postgresql.ENUM(*STAGES, name="pipeline_stage", create_type=False)
    status.create(op.get_bind(), checkfirst=True)
    stage.create(op.get_bind(), checkfirst=True)
    op.create_table(
        "items",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("owner_id", sa.String(128), nullable=False),
        sa.Column("status", status, nullable=False, server_default="pending"),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("original_key", sa.String(1024), nullable=False, unique=True),
        sa.Column("content_type", sa.String(255)),
        sa.Column("bytes", sa.BigInteger),
        sa.Column("width", sa.Integer),
        sa.Column("height", sa.Integer),
        sa.Column("format", sa.String(16)),
        sa.Column("sha256", sa.String(64)),
        sa.Column("duplicate_of", postgresql.UUID(as_uuid=True), sa.ForeignKey("items.id", ondelete="SET NULL")),
        sa.Column("thumbnail_keys", postgresql.JSONB),
        sa.Column("title", sa.String(300)),
        sa.Column("description", sa.Text),
        sa.Column("category", sa.String(64)),
        sa.Column("tags", postgresql.ARRAY(sa.String(64)), nullable=False, server_default="{}"),
        sa.Column("colors", postgresql.ARRAY(sa.String(32)), nullable=False, server_default="{}"),
        sa.Column("visible_text", sa.Text),
        sa.Column("analysis", postgresql.JSONB),
        sa.Column("analysis_model", sa.String(128)),
        sa.Column("embedding_model", sa.String(128)),
        sa.Column("embedding", Vector(get_settings().embedding_dimension)),
        sa.Column("user_edited", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("failed_stage", stage),
        sa.Column("failure_reason", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("processed_at", sa.DateTime(timezone=True)),
        sa.Column("analyzed_at", sa.DateTime(timezone=True)),
        sa.Column("ready_at", sa.DateTime(timezone=True)),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_items_owner_created", "items", ["owner_id", "created_at", "id"])
    op.create_index("ix_items_owner_sha256", "items", ["owner_id", "sha256"])
    op.create_index("ix_items_status_updated", "items", ["status", "updated_at"])
    op.create_index("ix_items_tags", "items", ["tags"], postgresql_using="gin")
    op.create_index(
        "ix_items_embedding_hnsw",
        "items",
        ["embedding"],
        postgresql_using="hnsw",
        postgresql_with={"m": 16, "ef_construction": 64},
        postgresql_ops={"embedding": "vector_cosine_ops"},
    )


def downgrade() -> None:
    op.drop_table("items")
    op.execute("DROP TYPE IF EXISTS pipeline_stage")
    op.execute("DROP TYPE IF EXISTS item_status")
    # The extension stays: other schemas in the same database may use it.
