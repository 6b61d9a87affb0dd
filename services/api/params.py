"""Query parameters shared by list, search and similar: filters, page size and k.

Bounds that come from settings (page_size_max, search_k_max, query_max_chars) are checked here
with a clear message, since FastAPI's static Query(le=...) cannot read them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query

from services.api.deps import SettingsDep
from services.api.errors import invalid
from services.api.queries import ItemFilters, as_utc
from services.api.schemas import Tag, Text, VisibleStatus, bounded
from services.core.models import ItemStatus

MAX_TAG_FILTERS = 10


def _bounded_text(name: str, value: str | None, max_chars: int) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > max_chars:
        raise invalid(f"{name} is {len(value)} characters; at most {max_chars} are allowed")
    return value or None


def _created_range(created_after: datetime | None, created_before: datetime | None) -> tuple:
    after, before = as_utc(created_after), as_utc(created_before)
    if after is not None and before is not None and after >= before:
        raise invalid("created_after must be earlier than created_before", 400)
    return after, before


async def common_filters(
    category: Annotated[bounded(64) | None, Query(description="Exact category.")] = None,  # type: ignore[valid-type]
    tag: Annotated[
        list[Tag] | None, Query(max_length=MAX_TAG_FILTERS, description="Items carrying every given tag.")
    ] = None,
    created_after: Annotated[
        datetime | None, Query(description="Created at or after (ISO 8601; UTC if naive).")
    ] = None,
    created_before: Annotated[datetime | None, Query(description="Created before (ISO 8601; UTC if naive).")] = None,
) -> ItemFilters:
    after, before = _created_range(created_after, created_before)
    return ItemFilters(
        category=category, tags=tuple(dict.fromkeys(tag or ())), created_after=after, created_before=before
    )


CommonFilters = Annotated[ItemFilters, Depends(common_filters)]


async def list_filters(
    settings: SettingsDep,
    common: CommonFilters,
    status: Annotated[VisibleStatus | None, Query(description="Only items in this state.")] = None,
    q: Annotated[Text | None, Query(description="Text in title, description or tags (case-insensitive).")] = None,
) -> ItemFilters:
    text = _bounded_text("q", q, settings.query_max_chars)
    return ItemFilters(
        status=ItemStatus(status) if status else None,
        category=common.category,
        tags=common.tags,
        text=text,
        created_after=common.created_after,
        created_before=common.created_before,
    )


ListFilters = Annotated[ItemFilters, Depends(list_filters)]


async def page_size(
    settings: SettingsDep,
    limit: Annotated[int | None, Query(ge=1, description="Page size (default and maximum from settings).")] = None,
) -> int:
    if limit is None:
        return min(settings.page_size_default, settings.page_size_max)
    if limit > settings.page_size_max:
        raise invalid(f"limit must be at most {settings.page_size_max}")
    return limit


PageSize = Annotated[int, Depends(page_size)]


async def neighbours(
    settings: SettingsDep,
    k: Annotated[int, Query(ge=1, description="How many results (at most search_k_max).")] = 10,
) -> int:
    if k > settings.search_k_max:
        raise invalid(f"k must be at most {settings.search_k_max}")
    return k


K = Annotated[int, Depends(neighbours)]


async def search_query(
    settings: SettingsDep,
    q: Annotated[Text, Query(description="What to look for, in words.")],
) -> str:
    text = _bounded_text("q", q, settings.query_max_chars)
    if not text:
        raise invalid("q must not be empty")
    return text
