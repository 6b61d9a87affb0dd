"""The CloudWatch alarms that guard a service's releases (names from the stack outputs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.errors import NotFound, aws_errors

MAX_NAMES_PER_CALL = 100  # DescribeAlarms' limit on AlarmNames


@dataclass(frozen=True)
class AlarmState:
    name: str
    state: str  # OK | ALARM | INSUFFICIENT_DATA
    reason: str = ""


class Alarms:
    def __init__(self, cloudwatch: Any, names: list[str]):
        self.client = cloudwatch
        self.names = list(names)

    def states(self) -> list[AlarmState]:
        found: dict[str, AlarmState] = {}
        for start in range(0, len(self.names), MAX_NAMES_PER_CALL):
            batch = self.names[start : start + MAX_NAMES_PER_CALL]
            with aws_errors("reading alarm states", self.client):
                for page in self.client.get_paginator("describe_alarms").paginate(AlarmNames=batch):
                    for alarm in page.get("MetricAlarms", []) + page.get("CompositeAlarms", []):
                        found[alarm["AlarmName"]] = AlarmState(
                            alarm["AlarmName"], alarm["StateValue"], alarm.get("StateReason", "")
                        )
        missing = [n for n in self.names if n not in found]
        if missing:
            # A release watched by an alarm that does not exist is not watched: refuse.
            raise NotFound(f"alarm(s) not found: {', '.join(missing)}")
        return [found[n] for n in self.names]

    def firing(self) -> list[AlarmState]:
        """Alarms in ALARM. INSUFFICIENT_DATA is not firing: fresh alarms and quiet services have no data."""
        return [a for a in self.states() if a.state == "ALARM"] if self.names else []
