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

from services import catalog
from services.core.models import Item, ItemStatus, Stage

if TYPE_CHECKING:  # the contracts load with the first retry, not with the API's cold start
    from services.core.contracts import Detail
    from services.core.events import EventPublisher

# The status an item has while it waits for a stage (the stage's input), from the stage table.
STAGE_INPUT_STATUS: dict[Stage, ItemStatus] = {Stage(s.name): ItemStatus(s.input_status) for s in catalog.STAGES}


class RetryError(Exception):
    pass


class ItemNotFound(RetryError):
    pass


class NotRetryable(RetryError):
    pass


def resume_stage(item: Item) -> Stage:
    """Where the retry starts: the failed stage, or the latest earlier one whose event the item can make
    (a failure recorded without a stage, or before the previous stage's outputs were written: e.g. no
    analysis model for the embedder's event, no analysis thumbnail for the analyzer's)."""
    names = catalog.STAGE_NAMES
    failed = names.index(item.failed_stage.value) if item.failed_stage else 0
    for name in reversed(names[1 : failed + 1]):
        try:
            stage_event(item, Stage(name))
        except ValueError:
            continue
        return Stage(name)
    return Stage(names[0])


def stage_event(item: Item, stage: Stage) -> Detail:
    """The event that starts `stage` for `item` (the retry contract): the first the stage consumes.
    ValueError when the item lacks what it needs."""
    from services.core.contracts import event_for

    return event_for(catalog.stage(stage.value).consumes[0], item)


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
    item.lease_owner = item.lease_expires_at = None  # e.g. an expired one, when cleanup timed the item out
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
