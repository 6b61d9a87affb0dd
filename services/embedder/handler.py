"""Lambda entry point of the embedder: ImageAnalyzed (and ItemEdited) → Voyage (or the local embedder).

The logic (SQLAlchemy, urllib3 for Voyage) is imported on the first event.
"""

from __future__ import annotations

from typing import Any

from services.core.contracts import EventBridgeEvent, ImageAnalyzed, ItemEdited
from services.core.observability import for_function

observe = for_function("embedder")


@observe.handler
def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    detail = EventBridgeEvent.model_validate(event).pipeline_detail()
    if not isinstance(detail, ImageAnalyzed | ItemEdited):
        raise ValueError(f"the embedder does not handle {type(detail).__name__} events")
    from services.embedder.logic import ItemEmbedder

    embedder = ItemEmbedder()
    if isinstance(detail, ImageAnalyzed):
        outcome = observe.stage("embed", lambda: embedder.image_analyzed(detail))
    else:
        outcome = observe.stage("reembed", lambda: embedder.item_edited(detail))
    return outcome.as_dict()
