"""The one runner of every pipeline stage (the stages are declared in services/catalog.py STAGES).

For one event, the runner parses it, claims the item, calls the stage's work, advances the status,
publishes the next event, and records a permanent failure. A stage's own code is only its work:
the claimed item in, `Done(values)` or `Failure(reason)` out.

Claiming is a lease on the item, not a lock held by an open transaction:
1. Claim, in a short transaction of its own (committed):
   UPDATE items SET lease_owner = :me, lease_expires_at = now() + :lease
   WHERE id = :id AND owner_id = :owner AND status = :input AND (no lease or an expired one) RETURNING *.
2. The work (a model call, Pillow, S3) runs with no session and no connection checked out, so a slow
   model never holds a database connection, let alone a transaction.
3. Advance, in a short transaction: UPDATE ... SET status = :output, <values>, lease cleared
   WHERE id = :id AND status = :input AND lease_owner = :me. Only the lease holder can advance, and
   only once. It publishes the next event before committing: if publishing fails the transaction
   rolls back, the lease is released, and the retried event redoes the step.
A second delivery that finds a live lease raises StageBusy (transient: Lambda retries the async event
later, and by then the item is past the stage and the retry skips, or the lease is free). A stage that
dies mid-work (timeout, crash) leaves its lease; it expires `lease_s` later and a redelivery finishes
the item. A stage that raises (a transient error) releases its lease at once for its retry. Cleanup
never deletes an item under a live lease, and marks an item failed that waited at a stage's input for
longer than COLLECTIONS_PENDING_TIMEOUT_MINUTES (services/cleanup/logic.py): no item waits forever.

The lease outlives the invocation that takes it, so it never expires under a stage still at work: on
Lambda it lasts the invocation's remaining time (the Lambda context's get_remaining_time_in_millis, which
follows the deployed timeout, e.g. a stack config's raised timeoutS, not the catalog's default) plus
LEASE_MARGIN_S; a configured COLLECTIONS_STAGE_LEASE_S can only lengthen it. Without a context (the local
runtime, tests) it is COLLECTIONS_STAGE_LEASE_S when set, else the catalog's timeout plus LEASE_MARGIN_S.
A crashed stage's item is free again soon after its invocation would have ended.

Because a producer publishes before committing, an event can arrive a moment before its item is
visible at the stage's input: the claim is retried for up to READY_WAIT_S, then NotReadyYet (transient)
is raised. An item already past the stage is a repeated delivery and is skipped.

The runner and the stages' work use SQLAlchemy Core on a connection (services/core/tables.py), not the
ORM: an item is a Row (attribute access, like the API's ORM Item), and the ORM stays out of the stages'
cold starts.

RDS Proxy: leases are plain rows and every transaction is short. No advisory locks, no SET, no session
state, so nothing pins a proxy session (RDS User Guide, "Avoiding pinning an RDS Proxy").
"""

from __future__ import annotations

import importlib
import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, func, or_, select, update

from services import catalog
from services.core import coldstart
from services.core.contracts import Detail, EventBridgeEvent, ItemFailed, event_for
from services.core.database import connection_scope
from services.core.observability import for_function
from services.core.pipeline_store import (
    MAX_REASON,
    READY_POLL_S,
    READY_WAIT_S,
    STATUS_ORDER,
    NotReadyYet,
    Outcome,
)
from services.core.settings import ProgramSettings, get_settings
from services.core.tables import ItemStatus, Stage, items

if TYPE_CHECKING:
    from services.core.events import EventPublisher

log = logging.getLogger(__name__)

LEASE_MARGIN_S = catalog.STAGE_LEASE_MARGIN_S  # beyond the invocation: Lambda stops one at its timeout


class StageBusy(RuntimeError):
    """Another delivery holds a live lease on the item at this stage: retry later (transient)."""


@dataclass(frozen=True)
class Done:
    """The work's result: `values` to write as the item advances.

    `status`: a later status of the table to go to instead of the stage's output (a duplicate takes
    its first item's); the event published is the one the stage producing that status emits.
    `result` names the outcome (default: the status reached); `extra` goes into the outcome."""

    values: dict[str, Any]
    status: ItemStatus | None = None
    result: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failure:
    """A permanent failure of the item at this stage (retrying the event would not help). `reason` is
    stored on the item; `detail` (a library's own words) goes only to the log, in the same record."""

    reason: str
    detail: str | None = None


@dataclass(frozen=True)
class Claim:
    """What the work gets: the item as claimed, the lease, and the event that asked for the work."""

    item: Row  # the items row, as the claim's UPDATE ... RETURNING gave it
    lease: uuid.UUID
    detail: Any = None


