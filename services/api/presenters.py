"""Items as the API shows them: database rows plus presigned GET URLs for their objects."""

from __future__ import annotations

from services.api.schemas import ItemDetail, ItemOut, SearchHit
from services.api.signing import UrlSigner
from services.core.models import Item, Stage
from services.core.storage import FORMAT_TYPES, UNVERIFIED_TYPE, attachment, verified_original_key
from services.core.thumbnails import analysis_thumbnail, list_thumbnail

# What the owner of a failed item reads. The image processor's reasons are ours, short and about
# their file; later stages may hold a provider's or library's words, which stay in the database
# and the logs for operators.
STAGE_REASONS = {
    Stage.analyze: "the image could not be described; retry later",
    Stage.embed: "the image could not be indexed for search; retry later",
}
MAX_PUBLIC_REASON = 200


def public_failure_reason(item: Item) -> str | None:
    if item.failure_reason is None:
        return None
    if item.failed_stage in STAGE_REASONS:
        return STAGE_REASONS[item.failed_stage]
    return item.failure_reason[:MAX_PUBLIC_REASON]


def item_out(item: Item, signer: UrlSigner) -> ItemOut:
    out = ItemOut.model_validate(item)
    out.failure_reason = public_failure_reason(item)
    # Lists and search hits carry the small thumbnail only, as the image processor recorded it.
    small = list_thumbnail(item)
    out.thumbnail_url = signer.url(small) if small else None
    return out


def search_hit(item: Item, distance: float, signer: UrlSigner) -> SearchHit:
    return SearchHit(**item_out(item, signer).model_dump(), distance=distance)


def item_detail(item: Item, signer: UrlSigner) -> ItemDetail:
    detail = ItemDetail.model_validate(item)
    detail.failure_reason = public_failure_reason(item)
    detail.thumbnail_urls = {size: signer.url(key) for size, key in (item.thumbnail_keys or {}).items()}
    small, large = list_thumbnail(item), analysis_thumbnail(item)
    detail.thumbnail_url = signer.url(small) if small else None
    detail.large_thumbnail_url = signer.url(large) if large else None
    detail.original_url = original_url(item, signer)
    return detail


def original_url(item: Item, signer: UrlSigner) -> str:
    """Always a download (Content-Disposition: attachment), never a page on the bucket's origin.
    Once processed: the processor's verified copy, as its verified image type. Before (pending, or
    failed validation, or processed before verified copies existed): the upload itself, whatever it
    is now, as opaque bytes."""
    if item.original_verified and item.format in FORMAT_TYPES:
        return signer.url(
            verified_original_key(item.original_key),
            content_type=FORMAT_TYPES[item.format],
            disposition=attachment(item.filename),
        )
    return signer.url(item.original_key, content_type=UNVERIFIED_TYPE, disposition=attachment(item.filename))
