"""What the pipeline stages share about the database: status order, outcomes, reads.

The stages claim items with leases and change them with conditional updates: see
services/core/stage_runner.py, which runs every stage. Because a producer publishes its event before it
commits, a stage that finds its item still *before* its expected status re-reads it for up to
READY_WAIT_S (the producer's commit is normally milliseconds behind its publish) and only then raises
NotReadyYet (transient: retried, which on AWS means Lambda's async retry delay of a minute or more).
An item already past the expected status is a repeated delivery and is skipped.

Reads and writes are SQLAlchemy Core statements on the tables of services/core/tables.py, run on a
connection (services.core.database.connection_scope): an item is a Row, read by attribute like the ORM's
Item. The stages never import the ORM (the API's), which keeps it out of their cold starts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Row, select

from services import catalog
from services.core.tables import ItemStatus, items

MAX_REASON = 1000
READY_WAIT_S = 2.0  # how long a stage waits for its producer's commit before asking for a retry
READY_POLL_S = 0.02
# Order of the happy path; an item at a later status has already passed a stage.
STATUS_ORDER = {ItemStatus(status): rank for rank, status in enumerate(catalog.STATUS_ORDER)}


class NotReadyYet(RuntimeError):
    """The event is ahead of the database (its producer has not committed yet): retry later."""


@dataclass(frozen=True)
class Outcome:
    """What a stage did with one event; handlers return it as a dict (and log it)."""

    item_id: uuid.UUID | None
    result: str  # "processed", "analyzed", "ready", "duplicate", "failed", "skipped", "refused"
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"item_id": str(self.item_id) if self.item_id else None, "result": self.result}
        if self.reason:
            data["reason"] = self.reason
        data.update(self.extra)
        return data


def get_item(connection: Connection, item_id: uuid.UUID) -> Row | None:
    return connection.execute(select(items).where(items.c.id == item_id)).first()


def find_duplicate(connection: Connection, owner_id: str, sha256: str, exclude_id: uuid.UUID) -> Row | None:
    """The owner's earliest live item with the same content that got past processing."""
    return connection.execute(
        select(items)
        .where(
            items.c.owner_id == owner_id,
            items.c.sha256 == sha256,
            items.c.id != exclude_id,
            items.c.status.in_((ItemStatus.processed, ItemStatus.analyzed, ItemStatus.ready)),
        )
        .order_by(items.c.created_at, items.c.id)
        .limit(1)
    ).first()
