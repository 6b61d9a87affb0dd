"""Request and response bodies of the HTTP API. Inputs forbid unknown fields (a typo is a 422, not a no-op)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from services import catalog
from services.core import storage
from services.core.models import ItemStatus, Stage


def _storable(value: str) -> str:
    """PostgreSQL text cannot hold NUL, and UTF-8 cannot hold lone surrogates: refuse both here so
    no input reaches the database (or a JSON response) that would fail there with a 500."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


def _image_type(value: str) -> str:
    return storage.image_type(value)  # case-insensitive in, lowercase out (IMAGE/JPEG is image/jpeg)


def bounded(max_length: int, *, strip: bool = True, min_length: int = 0) -> Any:
    """A storable string of at most `max_length` characters. The length check comes first, on the
    str itself: placed after a function validator, pydantic would report it in list terms ("items")."""
    return Annotated[
        str,
        StringConstraints(strip_whitespace=strip, min_length=min_length, max_length=max_length),
        AfterValidator(_storable),
    ]


Text = Annotated[str, AfterValidator(_storable)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), AfterValidator(_storable)]
# What list and search may filter on: deleted items are invisible to every read.
VisibleStatus = Literal[catalog.VISIBLE_STATUSES]  # type: ignore[valid-type]  # from the stage table


class Input(BaseModel):
    # strict: JSON types are taken as sent. A size of "100" (a string) or true is refused, not coerced.
    model_config = ConfigDict(extra="forbid", strict=True)


class UploadRequest(Input):
    filename: bounded(255, min_length=1)  # type: ignore[valid-type]
    content_type: Annotated[bounded(128), AfterValidator(_image_type)] = Field(  # type: ignore[valid-type]
        description="The image's media type: one of " + ", ".join(storage.IMAGE_TYPES) + " (any letter case). "
        "The upload policy pins it and the processor checks the file really is that type."
    )
    size: int | None = Field(
        default=None, ge=1, description="Declared size in bytes, a JSON integer (checked against the limit)."
    )


class ItemPatch(Input):
    """User edits. Only the fields sent change; `title`/`description` may be null to clear them."""

    title: bounded(300) | None = None  # type: ignore[valid-type]
    description: bounded(10_000, strip=False) | None = None  # type: ignore[valid-type]
    tags: Annotated[list[Tag], Field(max_length=50)] | None = None


class PresignedPost(BaseModel):
    url: str
    fields: dict[str, str]
    key: str
    expires_in: int


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    status: ItemStatus
    filename: str
    content_type: str | None = None
    bytes: int | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    title: str | None = None
    description: str | None = None
    category: str | None = None
    tags: list[str] = []
    colors: list[str] = []
    visible_text: str | None = None
    user_edited: bool = False
    failed_stage: Stage | None = None
    failure_reason: str | None = None
    created_at: datetime
    updated_at: datetime
    ready_at: datetime | None = None
    thumbnail_url: str | None = Field(default=None, description="Presigned GET of the small (list) thumbnail.")


class ItemDetail(ItemOut):
    sha256: str | None = None
    duplicate_of: uuid.UUID | None = None
    analysis_model: str | None = None
    embedding_model: str | None = None
    original_url: str | None = Field(default=None, description="Presigned GET of the original.")
    thumbnail_urls: dict[str, str] = Field(default_factory=dict, description="Presigned GETs by size.")
    large_thumbnail_url: str | None = Field(
        default=None, description="Presigned GET of the large thumbnail (the one the analyzer described)."
    )


class UploadResponse(BaseModel):
    item: ItemOut
    upload: PresignedPost


class ItemPage(BaseModel):
    items: list[ItemOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class SearchHit(ItemOut):
    distance: float = Field(description="Cosine distance to the query (0 = same direction).")


class SearchResults(BaseModel):
    items: list[SearchHit]
    model: str = Field(description="The embedding model that embedded the query.")


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unavailable"]


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
