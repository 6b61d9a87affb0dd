"""The worker: handlers invoked with the delivered event, retries by visibility timeout, the DLQ,
schedules, and the background threads `make dev` runs."""

from __future__ import annotations

import dataclasses
import threading
import uuid

import pytest

from services import catalog
from services.core.contracts import ImageAnalyzed, ImageProcessed
from services.core.events import EventBridgePublisher
from services.local.runtime import Wiring
from services.local.worker import LocalContext, Worker, rate_seconds, scheduled_event


def _processed() -> ImageProcessed:
    return ImageProcessed(item_id=uuid.uuid4(), owner_id="u", thumbnail_key="t", sha256="0" * 64)


def test_successful_message_is_deleted(wiring, recorder):
    EventBridgePublisher().publish([_processed()])
    worker = Worker(wiring, handlers=recorder.handlers())

    stats = worker.drain(timeout=30)

    assert stats["analyzer"].succeeded == 1 and stats["analyzer"].failed == 0
    assert worker.pending() == {name: 0 for name in wiring.functions}
    assert worker.dead_letters("analyzer") == []


def test_raising_handler_is_retried_then_dead_lettered_and_the_worker_goes_on(wiring, recorder):
    attempts = []

    def broken(event, context):
        attempts.append(event["id"])
        raise ConnectionError("database unreachable")

    handlers = recorder.handlers()
    handlers["analyzer"] = broken
    detail = _processed()
    EventBridgePublisher().publish([detail])
    EventBridgePublisher().publish([ImageAnalyzed(item_id=uuid.uuid4(), owner_id="u", analysis_model="m")])
    worker = Worker(wiring, handlers=handlers)

    stats = worker.drain(timeout=60)

    # maxReceiveCount is 2 in this module: two attempts of the same event, then the DLQ.
    assert len(attempts) == 2 and len(set(attempts)) == 1
    assert stats["analyzer"].failed == 2 and stats["analyzer"].succeeded == 0
    assert "ConnectionError: database unreachable" in stats["analyzer"].last_error
    [dead] = worker.dead_letters("analyzer")
    assert dead["detail"]["item_id"] == str(detail.item_id)
    assert dead["detail-type"] == catalog.IMAGE_PROCESSED
    # The other function's message was processed in the same drain.
    assert len(recorder.events["embedder"]) == 1


def test_handler_that_fails_once_succeeds_on_the_retry(wiring, recorder):
    calls = []

    def flaky(event, context):
        calls.append(event["id"])
        if len(calls) == 1:
            raise TimeoutError("transient")

    handlers = recorder.handlers()
    handlers["analyzer"] = flaky
    EventBridgePublisher().publish([_processed()])
    worker = Worker(wiring, handlers=handlers)

    stats = worker.drain(timeout=60)

    assert len(calls) == 2
    assert stats["analyzer"].failed == 1 and stats["analyzer"].succeeded == 1
    assert worker.dead_letters("analyzer") == []


def test_undecodable_message_ends_in_the_dlq_without_calling_the_handler(wiring, recorder):
    from services.core.aws import client

    client("sqs").send_message(QueueUrl=wiring.queue("embedder").queue_url, MessageBody="not json")
    worker = Worker(wiring, handlers=recorder.handlers())

    stats = worker.drain(timeout=60)

    assert recorder.events["embedder"] == []
    assert stats["embedder"].failed == 2
    assert "JSONDecodeError" in stats["embedder"].last_error


def test_handler_is_imported_from_the_catalog_path(wiring, recorder, tmp_path, monkeypatch):
    module = f"local_handler_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        "SEEN = []\n"
        "def handler(event, context):\n"
        "    SEEN.append((event['detail-type'], context.function_name, context.get_remaining_time_in_millis()))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    queue = wiring.queue("analyzer")
    function = dataclasses.replace(queue.function, handler=f"{module}.handler")
    functions = {**wiring.functions, "analyzer": dataclasses.replace(queue, function=function)}
    handlers = {k: v for k, v in recorder.handlers().items() if k != "analyzer"}
    EventBridgePublisher().publish([_processed()])

    Worker(Wiring(wiring.prefix, wiring.event_bus, functions), handlers=handlers).drain(timeout=30)

    seen = __import__(module).SEEN
    assert len(seen) == 1
    detail_type, function_name, remaining_ms = seen[0]
    assert detail_type == catalog.IMAGE_PROCESSED
    assert function_name == "collections-local-analyzer"
    assert 0 < remaining_ms <= catalog.function("analyzer").timeout_s * 1000


