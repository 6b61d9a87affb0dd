"""The database schema as SQLAlchemy Core tables. Migrations in services/core/migrations/ create it.

The pipeline stages read and write items through these tables (Core statements on a connection), so a
stage's cold start imports SQLAlchemy's Core and the psycopg dialect but not its ORM (~60 ms of imports
and the mapper's first-use work on this machine). The API maps its ORM classes onto the same tables
(services/core/models.py): one schema, declared once.
"""

from __future__ import annotations

import enum
import uuid

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from services import catalog
from services.core.settings import get_settings

metadata = MetaData()

# Both enums come from the stage table (services/catalog.py STAGES), in its order:
# - ItemStatus: pending (row created, waiting for the upload), each stage's output (processed:
#   validated, thumbnails written; analyzed: described; ready: embedded, searchable), then failed (a
#   stage failed permanently: failed_stage/failure_reason say which and why) and deleted (soft-deleted
#   by the user; cleanup removes objects then the row).
# - Stage: the stages; `failed_stage` names where an item stopped, and retry resumes there.
# A new status or stage is also a value of the database enums item_status/pipeline_stage: its migration
# adds it (ALTER TYPE ... ADD VALUE).
# Their module stays services.core.models, where they have always been (pickles, reprs, docs).
ItemStatus = enum.StrEnum(
    "ItemStatus", [(status, status) for status in catalog.ITEM_STATUSES], module="services.core.models"
)
Stage = enum.StrEnum("Stage", [(name, name) for name in catalog.STAGE_NAMES], module="services.core.models")


def _values(members: type[enum.Enum]) -> list[str]:
    return [m.value for m in members]


items = Table(
    "items",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, default=uuid.uuid4),
    Column("owner_id", String(128), nullable=False),  # Cognito `sub`
    Column(
        "status",
        Enum(ItemStatus, name="item_status", values_callable=_values),
        nullable=False,
        default=ItemStatus.pending,
    ),
    Column("filename", String(255), nullable=False),
    Column("original_key", String(1024), nullable=False, unique=True),
    Column("content_type", String(255)),
    Column("bytes", BigInteger),
    Column("width", Integer),
    Column("height", Integer),
    Column("format", String(16)),
    Column("sha256", String(64)),
    Column("duplicate_of", UUID(as_uuid=True), ForeignKey("items.id", ondelete="SET NULL")),
    Column("thumbnail_keys", JSONB),
    # Recorded once, by the image processor: the thumbnail the analyzer (and retry) read, and the one
    # lists and search hits show. Nothing else picks a size.
    Column("analysis_thumbnail_key", String(1024)),
    Column("list_thumbnail_key", String(1024)),
    Column("title", String(300)),
    Column("description", Text),
    Column("category", String(64)),
    Column("tags", ARRAY(String(64)), nullable=False, default=list, server_default="{}"),
    Column("colors", ARRAY(String(32)), nullable=False, default=list, server_default="{}"),
    Column("visible_text", Text),
    Column("analysis", JSONB),
    Column("analysis_model", String(128)),
    Column("embedding_model", String(128)),
    Column("embedding", Vector(get_settings().embedding_dimension)),
    Column("user_edited", Boolean, nullable=False, default=False, server_default=text("false")),
    Column("failed_stage", Enum(Stage, name="pipeline_stage", values_callable=_values)),
    Column("failure_reason", Text),
    # A stage's claim on the item while it works without a transaction (services/core/stage_runner.py).
    Column("lease_owner", UUID(as_uuid=True)),
    Column("lease_expires_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()),
    Column("processed_at", DateTime(timezone=True)),
    # The image processor wrote the verified bytes under originals/ (what the API serves). False for
    # items processed before that copy existed: their original is the upload object, served as opaque bytes.
    Column("original_verified", Boolean, nullable=False, default=False, server_default=text("false")),
    Column("analyzed_at", DateTime(timezone=True)),
    Column("ready_at", DateTime(timezone=True)),
    Column("deleted_at", DateTime(timezone=True)),
    # Listing: newest first within one owner; id breaks ties so cursors are stable.
    Index("ix_items_owner_created", "owner_id", "created_at", "id"),
    # Duplicate detection per user.
    Index("ix_items_owner_sha256", "owner_id", "sha256"),
    Index("ix_items_status_updated", "status", "updated_at"),
    # Each owner's searchable items, by category: search counts a query's candidates
    # (index-only) to choose exact distances or HNSW (services/api/queries.py).
    Index(
        "ix_items_owner_ready_category",
        "owner_id",
        "category",
        postgresql_where=text("status = 'ready' AND embedding IS NOT NULL"),
    ),
    Index("ix_items_tags", "tags", postgresql_using="gin"),
    Index("ix_items_leased", "lease_expires_at", postgresql_where=text("lease_owner IS NOT NULL")),
    Index(
        "ix_items_embedding_hnsw",
        "embedding",
        postgresql_using="hnsw",
        postgresql_with={"m": 16, "ef_construction": 64},
        postgresql_ops={"embedding": "vector_cosine_ops"},
    ),
)

# How often an owner did something (`kind`) in the current fixed window (services/api/limits.py).
usage_counters = Table(
    "usage_counters",
    metadata,
    Column("owner_id", String(128), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("count", Integer, nullable=False),
)
