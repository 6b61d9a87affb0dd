"""Lambda entry point of the image processor: S3 "Object Created" (via EventBridge) and
ProcessingRequested (retry). Thin: parse the envelope, call the logic, return its outcome.

The logic (SQLAlchemy, boto3, Pillow) is imported on the first event, not at cold start, so the
module loads in well under 300 ms; see tests/bench/bench_pipeline.py for both figures.
"""

from __future__ import annotations

from typing import Any

from services.core.contracts import EventBridgeEvent, ProcessingRequested, S3ObjectCreated
from services.core.observability import for_function

observe = for_function("image_processor")


@observe.handler
def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    envelope = EventBridgeEvent.model_validate(event)
    from services.image_processor.logic import ImageProcessor

    if envelope.source == "aws.s3":
        created = S3ObjectCreated.from_event(envelope)
        outcome = observe.stage("process", lambda: ImageProcessor().object_created(created))
    else:
        detail = envelope.pipeline_detail()
        if not isinstance(detail, ProcessingRequested):
            raise ValueError(f"the image processor does not handle {envelope.detail_type!r} events")
        outcome = observe.stage("process", lambda: ImageProcessor().processing_requested(detail))
    return outcome.as_dict()
