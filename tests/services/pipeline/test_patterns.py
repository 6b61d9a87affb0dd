"""Patterns and events agree: for every catalog trigger of the pipeline functions, a rule with the
catalog's pattern on moto's EventBridge, targeting an SQS queue, receives the event the upstream
stage really emits, and the handler takes it from the queue body as Lambda would. The S3 trigger
gets a real S3 put into the bucket with EventBridge notifications, on the default bus."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from services import catalog
from services.core.contracts import ProcessingRequested
from services.core.models import ItemStatus
from tests.services.pipeline.conftest import load_item, make_item, put_object, textured_jpeg


class RuleQueue:
    """A rule with a catalog pattern on a bus, delivering to its own SQS queue."""

    def __init__(self, bus: str, pattern: dict):
        from services.core.aws import client

        self.events, self.sqs = client("events"), client("sqs")
        self.bus = bus
        self.name = f"pipeline-test-{uuid.uuid4().hex[:12]}"
        self.url = self.sqs.create_queue(QueueName=self.name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.events.put_rule(Name=self.name, EventBusName=bus, EventPattern=json.dumps(pattern), State="ENABLED")
        self.events.put_targets(Rule=self.name, EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])

    def received(self) -> list[dict]:
        messages = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        bodies = [json.loads(m["Body"]) for m in messages.get("Messages", [])]
        for message in messages.get("Messages", []):
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
        return bodies

    def remove(self) -> None:
        # The default bus is shared by every module on this moto server: leave no rule behind.
        self.events.remove_targets(Rule=self.name, EventBusName=self.bus, Ids=["queue"])
        self.events.delete_rule(Name=self.name, EventBusName=self.bus)
        self.sqs.delete_queue(QueueUrl=self.url)


@pytest.fixture
def rules(env) -> Iterator[dict[str, RuleQueue]]:
    """One rule per trigger of the pipeline functions, named "<function>:<kind>"."""
    made: dict[str, RuleQueue] = {}
    for name in ("image_processor", "analyzer", "embedder"):
        for trigger in catalog.function(name).triggers:
            if isinstance(trigger, catalog.ObjectCreatedTrigger):
                made[f"{name}:s3"] = RuleQueue("default", trigger.event_pattern(env.bucket))
            elif isinstance(trigger, catalog.PipelineEventTrigger):
                made[f"{name}:event"] = RuleQueue(env.event_bus, trigger.event_pattern())
    yield made
    for rule in made.values():
        rule.remove()


def test_every_pipeline_trigger_is_covered(rules):
    assert set(rules) == {"image_processor:s3", "image_processor:event", "analyzer:event", "embedder:event"}


def test_the_pipeline_runs_end_to_end_through_moto_rules_and_queues(rules, owner):
    from services.analyzer.handler import handler as analyze
    from services.embedder.handler import handler as embed
    from services.image_processor.handler import handler as process

    item = make_item(owner)
    put_object(item.original_key, textured_jpeg((640, 480), seed=21))  # a real S3 put

    (s3_event,) = rules["image_processor:s3"].received()  # exactly the shape moto emits
    assert (s3_event["source"], s3_event["detail-type"]) == ("aws.s3", "Object Created")
    assert s3_event["detail"]["object"]["key"] == item.original_key
    assert process(s3_event, None)["result"] == "processed"

    (processed,) = rules["analyzer:event"].received()
    assert processed["detail-type"] == "ImageProcessed"
    assert analyze(processed, None)["result"] == "analyzed"

    (analyzed,) = rules["embedder:event"].received()
    assert analyzed["detail-type"] == "ImageAnalyzed"
    assert embed(analyzed, None)["result"] == "ready"

    assert load_item(item.id).status == ItemStatus.ready
    # Each stage's event reached only its consumer.
    assert all(rule.received() == [] for rule in rules.values())


def test_thumbnails_and_other_prefixes_do_not_trigger_the_processor(rules, owner, env):
    put_object(f"thumbnails/{owner}/{uuid.uuid4()}/256.webp", b"x", "image/webp")
    put_object("exports/report.csv", b"a,b", "text/csv")
    assert rules["image_processor:s3"].received() == []


def test_retry_request_reaches_the_processor(rules, owner):
    from services.core.events import get_publisher
    from services.image_processor.handler import handler as process

    item = make_item(owner)
    put_object(item.original_key, textured_jpeg((320, 240), seed=22))
    rules["image_processor:s3"].received()  # the upload's own event is not what this test is about

    get_publisher().publish([ProcessingRequested(item_id=item.id, owner_id=owner, key=item.original_key)])

    (request,) = rules["image_processor:event"].received()
    assert request["detail-type"] == "ProcessingRequested"
    assert process(request, None)["result"] == "processed"
    assert rules["analyzer:event"].received()[0]["detail"]["item_id"] == str(item.id)
