"""Database state changes of the pipeline stages: locks, conditional transitions, failures.

Idempotency and concurrency, in one place:
- A stage works on an item inside one transaction that first locks the row of (stage, item) in
  `pipeline_locks` with SELECT ... FOR UPDATE SKIP LOCKED. A second delivery of the same event
  arriving while the first is working does not wait and does no work: it skips (the first one
  either finishes, or raises and is retried itself). The lock is a row of its own, not the item's
  row, so the API can still update (soft-delete) the item while a slow model call is in flight.
  Lock rows go with their item (ON DELETE CASCADE), so cleanup deletes an item only after taking
  all of its lock rows without waiting (hold_item_locks): never while a stage holds one.
  Row locks rather than advisory locks: RDS Proxy pins a client session to one database
  connection when it sees advisory-lock functions (RDS User Guide, "Avoiding pinning an RDS
  Proxy", conditions for PostgreSQL: "Interacting with locks using functions such as
  pg_advisory_lock and pg_try_advisory_lock"); a row lock is transaction state, which a proxy
  multiplexing per transaction handles without pinning.
- Every state change is a conditional UPDATE ... WHERE id = :id AND status = :expected
  RETURNING id. Only the winner emits the next event, and it publishes before committing: if
  publishing fails the transaction rolls back and the retried event redoes the step.
- Because the event can thus arrive a moment before the commit is visible, a stage that finds
  its item still *before* its expected status re-reads it for up to READY_WAIT_S (the producer's
  commit is normally milliseconds behind its publish) and only then raises NotReadyYet
  (transient: retried, which on AWS means Lambda's async retry delay of a minute or more). An
  item already past the expected status is a repeated delivery and is skipped.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.core.models import Item, ItemStatus, Stage

MAX_REASON = 1000
READY_WAIT_S = 2.0  # how long a stage waits for its producer's commit before asking for a retry
READY_POLL_S = 0.02
# Order of the happy path; an item at a later status has already passed a stage.
STATUS_ORDER = {
    ItemStatus.pending: 0,
    ItemStatus.processed: 1,
    ItemStatus.analyzed: 2,
    ItemStatus.ready: 3,
}


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


LOCK_ATTEMPTS = 3  # lock(): tries when the row it waited for was deleted with its item meanwhile

_ENSURE_LOCK_ROW = text(
    "INSERT INTO pipeline_locks (name, item_id) SELECT :name, id FROM items WHERE id = :item_id "
    "ON CONFLICT (name) DO NOTHING"
)
_LOCK_ROW_NOWAIT = text("SELECT 1 FROM pipeline_locks WHERE name = :name FOR UPDATE SKIP LOCKED")
_LOCK_ROW = text("SELECT 1 FROM pipeline_locks WHERE name = :name FOR UPDATE")
_LOCK_ROW_EXISTS = text("SELECT 1 FROM pipeline_locks WHERE name = :name")
_ITEM_LOCKS_FREE = text("SELECT name FROM pipeline_locks WHERE item_id = :item_id FOR UPDATE SKIP LOCKED")
_ITEM_LOCKS = text("SELECT count(*) FROM pipeline_locks WHERE item_id = :item_id")


def stage_lock_name(stage: Stage, item_id: uuid.UUID) -> str:
    return f"stage:{stage.value}:{item_id}"


def content_lock_name(owner_id: str, sha256: str) -> str:
    return f"sha256:{owner_id}:{sha256}"


def _ensure_lock_row(session: Session, name: str, item_id: uuid.UUID) -> None:
    """Create the lock's row (for an existing item) in a short transaction of its own, committed.

    Committed first so that a concurrent delivery finds a row to skip over: a row inserted by an
    open transaction would make the other's INSERT wait for that whole transaction instead."""
    bind = session.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    try:
        with engine.begin() as connection:
            connection.execute(_ENSURE_LOCK_ROW, {"name": name, "item_id": item_id})
    except IntegrityError:
        # The foreign key: the item was deleted after the INSERT found it (its deleter, e.g. cleanup,
        # held the item's row). No row, so the caller finds the item gone, as if it had been earlier.
        pass


def try_lock(session: Session, name: str, item_id: uuid.UUID) -> bool:
    """Lock `name` for this transaction without waiting; False when another transaction holds it.

    True also when the item does not exist (there is nothing to contend for; the caller finds out)."""
    _ensure_lock_row(session, name, item_id)
    if session.execute(_LOCK_ROW_NOWAIT, {"name": name}).first() is not None:
        return True
    # Skipped: the row is locked by another transaction, or there is none because the item is gone.
    return session.execute(_LOCK_ROW_EXISTS, {"name": name}).first() is None


