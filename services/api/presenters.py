"""Items as the API shows them: database rows plus presigned GET URLs for their objects."""

from __future__ import annotations

from services.api.schemas import ItemDetail, ItemOut, SearchHit
from services.core.models import Item
from services.core.storage import Storage

LIST_THUMBNAIL = "256"  # lists and search hits carry the small thumbnail only


def item_out(item: Item, storage: Storage) -> ItemOut:
    out = ItemOut.model_validate(item)
    key = (item.thumbnail_keys or {}).get(LIST_THUMBNAIL)
    out.thumbnail_url = storage.presigned_get(key) if key else None
    return out


def search_hit(item: Item, distance: float, storage: Storage) -> SearchHit:
    return SearchHit(**item_out(item, storage).model_dump(), distance=distance)


def item_detail(item: Item, storage: Storage) -> ItemDetail:
    detail = ItemDetail.model_validate(item)
    detail.thumbnail_urls = {size: storage.presigned_get(key) for size, key in (item.thumbnail_keys or {}).items()}
    detail.thumbnail_url = detail.thumbnail_urls.get(LIST_THUMBNAIL)
    detail.original_url = storage.presigned_get(item.original_key)
    return detail
