"""Local-runtime fixtures: the catalog wired on this module's moto bus and bucket, and handlers
that record what they receive (the real pipeline handlers are tested in tests/services/pipeline/)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from services.core.settings import get_settings


class Recorder:
    """A handler per function that records each event it is invoked with."""

    def __init__(self, names):
        self.events: dict[str, list[dict[str, Any]]] = {name: [] for name in names}

    def handlers(self) -> dict:
        return {name: self._handler(name) for name in self.events}

    def _handler(self, name):
        def handler(event, context):
            self.events[name].append(event)

        return handler


@pytest.fixture(scope="module")
def wiring(aws):
    from services.local.runtime import wire

    # A tiny visibility timeout: a failed message is retried after 1 s instead of the function timeout.
    return wire(get_settings(), visibility_timeout_s=1, max_receive_count=2)


@pytest.fixture
def empty_queues(wiring) -> Iterator[None]:
    """Every queue and DLQ of the wiring starts empty."""
    from services.core.aws import client

    sqs = client("sqs")
    # Not purge_queue: SQS allows one purge per queue per 60 s.
    for queue in wiring.functions.values():
        for url in (queue.queue_url, queue.dlq_url):
            while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
                for message in messages:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    yield


@pytest.fixture
def recorder(wiring, empty_queues) -> Recorder:
    return Recorder(wiring.functions)
