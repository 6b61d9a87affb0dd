"""POST /items/{id}/retry: a failed item goes back to its failed stage's input status and that
stage's event reaches the bus (observed through a rule → SQS queue on moto's EventBridge)."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest

from services.api.deps import get_publisher
from services.core import retry
from services.core.database import session_scope
from services.core.events import PublishError
from services.core.models import Item, ItemStatus, Stage
from services.core.settings import get_settings


@pytest.fixture(scope="module")
def bus_queue(aws, cognito):
    """Every pipeline event on this module's bus lands in an SQS queue we can read."""
    settings = get_settings()
    events = boto3.client("events", region_name=settings.aws_region, endpoint_url=aws)
    sqs = boto3.client("sqs", region_name=settings.aws_region, endpoint_url=aws)
    queue_url = sqs.create_queue(QueueName=f"retry-observer-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(
        Name="observe-pipeline",
        EventBusName=settings.event_bus,
        EventPattern=json.dumps({"source": ["collections.pipeline"]}),
    )
    events.put_targets(
        Rule="observe-pipeline", EventBusName=settings.event_bus, Targets=[{"Id": "q", "Arn": queue_arn}]
    )

    def drain() -> list[dict]:
        messages = []
        while True:
            batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
                "Messages", []
            )
            if not batch:
                return messages
            for message in batch:
                messages.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    drain()
    return drain


def _state(item_id) -> tuple:
    with session_scope() as session:
        item = session.get(Item, item_id)
        return item.status, item.failed_stage, item.failure_reason


@pytest.mark.parametrize(
    "stage, status_after, detail_type, detail_fields",
    [
        ("process", "pending", "ProcessingRequested", {"key"}),
        ("analyze", "processed", "ImageProcessed", {"thumbnail_key", "sha256"}),
        ("embed", "analyzed", "ImageAnalyzed", {"analysis_model"}),
    ],
)
def test_retry_resets_status_and_publishes_the_stage_event(
    client, alice, make_item, bus_queue, stage, status_after, detail_type, detail_fields
):
    # A failed item that had reached the failed stage: outputs of the earlier stages exist.
    earlier = {"process": "pending", "analyze": "processed", "embed": "analyzed"}[stage]
    item_id = make_item(alice.sub, status=earlier)
    with session_scope() as session:
        item = session.get(Item, item_id)
        item.status, item.failed_stage, item.failure_reason = ItemStatus.failed, Stage(stage), "boom"
        original_key, thumbnails = item.original_key, item.thumbnail_keys

    response = client.post(f"/items/{item_id}/retry", headers=alice.headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == status_after and response.json()["failed_stage"] is None
    assert _state(item_id) == (ItemStatus(status_after), None, None)

    [event] = bus_queue()
    assert event["source"] == "collections.pipeline" and event["detail-type"] == detail_type
    detail = event["detail"]
    assert detail["item_id"] == str(item_id) and detail["owner_id"] == alice.sub and detail["schema_version"] == 1
    assert detail_fields <= set(detail)
    if stage == "process":
        assert detail["key"] == original_key
    if stage == "analyze":
        assert detail["thumbnail_key"] == thumbnails["1024"] and detail["sha256"] == "ab" * 32
    if stage == "embed":
        assert detail["analysis_model"] == "local-vision-v1"


@pytest.mark.parametrize("status", ["pending", "processed", "analyzed", "ready"])
def test_retry_of_an_item_that_has_not_failed_is_409(client, alice, make_item, bus_queue, status):
    item_id = make_item(alice.sub, status=status)
    response = client.post(f"/items/{item_id}/retry", headers=alice.headers)
    assert response.status_code == 409
    assert f"is {status}; only failed items can be retried" in response.json()["error"]["message"]
    assert bus_queue() == []
    assert _state(item_id)[0] is ItemStatus(status)


def test_retry_of_deleted_or_missing_items_is_404(client, alice, make_item, bus_queue):
    deleted = make_item(alice.sub, status="deleted", failed_stage="process")
    assert client.post(f"/items/{deleted}/retry", headers=alice.headers).status_code == 404
    assert client.post(f"/items/{uuid.uuid4()}/retry", headers=alice.headers).status_code == 404
    assert bus_queue() == []


def test_failed_publish_keeps_the_item_failed(client, app, alice, make_item, bus_queue):
    class RefusingPublisher:
        def publish(self, details):
            raise PublishError([{"ErrorCode": "InternalFailure", "ErrorMessage": "try later"}])

    item_id = make_item(alice.sub, status="failed", failed_stage="process", failure_reason="boom")
    app.dependency_overrides[get_publisher] = RefusingPublisher
    try:
        response = client.post(f"/items/{item_id}/retry", headers=alice.headers)
    finally:
        app.dependency_overrides.pop(get_publisher)
    assert response.status_code == 503 and response.json()["error"]["code"] == "unavailable"
    assert _state(item_id) == (ItemStatus.failed, Stage.process, "boom")


def test_retry_falls_back_to_an_earlier_stage_when_inputs_are_missing(make_item, alice):
    """An analyze failure recorded before thumbnails existed resumes at process (the item has no
    1024 thumbnail to analyse); a failure without a stage also starts over."""

    class Recorder:
        def __init__(self):
            self.details = []

        def publish(self, details):
            self.details.extend(details)

    no_thumbs = make_item(alice.sub, status="failed", failed_stage="analyze")
    no_stage = make_item(alice.sub, status="failed")
    recorder = Recorder()
    with session_scope() as session:
        retry.retry_item(session, no_thumbs, recorder, owner_id=alice.sub)
        retry.retry_item(session, no_stage, recorder)  # operator use: any owner
    assert [d.DETAIL_TYPE for d in recorder.details] == ["ProcessingRequested", "ProcessingRequested"]
    assert _state(no_thumbs)[0] is ItemStatus.pending and _state(no_stage)[0] is ItemStatus.pending


def test_retry_logic_checks_the_owner(make_item, alice, bob):
    item_id = make_item(alice.sub, status="failed", failed_stage="process")
    with session_scope() as session, pytest.raises(retry.ItemNotFound):
        retry.retry_item(session, item_id, publisher=None, owner_id=bob.sub)
    assert _state(item_id)[0] is ItemStatus.failed


def test_the_reset_is_committed_before_the_event_goes_out(make_item, alice):
    """A stage skips a failed item at once: if the event could outrun the commit, the retry would be
    lost with the item stuck at its input status. What another connection sees at publish time is
    what a stage would see."""

    class Observer:
        seen: tuple | None = None

        def publish(self, details):
            Observer.seen = _state(item_id)

    item_id = make_item(alice.sub, status="failed", failed_stage="process", failure_reason="boom")
    with session_scope() as session:
        retry.retry_item(session, item_id, Observer(), owner_id=alice.sub)
    assert Observer.seen == (ItemStatus.pending, None, None)
