"""Image processor: an uploaded original → validated facts, WebP thumbnails, `processed`.

Trust nothing about the upload (moto does not enforce presigned POST policies, and AWS users can
be creative): the key must be uploads/{sub}/{item_id}/{filename} and exactly the item's
original_key, the item must exist, belong to {sub} and be pending, and the object must be under
the size limit; the bytes must decode as JPEG, PNG, WebP or GIF within the pixel limit, and as the
type the item was declared with (a PNG sent as image/jpeg fails).

The verified bytes, exactly those hashed and thumbnailed, are written to originals/{sub}/{item}/...
with their verified type and `Content-Disposition: attachment`; the API serves that copy. The
upload object is then removed: a presigned POST stays usable until it expires, and a later object
under the upload key of an item whose original is verified is refused and removed, so an item's
served bytes, sha256 and thumbnails always agree.

Refusals:
- An object that cannot be attributed to its item (bad key, unknown item, another owner's item,
  a second object beside the item's original) is DELETED, with a warning log line that records
  key, size and reason. Nobody can reach such an object through the API, so keeping it would
  only keep cost and possibly abusive content; with bucket versioning on, S3 still has it.
  It is never attributed to anyone: no item is touched.
- An attributable upload that is bad (too large, not an image, a bomb, corrupt) marks the item
  failed (stage process) with the reason; the original is kept so the user can see what they
  sent and retry; cleanup removes it with the failed item after the retention period.
- A repeated event for an item that is no longer pending is skipped; nothing is deleted.

Duplicates: the same bytes (sha256) as an earlier live item of the same owner are not processed
again. The new item gets duplicate_of, its own copies of the first item's thumbnails (server-side
S3 copies, so deleting either item never breaks the other), and everything the first item has
already earned: it takes the first item's status when that is analyzed or ready (analysis and
embedding copied, no model called) and emits the event of that status; if the first is only
processed, the duplicate is processed too and continues through the pipeline.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from sqlalchemy import Row, func, literal, select, tuple_, update

from services.core import pipeline_store as store
from services.core.contracts import Detail, EventBridgeEvent, S3ObjectCreated
from services.core.database import connection_scope
from services.core.events import EventPublisher
from services.core.settings import ProgramSettings, get_settings
from services.core.stage_runner import Claim, Done, Failure, StageBusy, StageRunner, StageWork
from services.core.storage import (
    FORMAT_TYPES,
    IMAGE_TYPES,
    InvalidKey,
    ObjectTooLarge,
    Storage,
    attachment,
    get_storage,
    parse_upload_key,
    thumbnail_key,
    verified_original_key,
)
from services.core.tables import ItemStatus, items
from services.core.thumbnails import analysis_thumbnail, list_thumbnail
from services.image_processor.imaging import ImageRejected, process_image, sha256_of

log = logging.getLogger(__name__)

THUMBNAIL_CONTENT_TYPE = "image/webp"
ANALYSIS_FIELDS = ("title", "description", "category", "tags", "colors", "visible_text", "analysis", "analysis_model")


class ImageProcessor(StageWork):
    """The `process` stage's work, and the S3 "Object Created" events that start it."""

    stage_name = "process"

    def __init__(
        self,
        settings: ProgramSettings | None = None,
        storage: Storage | None = None,
        publisher: EventPublisher | None = None,
    ):
        super().__init__(publisher)
        self.settings = settings or get_settings()
        self.storage = storage or get_storage()

    # --- entry points -----------------------------------------------------------------------
    def other_event(self, envelope: EventBridgeEvent) -> store.Outcome:
        if envelope.source == "aws.s3":
            return self.object_created(S3ObjectCreated.from_event(envelope))
        return super().other_event(envelope)

    def object_created(self, upload: S3ObjectCreated) -> store.Outcome:
        """An S3 "Object Created" event for the bucket."""
        if upload.bucket != self.storage.bucket:
            # Another bucket's event (a misrouted rule): not ours to judge, and never ours to delete.
            return store.Outcome(None, "skipped", f"bucket {upload.bucket!r} is not {self.storage.bucket!r}")
        key = self._resolve_key(upload.key)
        try:
            parsed = parse_upload_key(key)
        except InvalidKey as error:
            return self._remove_unattributable(key, upload.size, str(error))
        with connection_scope() as connection:
            item = store.get_item(connection, parsed.item_id)
        if item is None:
            return self._remove_unattributable(key, upload.size, "no item has this id", parsed.item_id)
        if item.owner_id != parsed.owner_id:
            return self._remove_unattributable(key, upload.size, "the item belongs to another owner", item.id)
        if item.original_key != key:
            return self._remove_unattributable(key, upload.size, "not the item's upload key", item.id)
        if item.status != ItemStatus.pending and item.original_verified:
            # The verified original lives under originals/: anything at the upload key now is a
            # replayed form. Never served, removed. (A repeated event finds the key already gone.)
            # An item processed before verified copies existed keeps its upload: it is all it has.
            if self.storage.head(key) is None:
                return store.Outcome(item.id, "skipped", f"item is {item.status.value}; its upload was moved")
            return self._remove_unattributable(
                key, upload.size, "the item's original is already verified; later uploads are refused", item.id
            )
        if item.status != ItemStatus.pending:
            return store.Outcome(item.id, "skipped", f"item is {item.status.value}, not pending")
        resolved = S3ObjectCreated(bucket=upload.bucket, key=key, size=upload.size)
        outcome = StageRunner(self).run(item.id, item.owner_id, resolved)
        return self._after_commit(outcome, key)

    def run(self, detail: Detail) -> store.Outcome:
        """ProcessingRequested: a retry of the first stage (the S3 event cannot be replayed)."""
        return self._after_commit(super().run(detail), getattr(detail, "key", ""))

    def check(self, item: Row, detail: Any) -> str | None:
        if item.original_key != detail.key:
            return "the request does not match the item"
        return None

    def _after_commit(self, outcome: store.Outcome, upload_key: str) -> store.Outcome:
        """Once the verified copy is committed as the item's original, the upload object has no use
        left: remove it (with whatever a replayed form may have put there meanwhile)."""
        if outcome.result in ("processed", "duplicate"):
            self.storage.delete([upload_key])
        return outcome

    # --- the work (no database connection held) ----------------------------------------------
    def work(self, claim: Claim) -> Done | Failure:
        item = claim.item
        size_hint = getattr(claim.detail, "size", None)
        limit = self.settings.max_upload_bytes
        if size_hint is not None and size_hint > limit:
            return Failure(f"file too large: {size_hint} bytes; the limit is {limit}")
        try:
            data = self.storage.read(item.original_key, max_bytes=limit)
        except ObjectTooLarge as error:
            return Failure(f"file too large: {error}")
        except self.storage.s3.exceptions.NoSuchKey:
            return Failure("the original upload is missing")

        declared = IMAGE_TYPES.get((item.content_type or "").lower())
        if declared is None:
            return Failure(f"unsupported declared type {item.content_type!r}")
        sha256 = sha256_of(data)
        first = self._first_with_content(claim, sha256)
        if first is not None and first.thumbnail_keys:
            if first.format != declared:
                return Failure(_type_mismatch(first.format, item.content_type))
            duplicate = self._duplicate(item, first, data)
            if duplicate is not None:
                return duplicate
            log.warning("item %s: its first %s has no usable thumbnails to copy; processed itself", item.id, first.id)

        try:
            image = process_image(
                data,
                sizes=tuple(self.settings.thumbnail_sizes),
                max_pixels=self.settings.max_image_pixels,
                sha256=sha256,
            )
        except ImageRejected as error:
            return Failure(str(error), detail=error.detail)  # Pillow's words stay in the log
        if image.format != declared:
            return Failure(_type_mismatch(image.format, item.content_type))

        self._store_original(item, data, image.format)
        keys: dict[str, str] = {}
        for size, thumb in image.thumbnails.items():
            keys[str(size)] = thumbnail_key(item.owner_id, item.id, size)
            self.storage.write(keys[str(size)], thumb.data, THUMBNAIL_CONTENT_TYPE)
        values = {
            "width": image.width,
            "height": image.height,
            "format": image.format,
            "sha256": sha256,
            "bytes": image.bytes,
            "thumbnail_keys": keys,
            # Recorded once, here: the largest thumbnail is what the analyzer reads, the smallest is
            # what lists show. Nothing downstream picks a size of its own.
            "analysis_thumbnail_key": keys[str(max(image.thumbnails))],
            "list_thumbnail_key": keys[str(min(image.thumbnails))],
            "processed_at": datetime.now(UTC),
            "original_verified": True,
        }
        log.info("processed item %s: %s %dx%d", item.id, image.format, image.width, image.height)
        return Done(values, extra={"format": image.format, "width": image.width})

    def _first_with_content(self, claim: Claim, sha256: str) -> Row | None:
        """The owner's earlier item with the same bytes, whose results this item takes (a duplicate).

        The content is announced on the item first (its sha256, committed, under the lease). Then an
        earlier upload of the same bytes that is still being processed (a live lease) makes this one
        wait (StageBusy: retried, by when the first is processed and this becomes its duplicate).
        Two identical uploads processed at the very same moment may each miss the other's announcement
        and both be processed: each is still correct, only the saving of one analysis is lost."""
        item = claim.item
        with connection_scope() as connection:
            connection.execute(
                update(items).where(items.c.id == item.id, items.c.lease_owner == claim.lease).values(sha256=sha256)
            )
        with connection_scope() as connection:
            earlier_at_work = connection.execute(
                select(items.c.id)
                .where(
                    items.c.owner_id == item.owner_id,
                    items.c.sha256 == sha256,
                    items.c.status == ItemStatus.pending,
                    items.c.lease_expires_at > func.now(),
                    tuple_(items.c.created_at, items.c.id) < tuple_(literal(item.created_at), literal(item.id)),
                )
                .limit(1)
            ).first()
            if earlier_at_work is not None:
                raise StageBusy(f"item {item.id}: an earlier upload of the same bytes is being processed")
            return store.find_duplicate(connection, item.owner_id, sha256, item.id)

    def _store_original(self, item: Row, data: bytes, fmt: str) -> None:
        """The verified bytes (the very ones hashed and decoded, not a re-read of the upload key,
        which a replayed form may have changed meanwhile) under originals/, served as a download."""
        self.storage.write(
            verified_original_key(item.original_key), data, FORMAT_TYPES[fmt], disposition=attachment(item.filename)
        )

    def _duplicate(self, item: Row, first: Row, data: bytes) -> Done | None:
        """The first item's results, its thumbnails copied; None when the first's row names no analysis or
        list thumbnail among its thumbnail_keys (the copy would record none, and the ImageProcessed event,
        which needs one, could never be published: every retry would fail), so the item is processed itself."""
        sizes = {name: source for name, source in first.thumbnail_keys.items() if str(name).isdigit()}
        analysis, listed = analysis_thumbnail(first), list_thumbnail(first)
        if analysis not in sizes.values() or listed not in sizes.values():
            return None
        self._store_original(item, data, first.format)
        keys: dict[str, str] = {}
        copies: dict[str, str] = {}  # the first item's key → this item's copy
        for name, source in sizes.items():
            keys[name] = copies[source] = thumbnail_key(item.owner_id, item.id, int(name))
            self.storage.copy(source, keys[name])
        status = first.status
        values: dict[str, Any] = {
            "duplicate_of": first.id,
            "width": first.width,
            "height": first.height,
            "format": first.format,
            "sha256": first.sha256,
            "bytes": len(data),
            "thumbnail_keys": keys,
            "analysis_thumbnail_key": copies[str(analysis)],
            "list_thumbnail_key": copies[str(listed)],
            "processed_at": datetime.now(UTC),
            "original_verified": True,
        }
        # What the first item earned at each stage it passed (the status order comes from the stage table).
        if store.STATUS_ORDER[status] >= store.STATUS_ORDER[ItemStatus.analyzed]:
            values |= {name: getattr(first, name) for name in ANALYSIS_FIELDS}
            values["analyzed_at"] = first.analyzed_at
        if store.STATUS_ORDER[status] >= store.STATUS_ORDER[ItemStatus.ready]:
            values |= {
                "embedding": first.embedding,
                "embedding_model": first.embedding_model,
                "ready_at": first.ready_at,
            }
        log.info("item %s duplicates %s: took its results (%s)", item.id, first.id, status.value)
        return Done(
            values,
            status=status,
            result="duplicate",
            extra={"duplicate_of": str(first.id), "status": status.value},
        )

    def _remove_unattributable(
        self, key: str, size: int | None, reason: str, item_id: uuid.UUID | None = None
    ) -> store.Outcome:
        log.warning("deleting unattributable upload %r (%s bytes): %s", key, size, reason)
        self.storage.delete([key])
        return store.Outcome(item_id, "refused", reason, extra={"key": key, "deleted": True})

    def _resolve_key(self, key: str) -> str:
        """S3 notifications may URL-encode keys ("a b" → "a+b"); the API's keys never need it, so
        only a key that does not exist as given is tried decoded."""
        if "%" in key or "+" in key:
            decoded = unquote_plus(key)
            if decoded != key and self.storage.head(key) is None and self.storage.head(decoded) is not None:
                return decoded
        return key


def _type_mismatch(fmt: str | None, declared: str | None) -> str:
    return f"the file is a {fmt} image, not the declared {declared}"
