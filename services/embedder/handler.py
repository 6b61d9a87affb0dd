"""Lambda entry point of the embedder: ImageAnalyzed (and ItemEdited) → Voyage (or the local embedder).

The stage runner (services/core/stage_runner.py) does the rest. It and the stage's logic (SQLAlchemy,
the SDKs, Pillow) are imported on the first event, not at cold start (tests/bench/bench_pipeline.py).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

logger = Logger(service="embedder")


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    logger.append_keys(request_id=getattr(context, "aws_request_id", None))
    from services.core.stage_runner import run_event

    outcome = run_event("embed", event, context)
    logger.info("embedder outcome", extra=outcome)
    return outcome
