"""Lambda entry point of the analyzer: ImageProcessed → Claude (or the local analyzer).

The logic is imported on the first event (anthropic alone takes over a second to import).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from services.core.contracts import EventBridgeEvent, ImageProcessed

logger = Logger(service="analyzer")


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    logger.append_keys(request_id=getattr(context, "aws_request_id", None))
    detail = EventBridgeEvent.model_validate(event).pipeline_detail()
    if not isinstance(detail, ImageProcessed):
        raise ValueError(f"the analyzer does not handle {type(detail).__name__} events")
    from services.analyzer.logic import ImageAnalyzer

    outcome = ImageAnalyzer().image_processed(detail)
    logger.info("analyzer outcome", extra=outcome.as_dict())
    return outcome.as_dict()
