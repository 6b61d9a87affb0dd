"""Request and response bodies of the HTTP API. Inputs forbid unknown fields (a typo is a 422, not a no-op)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from services.core.models import ItemStatus, Stage

_IMAGE_TYPE = re.compile(r"^image/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$")


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
    if not _IMAGE_TYPE.match(value):
        raise ValueError("must be an image/* media type such as image/jpeg")
    return value.lower()


Text = Annotated[str, AfterValidator(_storable)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), AfterValidator(_storable)]
# What list and search may filter on: deleted items are invisible to every read.
VisibleStatus = Literal["pending", "processed", "analyzed", "ready", "failed"]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UploadRequest(Input):
    filename: Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
    content_type: Annotated[
        Text, StringConstraints(strip_whitespace=True, max_length=128), AfterValidator(_image_type)
    ] = Field(description="The image's media type; must be image/* (the upload policy pins it).")
    size: int | None = Field(default=None, ge=1, description="Declared size in bytes (checked against the limit).")


class ItemPatch(Input):
    """User edits. Only the fields sent change; `title`/`description` may be null to clear them."""

    title: Annotated[Text, StringConstraints(strip_whitespace=True, max_length=300)] | None = None
    description: Annotated[Text, StringConstraints(max_length=10_000)] | None = None
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
    thumbnail_url: str | None = Field(default=None, description="Presigned GET of the 256 px thumbnail.")


class ItemDetail(ItemOut):
    sha256: str | None = None
    duplicate_of: uuid.UUID | None = None
    analysis_model: str | None = None
    embedding_model: str | None = None
    original_url: str | None = Field(default=None, description="Presigned GET of the original.")
    thumbnail_urls: dict[str, str] = Field(default_factory=dict, description="Presigned GETs by size.")


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
    status: Literal["ok"]


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
