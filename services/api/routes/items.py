"""The caller's items: list, read, edit, soft delete, retry. Someone else's item is a 404, always."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import func

from services.api import limits
from services.api.deps import CurrentUser, PublisherDep, SessionDep, SettingsDep, SignerDep, threaded
from services.api.errors import AUTHENTICATED, ApiError, error_responses, invalid, not_found
from services.api.params import ListFilters, PageSize
from services.api.presenters import item_detail, item_out
from services.api.queries import InvalidCursor, get_visible, list_page
from services.api.schemas import ItemDetail, ItemOut, ItemPage, ItemPatch
from services.core import retry
from services.core.contracts import ItemEdited
from services.core.events import PublishError
from services.core.item_text import text_sha256
from services.core.models import ItemStatus

router = APIRouter(prefix="/items", tags=["items"])
ITEM = (*AUTHENTICATED, 404)


@router.get("", response_model=ItemPage, responses=error_responses(*AUTHENTICATED, 400))
@threaded
def list_items(
    user: CurrentUser,
    session: SessionDep,
    signer: SignerDep,
    filters: ListFilters,
    limit: PageSize,
    cursor: Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page.")] = None,
) -> ItemPage:
    try:
        items, next_cursor = list_page(session, user.sub, filters, limit, cursor)
    except InvalidCursor as error:
        raise invalid(str(error), 400) from None
    return ItemPage(items=[item_out(item, signer) for item in items], next_cursor=next_cursor)


@router.get("/{item_id}", response_model=ItemDetail, responses=error_responses(*ITEM))
@threaded
def get_item(item_id: uuid.UUID, user: CurrentUser, session: SessionDep, signer: SignerDep) -> ItemDetail:
    item = get_visible(session, user.sub, item_id)
    if item is None:
        raise not_found()
    return item_detail(item, signer)


@router.patch("/{item_id}", response_model=ItemOut, responses=error_responses(*ITEM, 400, 415, 429))
@threaded
def update_item(
    item_id: uuid.UUID,
    patch: ItemPatch,
    user: CurrentUser,
    session: SessionDep,
    signer: SignerDep,
    publisher: PublisherDep,
    settings: SettingsDep,
) -> ItemOut:
    """Edit title, description or tags. A searchable item is embedded again with the new text."""
    changes = patch.model_dump(exclude_unset=True)
    if not changes:
        raise invalid("nothing to change: send at least one of title, description, tags")
    if "tags" in changes and changes["tags"] is None:
        raise invalid("tags cannot be null; send [] to clear them")
    item = get_visible(session, user.sub, item_id, for_update=True)
    if item is None:
        raise not_found()
    before = text_sha256(item)
    for name, value in changes.items():
        setattr(item, name, list(dict.fromkeys(value)) if name == "tags" else value)
    # The analyzer keeps user edits when an item is analysed again.
    item.user_edited = True
    after = text_sha256(item)
    if after != before and item.status in (ItemStatus.analyzed, ItemStatus.ready):
        # Search must find the edit: the embedder embeds the item again (it stays ready, with its
        # old vector, meanwhile). Published before the commit, like the pipeline's own events: if
        # publishing fails nothing is saved; the embedder waits briefly for this commit to show.
        # Each re-embedding is a paid Voyage call: counted (and refused over the limit) first.
        limits.check_reembed(session, user.sub, settings)
        try:
            publisher.publish([ItemEdited(item_id=item.id, owner_id=item.owner_id, text_sha256=after)])
        except PublishError:
            session.rollback()
            raise ApiError(503, "unavailable", "the edit could not be saved; try again shortly") from None
    session.commit()
    return item_out(item, signer)


@router.delete("/{item_id}", status_code=204, responses=error_responses(*ITEM))
@threaded
def delete_item(item_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> Response:
    """Soft delete: the item disappears from every read at once; the cleanup function removes its
    objects and then the row on its next run."""
    item = get_visible(session, user.sub, item_id, for_update=True)
    if item is None:
        raise not_found()
    item.status = ItemStatus.deleted
    item.deleted_at = func.now()
    session.commit()
    return Response(status_code=204)


@router.post(
    "/{item_id}/retry",
    response_model=ItemOut,
    responses=error_responses(*ITEM, 409, 429, s409="The item is not failed"),
)
@threaded
def retry_item(
    item_id: uuid.UUID,
    user: CurrentUser,
    session: SessionDep,
    signer: SignerDep,
    publisher: PublisherDep,
    settings: SettingsDep,
) -> ItemOut:
    """Resume a failed item at the stage that failed (its event is published again)."""
    limits.check_retries(session, user.sub, settings)  # a refused or failed retry is rolled back, not counted
    try:
        item = retry.retry_item(session, item_id, publisher, owner_id=user.sub)
    except retry.ItemNotFound:
        raise not_found() from None
    except retry.NotRetryable as error:
        raise ApiError(409, "conflict", str(error)) from None
    except PublishError:
        session.rollback()
        raise ApiError(503, "unavailable", "the retry could not be queued; try again shortly") from None
    session.commit()
    return item_out(item, signer)
