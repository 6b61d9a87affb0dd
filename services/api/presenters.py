"""Items as the API shows them: database rows plus presigned GET URLs for their objects."""

from __future__ import annotations

from services.api.schemas import ItemDetail, ItemOut, SearchHit
from services.api.signing import UrlSigner
from services.core.models import Item

LIST_THUMBNAIL = "256"  # lists and search hits carry the small thumbnail only


def item_out(item: Item, signer: UrlSigner) -> ItemOut:
    out = ItemOut.model_validate(item)
    key = (item.thumbnail_keys or {}).get(LIST_THUMBNAIL)
    out.thumbnail_url = signer.url(key) if key else None
    return out


def search_hit(item: Item, distance: float, signer: UrlSigner) -> SearchHit:
    return SearchHit(**item_out(item, signer).model_dump(), distance=distance)


def item_detail(item: Item, signer: UrlSigner) -> ItemDetail:
    detail = ItemDetail.model_validate(item)
    detail.thumbnail_urls = {size: signer.url(key) for size, key in (item.thumbnail_keys or {}).items()}
    detail.thumbnail_url = detail.thumbnail_urls.get(LIST_THUMBNAIL)
    detail.original_url = signer.url(item.original_key)
    return detail
