"""Cleanup (hourly): what the pipeline and the API leave behind, within a bounded amount of work.

Per run, at most `cleanup_batch` of each kind:
- soft-deleted items: their objects (upload, verified original, thumbnails), then the row;
- failed items older than `cleanup_failed_retention_days` (by updated_at): objects, then row;
- pending rows older than `cleanup_orphan_hours` whose upload never arrived: the row;
- items that waited at a stage's input status (services/catalog.py STAGES) for longer than
  `pending_timeout_minutes` (never less than catalog.pending_timeout_floor_s: Lambda may still deliver
  a throttled event until its maximum event age, and the stage then hold the item for a lease) without
  a live lease (an upload whose processing crashed or timed out, a
  stage whose retries ran out): marked failed at that stage with a reason, so retry resumes them
  (a pending item counts only once its upload exists: until then the form may still be used);
- objects under uploads/, originals/ and thumbnails/ older than `cleanup_orphan_hours` that belong to no
  row (no such item, another owner, or an upload that is not the item's original).
Removed items' rows are locked (FOR UPDATE SKIP LOCKED) while their objects go, so a retry or a second
cleanup cannot interleave; stale and timed-out items are read without a lock, their uploads checked in
S3 with no row locked, then changed by one short statement that re-checks the conditions. An item
under a live stage lease (services/core/stage_runner.py: a stage is at work on it, with no transaction
open) is left for the next run; objects go before rows, so a crash leaves a row to try again, never an
unreachable object. dry_run counts the same things and changes nothing.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, delete, func, or_, select, update

from services import catalog
from services.core.database import connection_scope
from services.core.settings import ProgramSettings, get_settings
from services.core.storage import (
    InvalidKey,
    Storage,
    get_storage,
    original_prefix,
    parse_upload_key,
    thumbnail_prefix,
    upload_prefix,
    verified_original_key,
)
from services.core.tables import ItemStatus, Stage, items

log = logging.getLogger(__name__)

# A stage's lease is live until it expires by the database's clock (the clock the stages take it with).
NO_LIVE_LEASE = or_(items.c.lease_owner.is_(None), items.c.lease_expires_at <= func.now())


@dataclass
class CleanupReport:
    dry_run: bool
    deleted_items: int = 0
    expired_failed: int = 0
    stale_pending: int = 0
    timed_out: int = 0  # waited at a stage's input past pending_timeout_minutes: marked failed
    orphan_objects: int = 0
    objects_removed: int = 0  # every object removed (or, in a dry run, that would be)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def item_of_key(key: str) -> tuple[str, uuid.UUID] | None:
    """(owner, item id) of an uploads/ or thumbnails/ key; None when it has no such shape."""
    if key.startswith(catalog.UPLOADS_PREFIX):
        try:
            parsed = parse_upload_key(key)
        except InvalidKey:
            return None
        return parsed.owner_id, parsed.item_id
    parts = key.split("/")
    derived = key.startswith((catalog.THUMBNAILS_PREFIX, catalog.ORIGINALS_PREFIX))
    if len(parts) == 4 and derived and parts[1] and parts[3]:
        try:
            return parts[1], uuid.UUID(parts[2])
        except ValueError:
            return None
    return None


class Cleanup:
    def __init__(
        self, settings: ProgramSettings | None = None, storage: Storage | None = None, now: datetime | None = None
    ):
        self.settings = settings or get_settings()
        self.storage = storage or get_storage()
        self.now = now or datetime.now(UTC)
        self.batch = self.settings.cleanup_batch
        self.orphan_cutoff = self.now - timedelta(hours=self.settings.cleanup_orphan_hours)
        self.failed_cutoff = self.now - timedelta(days=self.settings.cleanup_failed_retention_days)
        self.waiting_cutoff = self.now - timedelta(minutes=self.settings.pending_timeout_minutes)

    def run(self, dry_run: bool) -> CleanupReport:
        report = CleanupReport(dry_run=dry_run)
        report.deleted_items = self._remove_items(items.c.status == ItemStatus.deleted, dry_run, report)
        report.expired_failed = self._remove_items(
            (items.c.status == ItemStatus.failed) & (items.c.updated_at < self.failed_cutoff), dry_run, report
        )
        self._stale_pending(dry_run, report)
        self._timed_out(dry_run, report)
        self._orphan_objects(dry_run, report)
        log.info("cleanup %s", report.as_dict())
        return report

    def _item_keys(self, item: Row) -> list[str]:
        keys = [o["Key"] for o in self.storage.list(upload_prefix(item.owner_id, item.id))]
        keys += [o["Key"] for o in self.storage.list(original_prefix(item.owner_id, item.id))]
        keys += [o["Key"] for o in self.storage.list(thumbnail_prefix(item.owner_id, item.id))]
        return keys

    def _remove_items(self, condition: Any, dry_run: bool, report: CleanupReport) -> int:
        with connection_scope() as connection:
            oldest_first = select(items.c.id).where(condition).order_by(items.c.updated_at, items.c.id)
            ids = connection.execute(oldest_first.limit(self.batch)).scalars().all()
        removed = 0
        for item_id in ids:
            # One transaction per item, holding its row while its objects go, then the row.
            with connection_scope() as connection:
                item = connection.execute(
                    select(items)
                    .where(items.c.id == item_id, condition, NO_LIVE_LEASE)
                    .with_for_update(skip_locked=True)
                ).first()
                if item is None:
                    continue  # changed meanwhile (e.g. retried), under a stage's lease, or another cleanup has it
                keys = self._item_keys(item)
                removed += 1
                report.objects_removed += len(keys)
                if dry_run:
                    continue
                self.storage.delete(keys)
                connection.execute(delete(items).where(items.c.id == item.id))
        return removed

    def _stale_pending(self, dry_run: bool, report: CleanupReport) -> None:
        condition = (items.c.status == ItemStatus.pending) & (items.c.created_at < self.orphan_cutoff) & NO_LIVE_LEASE
        # S3 first, with no row locked (one HEAD per candidate), then one short statement that re-checks.
        candidates = self._candidates(condition, items.c.created_at)
        stale = [item_id for item_id, key in candidates if self.storage.head(key) is None]
        remove = delete(items).where(items.c.id.in_(stale), condition)
        report.stale_pending = self._apply(stale, condition, dry_run, remove)

    def _timed_out(self, dry_run: bool, report: CleanupReport) -> None:
        """Fail what waited too long at a stage's input; retry (API or CLI) resumes it at that stage."""
        minutes = self.settings.pending_timeout_minutes
        for stage in catalog.STAGES:
            waiting = (items.c.status == ItemStatus(stage.input_status)) & (items.c.updated_at < self.waiting_cutoff)
            condition = waiting & NO_LIVE_LEASE
            candidates = self._candidates(condition, items.c.updated_at)
            if stage is catalog.STAGES[0]:
                # Until its upload exists, a pending item may still get it (the form is valid for a while).
                # The HEADs run before any row is locked.
                ids = [item_id for item_id, key in candidates if self.storage.head(key) is not None]
            else:
                ids = [item_id for item_id, _ in candidates]
            reason = f"the {stage.name} stage did not finish within {minutes} minutes; retry the item"
            fail = (
                update(items)
                .where(items.c.id.in_(ids), condition)
                .values(
                    status=ItemStatus.failed,
                    failed_stage=Stage(stage.name),
                    failure_reason=reason,
                    lease_owner=None,
                    lease_expires_at=None,
                    updated_at=func.now(),
                )
            )
            failed = self._apply(ids, condition, dry_run, fail)
            report.timed_out += failed
            if failed and not dry_run:
                log.warning("%d items timed out at the %s stage: e.g. %s", failed, stage.name, ids[0])

    def _candidates(self, condition: Any, order: Any) -> list[tuple[uuid.UUID, str]]:
        """(id, original_key) of at most `cleanup_batch` rows matching `condition`, read without locking."""
        with connection_scope() as connection:
            rows = connection.execute(
                select(items.c.id, items.c.original_key).where(condition).order_by(order, items.c.id).limit(self.batch)
            ).all()
        return [(row.id, row.original_key) for row in rows]

    def _apply(self, ids: list[uuid.UUID], condition: Any, dry_run: bool, statement: Any) -> int:
        """How many of `ids` still match `condition` (re-checked: they may have moved since they were read);
        unless a dry run, `statement` (which re-checks it too) changes them, in one short transaction."""
        if not ids:
            return 0
        with connection_scope() as connection:
            if dry_run:
                return len(connection.execute(select(items.c.id).where(items.c.id.in_(ids), condition)).all())
            result = connection.execute(statement)
            return result.rowcount

    def _orphan_objects(self, dry_run: bool, report: CleanupReport) -> None:
        found: list[str] = []
        for prefix in (catalog.UPLOADS_PREFIX, catalog.ORIGINALS_PREFIX, catalog.THUMBNAILS_PREFIX):
            page: list[dict[str, Any]] = []
            for obj in self.storage.list(prefix):
                if obj["LastModified"] < self.orphan_cutoff:
                    page.append(obj)
                if len(page) >= 1000:
                    found += self._orphans_in(page)
                    page = []
                if len(found) >= self.batch:
                    break
            found += self._orphans_in(page)
            if len(found) >= self.batch:
                break
        found = found[: self.batch]
        report.orphan_objects = len(found)
        report.objects_removed += len(found)
        if found and not dry_run:
            log.info("removing %d orphan objects, e.g. %s", len(found), found[:3])
            self.storage.delete(found)

    def _orphans_in(self, objects: list[dict[str, Any]]) -> list[str]:
        """Keys among `objects` that no row owns."""
        if not objects:
            return []
        owners = {obj["Key"]: item_of_key(obj["Key"]) for obj in objects}
        ids = {parsed[1] for parsed in owners.values() if parsed}
        with connection_scope() as connection:
            query = select(items.c.id, items.c.owner_id, items.c.original_key).where(items.c.id.in_(ids))
            rows = {row.id: (row.owner_id, row.original_key) for row in connection.execute(query)}
        orphans = []
        for key, parsed in owners.items():
            row = rows.get(parsed[1]) if parsed else None
            if row is None or row[0] != parsed[0]:
                orphans.append(key)
            elif key.startswith(catalog.UPLOADS_PREFIX) and key != row[1]:
                orphans.append(key)  # a second object beside the item's original
            elif key.startswith(catalog.ORIGINALS_PREFIX) and key != verified_original_key(row[1]):
                orphans.append(key)
        return orphans


def run(
    dry_run: bool = False, *, settings: ProgramSettings | None = None, storage: Storage | None = None
) -> dict[str, Any]:
    """One cleanup pass; returns the counts (what was removed, or would be in a dry run)."""
    return Cleanup(settings=settings, storage=storage).run(dry_run).as_dict()
