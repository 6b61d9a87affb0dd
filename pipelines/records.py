"""The last stable version of each service, recorded in SSM when a shift completes.

`rollback` reads it without a Pulumi run. The record names the function it belongs to: after a
blue/green flip the other slot's versions are not comparable, and a record for the idle slot is ignored.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from pipelines.errors import NotFound, aws_errors


def parameter_prefix(stack: str, service: str) -> str:
    return f"/collections/{stack}/release/{service}"


@dataclass(frozen=True)
class StableRecord:
    function: str
    stable: str
    previous: str = ""  # what was stable before `stable`: where a rollback after a completed shift goes
    at: float = 0.0
    by: str = ""


class StableRecords:
    def __init__(self, ssm: Any, stack: str, service: str):
        self.ssm = ssm
        self.name = f"{parameter_prefix(stack, service)}/stable"

    def read(self, function: str) -> StableRecord | None:
        try:
            with aws_errors(f"reading {self.name}", self.ssm):
                value = self.ssm.get_parameter(Name=self.name)["Parameter"]["Value"]
        except NotFound:
            return None
        try:
            record = StableRecord(**json.loads(value))
        except (ValueError, TypeError):
            return None
        return record if record.function == function else None

    def write(self, record: StableRecord) -> None:
        with aws_errors(f"recording the stable version in {self.name}", self.ssm):
            self.ssm.put_parameter(Name=self.name, Value=json.dumps(asdict(record)), Type="String", Overwrite=True)
