"""Analyzer: the item's 1024 px thumbnail → a vision model's structured description → `analyzed`.

Claude (services/core/ai/claude.py) when an Anthropic key is configured, otherwise the local
pixel analyzer, which says so in the stored analysis_model ("local-..."). Transient failures
(429/5xx/timeouts after the SDK's retries, S3 or database errors) raise, so the event is retried;
a refusal, an invalid answer or an unreadable thumbnail marks the item failed (stage analyze).
Fields the user already edited (user_edited) are kept; the model's answer is still stored in
`analysis`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from services.core import pipeline_store as store
from services.core.ai import Analyzer, ModelOutputRejected, get_analyzer
from services.core.contracts import ImageAnalyzed, ImageProcessed, ItemFailed
from services.core.database import session_scope
from services.core.events import EventPublisher, get_publisher
from services.core.models import Item, ItemStatus, Stage
from services.core.storage import Storage, get_storage

log = logging.getLogger(__name__)

THUMBNAIL_MEDIA_TYPE = "image/webp"
# Kept as they are when the user has edited the item before the analysis arrived.
USER_FIELDS = ("title", "description", "category", "tags")


class ImageAnalyzer:
    def __init__(
        self,
        analyzer: Analyzer | None = None,
        storage: Storage | None = None,
        publisher: EventPublisher | None = None,
    ):
        self.analyzer = analyzer or get_analyzer()
        self.storage = storage or get_storage()
        self.publisher = publisher or get_publisher()

    def image_processed(self, event: ImageProcessed) -> store.Outcome:
        with session_scope() as session:
            item = store.claim(session, Stage.analyze, event.item_id, event.owner_id, ItemStatus.processed)
            if isinstance(item, store.Outcome):
                return item
            keys = item.thumbnail_keys or {}
            if not keys:
                return self._fail(session, item, "the item has no thumbnails")
            # The item's own largest thumbnail: never a key taken on trust from the event.
            key = keys[max(keys, key=int)]
            try:
                image = self.storage.read(key)
            except self.storage.s3.exceptions.NoSuchKey:
                return self._fail(session, item, f"the thumbnail {key} is missing")
            try:
                result = self.analyzer.analyze(image, THUMBNAIL_MEDIA_TYPE)
            except ModelOutputRejected as error:
                return self._fail(session, item, str(error))
            analysis = result.analysis
            values: dict[str, Any] = {
                "status": ItemStatus.analyzed,
                "analysis": {**analysis.model_dump(mode="json"), "usage": result.usage},
                "analysis_model": result.model,
                "colors": analysis.colors,
                "visible_text": analysis.visible_text,
                "analyzed_at": datetime.now(UTC),
            }
            if not item.user_edited:
                values |= {name: getattr(analysis, name) for name in USER_FIELDS}
            if not store.advance(session, item.id, ItemStatus.processed, values):
                return store.Outcome(item.id, "skipped", "the item changed while it was analysed")
            self.publisher.publish(
                [ImageAnalyzed(item_id=item.id, owner_id=item.owner_id, analysis_model=result.model)]
            )
            log.info("analysed item %s with %s: %s", item.id, result.model, analysis.title)
            return store.Outcome(item.id, "analyzed", extra={"model": result.model, "usage": result.usage})

    def _fail(self, session: Any, item: Item, reason: str) -> store.Outcome:
        if not store.fail(session, item.id, ItemStatus.processed, Stage.analyze, reason):
            return store.Outcome(item.id, "skipped", "the item changed while it was analysed")
        self.publisher.publish([ItemFailed(item_id=item.id, owner_id=item.owner_id, stage="analyze", reason=reason)])
        log.warning("item %s failed analysis: %s", item.id, reason)
        return store.Outcome(item.id, "failed", reason)
