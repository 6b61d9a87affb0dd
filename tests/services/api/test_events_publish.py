"""services.core.events: put_events answers 200 even when entries fail; that must be raised."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest
from botocore.stub import Stubber

from services.core.contracts import ImageAnalyzed, ProcessingRequested
from services.core.events import EventBridgePublisher, PublishError
from services.core.settings import Settings


@pytest.fixture
def stubbed():
    client = boto3.client("events", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield EventBridgePublisher(Settings(event_bus="test-bus"), client=client), stubber


def _detail(n: int = 0) -> ProcessingRequested:
    return ProcessingRequested(item_id=uuid.uuid4(), owner_id=f"user-{n}", key=f"uploads/user-{n}/x/y.png")


def test_partial_failure_is_raised_with_the_failed_entries(stubbed):
    publisher, stubber = stubbed
    stubber.add_response(
        "put_events",
        {
            "FailedEntryCount": 1,
            "Entries": [{"EventId": "ok-1"}, {"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}],
        },
    )
    with pytest.raises(PublishError, match="ThrottlingException: slow down") as raised:
        publisher.publish([_detail(1), _detail(2)])
    assert raised.value.failures == [{"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}]
    stubber.assert_no_pending_responses()


def test_entries_carry_source_type_bus_and_json_detail(stubbed):
    publisher, stubber = stubbed
    detail = ImageAnalyzed(item_id=uuid.uuid4(), owner_id="u", analysis_model="m")
    expected = {
        "Entries": [
            {
                "Source": "collections.pipeline",
                "DetailType": "ImageAnalyzed",
                "Detail": json.dumps(detail.model_dump(mode="json")),
                "EventBusName": "test-bus",
            }
        ]
    }
    stubber.add_response("put_events", {"FailedEntryCount": 0, "Entries": [{"EventId": "1"}]}, expected)
    publisher.publish([detail])
    stubber.assert_no_pending_responses()


def test_more_than_ten_events_go_in_batches_of_ten(stubbed):
    publisher, stubber = stubbed
    for size in (10, 10, 3):
        stubber.add_response(
            "put_events", {"FailedEntryCount": 0, "Entries": [{"EventId": str(i)} for i in range(size)]}
        )
    publisher.publish([_detail(n) for n in range(23)])
    stubber.assert_no_pending_responses()


def test_failure_in_a_later_batch_is_raised(stubbed):
    publisher, stubber = stubbed
    stubber.add_response("put_events", {"FailedEntryCount": 0, "Entries": [{"EventId": str(i)} for i in range(10)]})
    stubber.add_response("put_events", {"FailedEntryCount": 2, "Entries": []})
    with pytest.raises(PublishError, match="FailedEntryCount"):
        publisher.publish([_detail(n) for n in range(12)])
