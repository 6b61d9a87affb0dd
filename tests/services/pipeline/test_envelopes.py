"""Envelopes as AWS delivers them: S3 "Object Created" via EventBridge (the documented shape and
moto's), pipeline events of every detail-type, and clear errors for anything else."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from services.core.contracts import (
    DETAIL_MODELS,
    EventBridgeEvent,
    ImageAnalyzed,
    ImageProcessed,
    ImageReady,
    ItemEdited,
    ItemFailed,
    ProcessingRequested,
    S3ObjectCreated,
)
from tests.services.pipeline.conftest import pipeline_event, s3_event

ITEM = uuid.uuid4()
DETAILS = [
    ProcessingRequested(item_id=ITEM, owner_id="sub", key=f"uploads/sub/{ITEM}/a.jpg"),
    ImageProcessed(item_id=ITEM, owner_id="sub", thumbnail_key=f"thumbnails/sub/{ITEM}/1024.webp", sha256="ab"),
    ImageAnalyzed(item_id=ITEM, owner_id="sub", analysis_model="claude-haiku-4-5"),
    ImageReady(item_id=ITEM, owner_id="sub", embedding_model="voyage-3.5"),
    ItemFailed(item_id=ITEM, owner_id="sub", stage="analyze", reason="refused"),
    ItemEdited(item_id=ITEM, owner_id="sub", text_sha256="cd" * 32),
]


@pytest.mark.parametrize("moto_shape", [False, True], ids=["aws-documented", "moto"])
def test_s3_object_created_parses_from_both_shapes(moto_shape):
    event = EventBridgeEvent.model_validate(s3_event("bucket-1", "uploads/sub/x/a.jpg", 42, moto_shape=moto_shape))
    upload = S3ObjectCreated.from_event(event)
    assert (upload.bucket, upload.key, upload.size) == ("bucket-1", "uploads/sub/x/a.jpg", 42)
    assert event.time.year >= 2025


@pytest.mark.parametrize("detail", DETAILS, ids=[d.DETAIL_TYPE for d in DETAILS])
def test_every_pipeline_detail_round_trips(detail):
    assert set(DETAIL_MODELS) == {d.DETAIL_TYPE for d in DETAILS}
    assert EventBridgeEvent.model_validate(pipeline_event(detail)).pipeline_detail() == detail


def test_unknown_detail_type_and_foreign_source_are_refused():
    event = pipeline_event(DETAILS[1])
    with pytest.raises(ValueError, match="unknown detail-type 'Surprise'"):
        EventBridgeEvent.model_validate({**event, "detail-type": "Surprise"}).pipeline_detail()
    with pytest.raises(ValueError, match="not a pipeline event"):
        EventBridgeEvent.model_validate({**event, "source": "someone.else"}).pipeline_detail()
    with pytest.raises(ValueError, match="not an S3 Object Created event"):
        S3ObjectCreated.from_event(EventBridgeEvent.model_validate(event))


def test_unknown_schema_version_and_missing_fields_are_refused():
    event = pipeline_event(DETAILS[1])
    with pytest.raises(ValidationError, match="schema_version"):
        EventBridgeEvent.model_validate({**event, "detail": {**event["detail"], "schema_version": 2}}).pipeline_detail()
    detail = {k: v for k, v in event["detail"].items() if k != "thumbnail_key"}
    with pytest.raises(ValidationError, match="thumbnail_key"):
        EventBridgeEvent.model_validate({**event, "detail": detail}).pipeline_detail()


@pytest.mark.parametrize("module", ["image_processor", "analyzer", "embedder"])
def test_handlers_refuse_a_malformed_envelope_with_a_clear_error(module):
    import importlib

    handler = importlib.import_module(f"services.{module}.handler").handler
    with pytest.raises(ValidationError, match="detail-type"):
        handler({"id": "1", "source": "collections.pipeline", "time": "2026-11-30T00:00:00Z"}, None)


@pytest.mark.parametrize(("module", "detail"), [("analyzer", DETAILS[2]), ("embedder", DETAILS[1])])
def test_handlers_refuse_events_of_another_stage(module, detail):
    import importlib

    handler = importlib.import_module(f"services.{module}.handler").handler
    with pytest.raises(ValueError, match="does not handle"):
        handler(pipeline_event(detail), None)
