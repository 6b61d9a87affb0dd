"""The ORM classes of the API: SQLAlchemy 2 declarative, mapped onto the Core tables of
services/core/tables.py (the schema, declared once; the pipeline stages use those tables without the ORM).
Migrations in services/core/migrations/ create it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import DeclarativeBase, Mapped

from services.core import tables
from services.core.tables import ItemStatus, Stage

__all__ = ["Base", "Item", "ItemStatus", "Stage", "UsageCounter"]


class Base(DeclarativeBase):
    metadata = tables.metadata


class Item(Base):
    __table__ = tables.items

    id: Mapped[uuid.UUID]
    owner_id: Mapped[str]
    status: Mapped[ItemStatus]
    filename: Mapped[str]
    original_key: Mapped[str]
    content_type: Mapped[str | None]
    bytes: Mapped[int | None]
    width: Mapped[int | None]
    height: Mapped[int | None]
    format: Mapped[str | None]
    sha256: Mapped[str | None]
    duplicate_of: Mapped[uuid.UUID | None]
    thumbnail_keys: Mapped[dict[str, str] | None]
    analysis_thumbnail_key: Mapped[str | None]
    list_thumbnail_key: Mapped[str | None]
    title: Mapped[str | None]
    description: Mapped[str | None]
    category: Mapped[str | None]
    tags: Mapped[list[str]]
    colors: Mapped[list[str]]
    visible_text: Mapped[str | None]
    analysis: Mapped[dict[str, Any] | None]
    analysis_model: Mapped[str | None]
    embedding_model: Mapped[str | None]
    embedding: Mapped[list[float] | None]
    user_edited: Mapped[bool]
    failed_stage: Mapped[Stage | None]
    failure_reason: Mapped[str | None]
    lease_owner: Mapped[uuid.UUID | None]
    lease_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]
    original_verified: Mapped[bool]
    analyzed_at: Mapped[datetime | None]
    ready_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]


class UsageCounter(Base):
    """How often an owner did something (`kind`) in the current fixed window (services/api/limits.py)."""

    __table__ = tables.usage_counters

    owner_id: Mapped[str]
    kind: Mapped[str]
    window_start: Mapped[datetime]
    count: Mapped[int]
