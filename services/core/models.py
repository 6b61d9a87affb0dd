"""The database schema (SQLAlchemy 2 declarative). Migrations in services/core/migrations/ create it."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import BigInteger, DateTime, Enum, ForeignKey, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services import catalog
from services.core.settings import get_settings


class Base(DeclarativeBase):
    pass


# Both enums come from the stage table (services/catalog.py STAGES), in its order:
# - ItemStatus: pending (row created, waiting for the upload), each stage's output (processed:
#   validated, thumbnails written; analyzed: described; ready: embedded, searchable), then failed (a
#   stage failed permanently: failed_stage/failure_reason say which and why) and deleted (soft-deleted
#   by the user; cleanup removes objects then the row).
# - Stage: the stages; `failed_stage` names where an item stopped, and retry resumes there.
# A new status or stage is also a value of the database enums item_status/pipeline_stage: its migration
# adds it (ALTER TYPE ... ADD VALUE).
ItemStatus = enum.StrEnum("ItemStatus", [(status, status) for status in catalog.ITEM_STATUSES], module=__name__)
Stage = enum.StrEnum("Stage", [(name, name) for name in catalog.STAGE_NAMES], module=__name__)


class Item(Base):
    __tablename__ = "items"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[str] = mapped_column(String(128), nullable=False)  # Cognito `sub`
    status: Mapped[ItemStatus] = mapped_column(
        Enum(ItemStatus, name="item_status", values_callable=lambda e: [m.value for m in e]),
        nullable=False,
        default=ItemStatus.pending,
    )
    filename: Mapped[str] = mapped_column(String(255), nullable=False)
    original_key: Mapped[str] = mapped_column(String(1024), nullable=False, unique=True)
    content_type: Mapped[str | None] = mapped_column(String(255))
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    format: Mapped[str | None] = mapped_column(String(16))
    sha256: Mapped[str | None] = mapped_column(String(64))
    duplicate_of: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("items.id", ondelete="SET NULL")
    )
    thumbnail_keys: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    # Recorded once, by the image processor: the thumbnail the analyzer (and retry) read, and the one
    # lists and search hits show. Nothing else picks a size.
    analysis_thumbnail_key: Mapped[str | None] = mapped_column(String(1024))
    list_thumbnail_key: Mapped[str | None] = mapped_column(String(1024))

    title: Mapped[str | None] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(64))
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(64)), nullable=False, default=list, server_default="{}")
    colors: Mapped[list[str]] = mapped_column(ARRAY(String(32)), nullable=False, default=list, server_default="{}")
    visible_text: Mapped[str | None] = mapped_column(Text)
    analysis: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    analysis_model: Mapped[str | None] = mapped_column(String(128))
    embedding_model: Mapped[str | None] = mapped_column(String(128))
    embedding: Mapped[list[float] | None] = mapped_column(Vector(get_settings().embedding_dimension))
    user_edited: Mapped[bool] = mapped_column(default=False, server_default=text("false"))

    failed_stage: Mapped[Stage | None] = mapped_column(
        Enum(Stage, name="pipeline_stage", values_callable=lambda e: [m.value for m in e])
    )
    failure_reason: Mapped[str | None] = mapped_column(Text)
    # A stage's claim on the item while it works without a transaction (services/core/stage_runner.py).
    lease_owner: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The image processor wrote the verified bytes under originals/ (what the API serves). False for
    # items processed before that copy existed: their original is the upload object, served as opaque bytes.
    original_verified: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    analyzed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ready_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
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


class UsageCounter(Base):
    """How often an owner did something (`kind`) in the current fixed window (services/api/limits.py)."""

    __tablename__ = "usage_counters"

    owner_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    count: Mapped[int] = mapped_column(Integer, nullable=False)
