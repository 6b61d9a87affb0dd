"""Analyzer, the `analyze` stage's work: the item's analysis thumbnail → a vision model's description.

Claude (services/core/ai/claude.py) when an Anthropic key is configured, otherwise the local
pixel analyzer, which says so in the stored analysis_model ("local-..."). Transient failures
(429/5xx/timeouts after the SDK's retries, S3 or database errors) raise, so the event is retried;
a refusal, an invalid answer or an unreadable thumbnail is a Failure (the runner marks the item failed).
Fields the user already edited (user_edited) are kept; the model's answer is still stored in
`analysis`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, literal

from services.core.ai import Analyzer, ModelOutputRejected, get_analyzer
from services.core.events import EventPublisher
from services.core.stage_runner import Claim, Done, Failure, StageWork
from services.core.storage import Storage, get_storage
from services.core.tables import items
from services.core.thumbnails import analysis_thumbnail

log = logging.getLogger(__name__)

THUMBNAIL_MEDIA_TYPE = "image/webp"
# Kept as they are when the user has edited the item before the analysis arrived.
USER_FIELDS = ("title", "description", "category", "tags")


class ImageAnalyzer(StageWork):
    stage_name = "analyze"

    def __init__(
        self,
        analyzer: Analyzer | None = None,
        storage: Storage | None = None,
        publisher: EventPublisher | None = None,
    ):
        super().__init__(publisher)
        self.analyzer = analyzer or get_analyzer()
        self.storage = storage or get_storage()

    def work(self, claim: Claim) -> Done | Failure:
        item = claim.item
        # The item's own analysis thumbnail, as the processor recorded it: never a key from the event.
        key = analysis_thumbnail(item)
        if not key:
            return Failure("the item has no thumbnail for analysis")
        try:
            image = self.storage.read(key)
        except self.storage.s3.exceptions.NoSuchKey:
            return Failure(f"the thumbnail {key} is missing")
        try:
            result = self.analyzer.analyze(image, THUMBNAIL_MEDIA_TYPE)
        except ModelOutputRejected as error:
            return Failure(str(error))
        analysis = result.analysis
        values: dict[str, Any] = {
            "analysis": {**analysis.model_dump(mode="json"), "usage": result.usage},
            "analysis_model": result.model,
            "colors": analysis.colors,
            "visible_text": analysis.visible_text,
            "analyzed_at": datetime.now(UTC),
        }
        # Decided in the advancing UPDATE, not from the claimed copy: the user may edit the item while the
        # model answers (no lock is held meanwhile), and an edit must win over the analysis.
        values |= {name: _unless_user_edited(name, getattr(analysis, name)) for name in USER_FIELDS}
        log.info("analysed item %s with %s: %s", item.id, result.model, analysis.title)
        return Done(values, extra={"model": result.model, "usage": result.usage})


def _unless_user_edited(name: str, value: Any) -> Any:
    column = items.c[name]
    return case((items.c.user_edited, column), else_=literal(value, type_=column.type))