def lease_seconds(stage: catalog.PipelineStage, settings: ProgramSettings | None = None, context: Any = None) -> int:
    """How long a claim lasts: past the end of the invocation (`context`: Lambda's) that takes it."""
    settings = settings or get_settings()
    if context is not None:
        remaining_s = math.ceil(context.get_remaining_time_in_millis() / 1000)
        return max(remaining_s + LEASE_MARGIN_S, settings.stage_lease_s or 0)
    return settings.stage_lease_s or catalog.function(stage.function).timeout_s + LEASE_MARGIN_S


class StageWork:
    """Base of a stage's work (the class the table's `work` names). Subclasses set `stage_name` and
    implement `work`; `check` may refuse a claimed item (a skip); `other_event` handles the events the
    function receives beside its stage's (the function's triggers in the catalog)."""

    stage_name: str
    context: Any = None  # the Lambda context of the invocation (run_event sets it): the lease follows it

    def __init__(self, publisher: EventPublisher | None = None):
        from services.core.events import get_publisher

        self.publisher = publisher or get_publisher()

    @property
    def stage(self) -> catalog.PipelineStage:
        return catalog.stage(self.stage_name)

    def work(self, claim: Claim) -> Done | Failure | Outcome:
        raise NotImplementedError

    def check(self, item: Row, detail: Any) -> str | None:
        """A reason not to work on this claimed item (the event does not match it); None: work."""
        return None

    def run(self, detail: Detail) -> Outcome:
        """One delivery of an event the stage consumes."""
        return StageRunner(self).run(detail.item_id, detail.owner_id, detail)

    def other_event(self, envelope: EventBridgeEvent) -> Outcome:
        raise ValueError(f"the {self.stage.function} function does not handle {envelope.detail_type!r} events")

    def handle(self, envelope: EventBridgeEvent) -> Outcome:
        if envelope.source == catalog.PIPELINE_SOURCE and envelope.detail_type in self.stage.consumes:
            return self.run(envelope.pipeline_detail())
        return self.other_event(envelope)