def lock(session: Session, name: str, item_id: uuid.UUID) -> None:
    """Wait for the lock on `name` (short critical sections only); held until the transaction ends."""
    for _ in range(LOCK_ATTEMPTS):
        _ensure_lock_row(session, name, item_id)
        if session.execute(_LOCK_ROW, {"name": name}).first() is not None:
            return
        # The row we waited for went with its item (it belonged to another item); make ours.
    raise RuntimeError(f"could not take the pipeline lock {name!r}: its row keeps disappearing")


def hold_item_locks(session: Session, item_id: uuid.UUID) -> bool:
    """Before deleting an item: lock all of its lock rows in this transaction, without waiting.

    False when a stage (or a content lock) holds one of them: deleting the item would cascade to that
    row and wait for the stage's whole transaction, a model call included, then hit the statement
    timeout or deadlock with the stage's own UPDATE of the item. The caller leaves the item for later.
    The caller must hold the item's row (FOR UPDATE): then no new lock row can appear meanwhile, since
    inserting one checks the foreign key with FOR KEY SHARE on that row."""
    held = session.execute(_ITEM_LOCKS_FREE, {"item_id": item_id}).all()
    return len(held) == session.execute(_ITEM_LOCKS, {"item_id": item_id}).scalar_one()


def try_lock_stage(session: Session, stage: Stage, item_id: uuid.UUID) -> bool:
    """`stage`'s lock on the item, without waiting (see the module docstring)."""
    return try_lock(session, stage_lock_name(stage, item_id), item_id)


def lock_content(session: Session, owner_id: str, sha256: str, item_id: uuid.UUID) -> None:
    """Serialise the owner's items with the same content (one becomes the other's duplicate)."""
    lock(session, content_lock_name(owner_id, sha256), item_id)


def get_item(session: Session, item_id: uuid.UUID) -> Item | None:
    # populate_existing: a value read earlier in this session must not hide a concurrent change.
    return session.execute(
        select(Item).where(Item.id == item_id).execution_options(populate_existing=True)
    ).scalar_one_or_none()


def check_ready_for(session: Session, item: Item, expected: ItemStatus, wait_s: float | None = None) -> bool:
    """True when the item is at `expected`; False when past it or out of the pipeline (skip).

    When it has not reached `expected` yet, re-read it (READ COMMITTED: each SELECT sees new
    commits; get_item refreshes `item` in place) until it does or `wait_s` runs out, then raise
    NotReadyYet."""
    deadline = time.monotonic() + (READY_WAIT_S if wait_s is None else wait_s)
    while True:
        if item.status == expected:
            return True
        if item.status not in STATUS_ORDER or STATUS_ORDER[item.status] > STATUS_ORDER[expected]:
            return False
        if time.monotonic() >= deadline:
            raise NotReadyYet(f"item {item.id} is {item.status.value}, not yet {expected.value}")
        time.sleep(READY_POLL_S)
        get_item(session, item.id)


def claim(session: Session, stage: Stage, item_id: uuid.UUID, owner_id: str, expected: ItemStatus) -> Item | Outcome:
    """Take `stage`'s lock on the item and check that it is the owner's and at `expected`.

    Returns the item to work on, or the Outcome that ends this delivery (a skip)."""
    if not try_lock_stage(session, stage, item_id):
        return Outcome(item_id, "skipped", f"another delivery is at the {stage.value} stage of this item")
    item = get_item(session, item_id)
    if item is None or item.owner_id != owner_id:
        return Outcome(item_id, "skipped", "no such item for this owner")
    if not check_ready_for(session, item, expected):
        return Outcome(item.id, "skipped", f"item is {item.status.value}, not {expected.value}")
    return item


def advance(session: Session, item_id: uuid.UUID, expected: ItemStatus, values: dict[str, Any]) -> bool:
    """Set `values` only if the item is still at `expected`; True when this call won."""
    statement = (
        update(Item)
        .where(Item.id == item_id, Item.status == expected)
        .values(**values, updated_at=func.now())
        .returning(Item.id)
        .execution_options(synchronize_session=False)
    )
    return session.execute(statement).first() is not None


def fail(session: Session, item_id: uuid.UUID, expected: ItemStatus, stage: Stage, reason: str) -> bool:
    """Mark the item failed at `stage` with a reason, if it is still at `expected`."""
    return advance(
        session,
        item_id,
        expected,
        {"status": ItemStatus.failed, "failed_stage": stage, "failure_reason": reason[:MAX_REASON]},
    )


def find_duplicate(session: Session, owner_id: str, sha256: str, exclude_id: uuid.UUID) -> Item | None:
    """The owner's earliest live item with the same content that got past processing."""
    return session.execute(
        select(Item)
        .where(
            Item.owner_id == owner_id,
            Item.sha256 == sha256,
            Item.id != exclude_id,
            Item.status.in_((ItemStatus.processed, ItemStatus.analyzed, ItemStatus.ready)),
        )
        .order_by(Item.created_at, Item.id)
        .limit(1)
    ).scalar_one_or_none()
