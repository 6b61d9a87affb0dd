"""Retrying a failed item: put it back to the failed stage's input status and re-emit that stage's event.

Shared by the API (POST /items/{id}/retry) and the CLI. The row is locked and reset, the reset is
committed, then the event is published: a stage that receives the event must find the item at its
input status (a stage skips a failed item at once, so publishing before the commit lost retries
whenever the event was faster than the commit). If publishing raises, the item is marked failed
again with its old stage and reason (still retryable) and the error propagates.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.core.models import Item, ItemStatus, Stage

if TYPE_CHECKING:  # the contracts load with the first retry, not with the API's cold start
    from services.core.contracts import Detail
    from services.core.events import EventPublisher

# The status an item has while it waits for a stage (the stage's input).
STAGE_INPUT_STATUS: dict[Stage, ItemStatus] = {
    Stage.process: ItemStatus.pending,
    Stage.analyze: ItemStatus.processed,
    Stage.embed: ItemStatus.analyzed,
}


class RetryError(Exception):
    pass


class ItemNotFound(RetryError):
    pass


class NotRetryable(RetryError):
    pass


def resume_stage(item: Item) -> Stage:
    """Where the retry starts: the failed stage, or an earlier one when that stage's inputs are missing
    (a failure recorded without a stage, or before the previous stage's outputs were written)."""
    stage = item.failed_stage or Stage.process
    if stage is Stage.embed and not item.analysis_model:
        stage = Stage.analyze
    if stage is Stage.analyze and not ((item.thumbnail_keys or {}).get("1024") and item.sha256):
        stage = Stage.process
    return stage


def stage_event(item: Item, stage: Stage) -> Detail:
    """The event that starts `stage` for `item` (the retry contract)."""
    from services.core.contracts import ImageAnalyzed, ImageProcessed, ProcessingRequested

    if stage is Stage.process:
        return ProcessingRequested(item_id=item.id, owner_id=item.owner_id, key=item.original_key)
    if stage is Stage.analyze:
        return ImageProcessed(
            item_id=item.id, owner_id=item.owner_id, thumbnail_key=item.thumbnail_keys["1024"], sha256=item.sha256
        )
    return ImageAnalyzed(item_id=item.id, owner_id=item.owner_id, analysis_model=item.analysis_model)


def retry_item(session: Session, item_id: uuid.UUID, publisher: EventPublisher, owner_id: str | None = None) -> Item:
    """Reset a failed item, commit, and publish its stage's event. `owner_id` None: any owner (operator use).

    Raises ItemNotFound (no such visible item of that owner) or NotRetryable (not failed); the
    publisher's error after restoring the failure.
    """
    query = select(Item).where(Item.id == item_id, Item.status != ItemStatus.deleted)
    if owner_id is not None:
        query = query.where(Item.owner_id == owner_id)
    # The lock serialises concurrent retries of one item: the second sees it no longer failed.
    item = session.scalar(query.with_for_update())
    if item is None:
        raise ItemNotFound(f"item {item_id} not found")
    if item.status is not ItemStatus.failed:
        raise NotRetryable(f"item {item_id} is {item.status.value}; only failed items can be retried")
    stage = resume_stage(item)
    event = stage_event(item, stage)
    failed_stage, failure_reason = item.failed_stage, item.failure_reason
    item.status = STAGE_INPUT_STATUS[stage]
    item.failed_stage = None
    item.failure_reason = None
    session.commit()
    try:
        publisher.publish([event])
    except Exception:
        # Only if nothing moved it meanwhile (no event went out, so nothing should have).
        session.execute(
            update(Item)
            .where(Item.id == item.id, Item.status == STAGE_INPUT_STATUS[stage])
            .values(status=ItemStatus.failed, failed_stage=failed_stage, failure_reason=failure_reason)
        )
        session.commit()
        session.refresh(item)
        raise
    return item