class StageRunner:
    def __init__(self, work: StageWork, settings: ProgramSettings | None = None):
        self.work = work
        self.stage = work.stage
        self.input = ItemStatus(self.stage.input_status)
        self.lease_s = lease_seconds(self.stage, settings, work.context)

    # --- the steps ----------------------------------------------------------------------------
    def run(self, item_id: uuid.UUID, owner_id: str, detail: Any = None) -> Outcome:
        lease = uuid.uuid4()
        claimed = self.claim(item_id, owner_id, lease)
        if isinstance(claimed, Outcome):
            return claimed
        reason = self.work.check(claimed, detail)
        if reason is not None:
            self.release(item_id, lease)
            return Outcome(item_id, "skipped", reason)
        try:
            result = self.work.work(Claim(claimed, lease, detail))  # no connection checked out here
        except BaseException:
            self.release(item_id, lease)  # its retry need not wait for the lease to expire
            raise
        if isinstance(result, Outcome):
            self.release(item_id, lease)
            return result
        if isinstance(result, Failure):
            return self.fail(claimed, lease, result.reason, result.detail)
        return self.advance(claimed, lease, result)

    def claim(self, item_id: uuid.UUID, owner_id: str, lease: uuid.UUID) -> Row | Outcome:
        """The item, leased to `lease`; or the Outcome that ends this delivery (a skip). Raises StageBusy
        (another delivery's live lease) or NotReadyYet (still before the stage after READY_WAIT_S)."""
        deadline = time.monotonic() + READY_WAIT_S
        statement = (
            update(items)
            .where(
                items.c.id == item_id,
                items.c.owner_id == owner_id,
                items.c.status == self.input,
                or_(items.c.lease_owner.is_(None), items.c.lease_expires_at < func.now()),
            )
            .values(lease_owner=lease, lease_expires_at=func.now() + timedelta(seconds=self.lease_s))
            .returning(items)
        )
        while True:
            with connection_scope() as connection:
                item = connection.execute(statement).first()
                if item is not None:
                    return item
                row = connection.execute(
                    select(items.c.status, items.c.owner_id).where(items.c.id == item_id)
                ).first()
            if row is None or row.owner_id != owner_id:
                return Outcome(item_id, "skipped", "no such item for this owner")
            status = row.status
            if status == self.input:
                raise StageBusy(f"item {item_id}: another delivery holds the {self.stage.name} stage's lease")
            if status not in STATUS_ORDER or STATUS_ORDER[status] > STATUS_ORDER[self.input]:
                return Outcome(item_id, "skipped", f"item is {status.value}, not {self.input.value}")
            if time.monotonic() >= deadline:
                raise NotReadyYet(f"item {item_id} is {status.value}, not yet {self.input.value}")
            time.sleep(READY_POLL_S)

    def advance(self, item: Row, lease: uuid.UUID, done: Done) -> Outcome:
        target = done.status or ItemStatus(self.stage.output_status)
        if STATUS_ORDER.get(target, -1) <= STATUS_ORDER[self.input]:
            raise ValueError(f"the {self.stage.name} stage cannot take an item to {target.value}")
        values = {**done.values, "status": target}
        advanced = self._update_leased(item, lease, values, catalog.stage_with_output(target.value).emits)
        if advanced is None:
            return Outcome(item.id, "skipped", f"the item changed during the {self.stage.name} stage")
        log.info("%s: item %s is %s", self.stage.name, item.id, target.value)
        return Outcome(item.id, done.result or target.value, extra=done.extra)

    def fail(self, item: Row, lease: uuid.UUID, reason: str, detail: str | None = None) -> Outcome:
        values = {
            "status": ItemStatus.failed,
            "failed_stage": Stage(self.stage.name),
            "failure_reason": reason[:MAX_REASON],
        }
        if self._update_leased(item, lease, values, catalog.ITEM_FAILED, reason=reason) is None:
            return Outcome(item.id, "skipped", f"the item changed during the {self.stage.name} stage")
        log.warning("%s: item %s failed: %s%s", self.stage.name, item.id, reason, f" ({detail})" if detail else "")
        return Outcome(item.id, "failed", reason)

    def release(self, item_id: uuid.UUID, lease: uuid.UUID) -> None:
        """Give the lease up (best effort: an unreleased lease only expires later)."""
        try:
            with connection_scope() as connection:
                connection.execute(
                    update(items)
                    .where(items.c.id == item_id, items.c.lease_owner == lease)
                    .values(lease_owner=None, lease_expires_at=None)
                )
        except Exception:  # noqa: BLE001 - the caller's own outcome or error matters more
            log.warning("item %s: could not release the %s stage's lease", item_id, self.stage.name, exc_info=True)

    # --- one short transaction: conditional update, publish, commit -------------------------
    def _update_leased(
        self, item: Row, lease: uuid.UUID, values: dict[str, Any], detail_type: str, reason: str = ""
    ) -> Row | None:
        statement = (
            update(items)
            .where(items.c.id == item.id, items.c.status == self.input, items.c.lease_owner == lease)
            .values(**values, lease_owner=None, lease_expires_at=None, updated_at=func.now())
            .returning(items)
        )
        try:
            with connection_scope() as connection:
                updated = connection.execute(statement).first()
                if updated is None:
                    changed = None
                else:
                    changed = updated
                    if detail_type == catalog.ITEM_FAILED:
                        event: Detail = ItemFailed(
                            item_id=item.id, owner_id=item.owner_id, stage=self.stage.name, reason=reason
                        )
                    else:
                        event = event_for(detail_type, updated)
                    self.work.publisher.publish([event])  # before the commit: a failure rolls back
        except BaseException:
            self.release(item.id, lease)
            raise
        if changed is None:
            self.release(item.id, lease)  # the item moved on (e.g. deleted) while leased
        return changed


def run_event(stage_name: str, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """A stage function's Lambda handler: parse the envelope, refuse what the function's triggers do
    not deliver, import the stage's work (heavy: SDKs, Pillow) on the first event, run it."""
    stage = catalog.stage(stage_name)
    envelope = EventBridgeEvent.model_validate(event)
    accepted = {dt for t in catalog.function(stage.function).triggers_of("event") for dt in t.detail_types}
    if envelope.source == catalog.PIPELINE_SOURCE and envelope.detail_type not in accepted:
        raise ValueError(f"the {stage.function} function does not handle {envelope.detail_type!r} events")
    module, attribute = stage.work.rsplit(".", 1)
    work = getattr(importlib.import_module(module), attribute)()
    coldstart.init_over()  # the first event's imports and clients are made: its work runs with the collector on
    work.context = context
    # One outcome log line and one EMF metric per event, labelled with the stage (a re-embedding
    # after an edit counts under its stage, "embed"); an outcome the metrics don't know is an error.
    outcome = for_function(stage.function).stage(stage.name, lambda: work.handle(envelope))
    return outcome.as_dict()