def test_missing_handler_module_fails_the_message_not_the_worker(wiring, recorder):
    queue = wiring.queue("analyzer")
    function = dataclasses.replace(queue.function, handler="services.no_such_stage.handler.handler")
    functions = {**wiring.functions, "analyzer": dataclasses.replace(queue, function=function)}
    handlers = {k: v for k, v in recorder.handlers().items() if k != "analyzer"}
    EventBridgePublisher().publish([_processed()])
    worker = Worker(Wiring(wiring.prefix, wiring.event_bus, functions), handlers=handlers)

    stats = worker.drain(timeout=60)

    assert stats["analyzer"].failed == 2
    assert "ModuleNotFoundError" in stats["analyzer"].last_error
    assert len(worker.dead_letters("analyzer")) == 1


def test_schedule_sends_a_scheduled_event_naming_its_rule(wiring, recorder):
    worker = Worker(wiring, handlers=recorder.handlers())

    assert worker.trigger_schedule("cleanup") == 1
    worker.drain(timeout=30)

    [event] = recorder.events["cleanup"]
    assert event["source"] == "aws.events" and event["detail-type"] == "Scheduled Event"
    assert event["resources"] == list(wiring.queue("cleanup").rule_arns.values())
    assert event["resources"][0].endswith(":rule/" + wiring.queue("cleanup").rules[0].name)


def test_functions_without_schedules_send_nothing(wiring, recorder):
    assert Worker(wiring, handlers=recorder.handlers()).trigger_schedule("analyzer") == 0


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("rate(1 hour)", 3600), ("rate(5 minutes)", 300), ("rate(1 minute)", 60), ("rate(2 days)", 7200 * 24)],
)
def test_rate_expressions(expression, seconds):
    assert rate_seconds(expression) == seconds


@pytest.mark.parametrize("expression", ["cron(0 12 * * ? *)", "rate(0 hours)", "rate(1 fortnight)", "hourly"])
def test_unsupported_schedule_is_a_clear_error(expression):
    with pytest.raises(ValueError, match="schedule"):
        rate_seconds(expression)


def test_scheduled_event_has_the_aws_shape():
    event = scheduled_event("arn:aws:events:us-east-1:123456789012:rule/r", "us-east-1")
    assert set(event) == {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}
    assert event["time"].endswith("Z") and event["detail"] == {}


def test_background_threads_process_and_stop(wiring, recorder):
    done = threading.Event()
    handlers = recorder.handlers()
    handlers["embedder"] = lambda event, context: done.set()
    worker = Worker(wiring, handlers=handlers, poll_wait_s=1)
    worker.start()
    try:
        with pytest.raises(RuntimeError, match="already started"):
            worker.start()
        EventBridgePublisher().publish([ImageAnalyzed(item_id=uuid.uuid4(), owner_id="u", analysis_model="m")])
        assert done.wait(30), "the embedder thread never received the event"
    finally:
        worker.stop()
    assert all(not t.is_alive() for t in threading.enumerate() if t.name.startswith("worker-"))


def test_local_context_counts_down():
    context = LocalContext("f", 512, "arn", timeout_s=30)
    assert 0 < context.get_remaining_time_in_millis() <= 30_000


def test_background_scheduler_fires_schedule_rules(wiring, recorder, monkeypatch):
    import services.local.worker as worker_module

    fired = threading.Event()
    handlers = recorder.handlers()
    handlers["cleanup"] = lambda event, context: fired.set() if event["detail-type"] == "Scheduled Event" else None
    # rate(1 hour) in the catalog; a fraction of a second here so the loop fires while we wait.
    monkeypatch.setattr(worker_module, "rate_seconds", lambda expression: 0.2)
    worker = Worker(wiring, handlers=handlers, poll_wait_s=1)
    worker.start()
    try:
        assert fired.wait(30), "the scheduler never sent the cleanup schedule's event"
    finally:
        worker.stop()
    Worker(wiring, handlers=recorder.handlers()).drain(timeout=30)  # leave the queues empty
