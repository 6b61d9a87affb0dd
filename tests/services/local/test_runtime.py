"""The catalog wired on moto: rules with the catalog's patterns, SQS targets, and AWS's matching."""

from __future__ import annotations

import dataclasses
import json
import uuid

import pytest

from services import catalog
from services.core.aws import client
from services.core.contracts import ImageAnalyzed, ImageProcessed, ProcessingRequested
from services.core.events import EventBridgePublisher
from services.core.settings import get_settings
from services.local.runtime import DEFAULT_BUS, expected_rules, queue_name, wire, wired_functions
from services.local.worker import Worker

EVENT_KINDS = ("s3", "event", "schedule")


def _rules_on_moto(prefix: str, bus: str) -> dict[str, dict]:
    events = client("events")
    rules = events.list_rules(NamePrefix=prefix, EventBusName=bus)["Rules"]
    return {r["Name"]: r for r in rules}


def _targets(rule: str, bus: str) -> list[str]:
    return [t["Arn"] for t in client("events").list_targets_by_rule(Rule=rule, EventBusName=bus)["Targets"]]


def test_every_catalog_trigger_has_a_rule_with_its_pattern_targeting_the_function_queue(wiring):
    settings = get_settings()
    checked = 0
    for function in catalog.FUNCTIONS:
        for index, trigger in enumerate(function.triggers):
            if trigger.kind not in EVENT_KINDS:
                continue
            queue = wiring.queue(function.name)
            bus = settings.event_bus if trigger.kind == "event" else DEFAULT_BUS
            name = f"{wiring.prefix}-{function.name.replace('_', '-')}-{trigger.kind}-{index}"
            rule = _rules_on_moto(name, bus)[name]
            if trigger.kind == "s3":
                assert json.loads(rule["EventPattern"]) == trigger.event_pattern(settings.bucket)
            elif trigger.kind == "event":
                assert json.loads(rule["EventPattern"]) == trigger.event_pattern()
            else:
                assert rule["ScheduleExpression"] == trigger.expression
            # Schedule rules carry no target locally (the worker's scheduler sends their events).
            expected_targets = [] if trigger.kind == "schedule" else [queue.queue_arn]
            assert _targets(name, bus) == expected_targets
            checked += 1
    # The catalog has an S3 trigger, four pipeline triggers and one schedule today.
    assert checked >= 5


def test_nothing_is_wired_that_the_catalog_lacks(wiring):
    """Every rule and queue on moto under this environment's prefix traces back to a catalog trigger."""
    settings = get_settings()
    queue_of_arn = {q.queue_arn: name for name, q in wiring.functions.items()}
    catalog_triggers = {
        (f.name, json.dumps(t.event_pattern(settings.bucket) if t.kind == "s3" else t.event_pattern(), sort_keys=True))
        for f in catalog.FUNCTIONS
        for t in f.triggers
        if t.kind in ("s3", "event")
    }
    catalog_schedules = {(f.name, t.expression) for f in catalog.FUNCTIONS for t in f.triggers if t.kind == "schedule"}

    wired_triggers, wired_schedules = set(), set()
    for bus in (DEFAULT_BUS, settings.event_bus):
        for name, rule in _rules_on_moto(wiring.prefix, bus).items():
            if "ScheduleExpression" in rule:
                owner = next(f for f, q in wiring.functions.items() if name in q.rule_arns)
                wired_schedules.add((owner, rule["ScheduleExpression"]))
                continue
            [target] = _targets(name, bus)
            pattern = json.dumps(json.loads(rule["EventPattern"]), sort_keys=True)
            wired_triggers.add((queue_of_arn[target], pattern))
    assert wired_triggers == catalog_triggers
    assert wired_schedules == catalog_schedules

    queues = client("sqs").list_queues(QueueNamePrefix=wiring.prefix).get("QueueUrls", [])
    names = {url.rsplit("/", 1)[1] for url in queues}
    functions = [f for f in catalog.FUNCTIONS if any(t.kind in EVENT_KINDS for t in f.triggers)]
    assert names == {queue_name(wiring.prefix, f) for f in functions} | {
        f"{queue_name(wiring.prefix, f)}-dlq" for f in functions
    }
    # The API (http) and migrate (no trigger) are not queue-driven.
    assert set(wiring.functions) == {f.name for f in functions} == set(f.name for f in wired_functions())
    assert "api" not in wiring.functions and "migrate" not in wiring.functions


def test_queue_redrives_to_its_dead_letter_queue(wiring):
    sqs = client("sqs")
    for queue in wiring.functions.values():
        attributes = sqs.get_queue_attributes(QueueUrl=queue.queue_url, AttributeNames=["All"])["Attributes"]
        policy = json.loads(attributes["RedrivePolicy"])
        assert policy["deadLetterTargetArn"] == queue.dlq_arn
        assert int(policy["maxReceiveCount"]) == 2
        assert attributes["VisibilityTimeout"] == "1"


