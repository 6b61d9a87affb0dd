"""Lambda entry point of the analyzer: ImageProcessed → Claude (or the local analyzer).

The logic is imported on the first event (anthropic alone takes over a second to import).
"""

from __future__ import annotations

from typing import Any

from services.core.contracts import EventBridgeEvent, ImageProcessed
from services.core.observability import for_function

observe = for_function("analyzer")


@observe.handler
def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    detail = EventBridgeEvent.model_validate(event).pipeline_detail()
    if not isinstance(detail, ImageProcessed):
        raise ValueError(f"the analyzer does not handle {type(detail).__name__} events")
    from services.analyzer.logic import ImageAnalyzer

    outcome = observe.stage("analyze", lambda: ImageAnalyzer().image_processed(detail))
    return outcome.as_dict()
