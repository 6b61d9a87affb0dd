"""Lambda entry point of the image processor: S3 "Object Created" (via EventBridge) and ProcessingRequested (retry).

The stage runner (services/core/stage_runner.py) does the rest. It and the stage's logic (SQLAlchemy,
the SDKs, Pillow) are imported on the first event, not at cold start (tests/bench/bench_pipeline.py).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

logger = Logger(service="image_processor")


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    logger.append_keys(request_id=getattr(context, "aws_request_id", None))
    from services.core.stage_runner import run_event

    outcome = run_event("process", event, context)
    logger.info("image_processor outcome", extra=outcome)
    return outcome