def test_wiring_twice_is_idempotent(wiring):
    again = wire(get_settings(), visibility_timeout_s=1, max_receive_count=2)
    assert {n: q.queue_url for n, q in again.functions.items()} == {
        n: q.queue_url for n, q in wiring.functions.items()
    }
    assert len(_rules_on_moto(wiring.prefix, DEFAULT_BUS)) == sum(
        1 for rules in expected_rules(get_settings()).values() for r in rules if r.event_bus == DEFAULT_BUS
    )


def test_upload_under_uploads_reaches_only_the_image_processor(wiring, recorder):
    settings = get_settings()
    s3 = client("s3")
    key = f"uploads/user-1/{uuid.uuid4()}/cat.png"
    s3.put_object(Bucket=settings.bucket, Key=key, Body=b"png", ContentType="image/png")
    s3.put_object(Bucket=settings.bucket, Key="thumbnails/user-1/x/256.webp", Body=b"webp")

    Worker(wiring, handlers=recorder.handlers()).drain(timeout=30)

    [event] = recorder.events["image_processor"]
    assert event["source"] == "aws.s3" and event["detail-type"] == "Object Created"
    assert event["detail"]["bucket"]["name"] == settings.bucket
    assert event["detail"]["object"]["key"] == key
    assert all(not events for name, events in recorder.events.items() if name != "image_processor")


def test_upload_to_another_bucket_is_not_delivered(wiring, recorder):
    s3 = client("s3")
    other = f"other-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=other)
    s3.put_bucket_notification_configuration(Bucket=other, NotificationConfiguration={"EventBridgeConfiguration": {}})
    s3.put_object(Bucket=other, Key="uploads/u/x/a.png", Body=b"png")

    Worker(wiring, handlers=recorder.handlers()).drain(timeout=30)

    assert not any(recorder.events.values())


@pytest.mark.parametrize(
    ("detail", "function_name"),
    [
        (ProcessingRequested(item_id=uuid.uuid4(), owner_id="u", key="uploads/u/x/a.png"), "image_processor"),
        (ImageProcessed(item_id=uuid.uuid4(), owner_id="u", thumbnail_key="t", sha256="0" * 64), "analyzer"),
        (ImageAnalyzed(item_id=uuid.uuid4(), owner_id="u", analysis_model="m"), "embedder"),
    ],
)
def test_pipeline_events_reach_the_function_the_catalog_names(wiring, recorder, detail, function_name):
    EventBridgePublisher().publish([detail])

    Worker(wiring, handlers=recorder.handlers()).drain(timeout=30)

    [event] = recorder.events[function_name]
    assert event["source"] == catalog.PIPELINE_SOURCE
    assert event["detail-type"] == detail.DETAIL_TYPE
    assert event["detail"]["item_id"] == str(detail.item_id)
    assert sum(len(v) for v in recorder.events.values()) == 1


def test_a_new_catalog_function_gets_its_queue_and_rule_without_code_change(wiring, empty_queues):
    audit = catalog.Function(
        name="ready_audit",
        handler="services.ready_audit.handler.handler",
        description="test-only consumer of ImageReady",
        triggers=(catalog.PipelineEventTrigger((catalog.IMAGE_READY,)),),
    )
    functions = (*catalog.FUNCTIONS, audit)
    extended = wire(get_settings(), functions, visibility_timeout_s=1, max_receive_count=2)
    try:
        assert "ready_audit" in extended.functions
        seen = []
        handlers = {name: (lambda e, c: None) for name in extended.functions}
        handlers["ready_audit"] = lambda event, context: seen.append(event)
        EventBridgePublisher().publish(
            [__import__("services.core.contracts", fromlist=["ImageReady"]).ImageReady(
                item_id=uuid.uuid4(), owner_id="u", embedding_model="m"
            )]
        )
        Worker(extended, handlers=handlers).drain(timeout=30)
        assert [e["detail-type"] for e in seen] == [catalog.IMAGE_READY]
    finally:
        # Leave the module's wiring as the catalog has it, for the agreement tests.
        events = client("events")
        for rule in extended.queue("ready_audit").rules:
            events.remove_targets(Rule=rule.name, EventBusName=rule.event_bus, Ids=["queue"])
            events.delete_rule(Name=rule.name, EventBusName=rule.event_bus)
        sqs = client("sqs")
        sqs.delete_queue(QueueUrl=extended.queue("ready_audit").queue_url)
        sqs.delete_queue(QueueUrl=extended.queue("ready_audit").dlq_url)


def test_wire_rejects_bad_retry_settings(aws):
    with pytest.raises(ValueError, match="max_receive_count"):
        wire(get_settings(), max_receive_count=0)
    with pytest.raises(ValueError, match="visibility_timeout_s"):
        wire(get_settings(), visibility_timeout_s=-1)


def test_unknown_function_names_the_wired_ones(wiring):
    with pytest.raises(KeyError, match="image_processor"):
        wiring.queue("nope")


def test_function_dataclass_is_frozen():
    # The wiring keys on catalog entries; they must not change under it.
    with pytest.raises(dataclasses.FrozenInstanceError):
        catalog.FUNCTIONS[0].name = "x"  # type: ignore[misc]
