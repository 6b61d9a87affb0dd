"""Publishing pipeline events to the EventBridge custom bus (boto3 put_events).

put_events answers 200 even when entries fail; FailedEntryCount says so. A partial failure is
raised, never ignored, so the caller's retry (Lambda/EventBridge, or the API's 5xx) takes over.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from services import catalog
from services.core.settings import ProgramSettings, get_settings

if TYPE_CHECKING:  # annotations only: the contracts load with the first event published
    from services.core.contracts import Detail

MAX_ENTRIES_PER_CALL = 10  # EventBridge's limit for one PutEvents request


class PublishError(RuntimeError):
    def __init__(self, failures: list[dict[str, Any]]):
        self.failures = failures
        summary = "; ".join(f"{f.get('ErrorCode')}: {f.get('ErrorMessage')}" for f in failures)
        super().__init__(f"{len(failures)} event(s) were not accepted by EventBridge: {summary}")


class EventPublisher(Protocol):
    def publish(self, details: Sequence[Detail]) -> None: ...


class EventBridgePublisher:
    def __init__(self, settings: ProgramSettings | None = None, client: Any = None):
        self.settings = settings or get_settings()
        if client is None:
            from services.core.aws import client as aws_client

            client = aws_client("events", self.settings)
        self.client = client

    def entries(self, details: Sequence[Detail]) -> list[dict[str, Any]]:
        return [
            {
                "Source": catalog.PIPELINE_SOURCE,
                "DetailType": d.DETAIL_TYPE,
                "Detail": json.dumps(d.model_dump(mode="json")),
                "EventBusName": self.settings.event_bus,
            }
            for d in details
        ]

    def publish(self, details: Sequence[Detail]) -> None:
        entries = self.entries(details)
        for start in range(0, len(entries), MAX_ENTRIES_PER_CALL):
            batch = entries[start : start + MAX_ENTRIES_PER_CALL]
            response = self.client.put_events(Entries=batch)
            if response.get("FailedEntryCount", 0):
                failed = [r for r in response.get("Entries", []) if r.get("ErrorCode")]
                raise PublishError(failed or [{"ErrorCode": "Unknown", "ErrorMessage": "FailedEntryCount > 0"}])


def get_publisher() -> EventPublisher:
    return EventBridgePublisher()
