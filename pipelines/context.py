"""Everything one release command needs for one service, wired from the stack outputs.

Commands take a ServiceContext; tests build one around moto's (or a Stubber's) clients.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pipelines.alarms import Alarms
from pipelines.clock import Clock, SystemClock
from pipelines.lock import Lock
from pipelines.outputs import ServiceOutputs, StackOutputs
from pipelines.records import StableRecords, parameter_prefix
from pipelines.traffic import Traffic


def _print(message: str) -> None:
    print(message, flush=True)


@dataclass
class ServiceContext:
    stack: str
    service: ServiceOutputs
    lambda_client: Any
    cloudwatch: Any
    ssm: Any
    clock: Clock = field(default_factory=SystemClock)
    progress: Callable[[str], None] = _print
    lock_ttl_s: float = 900
    lock_owner: str | None = None

    @property
    def traffic(self) -> Traffic:
        return Traffic(self.lambda_client, self.service.function_name, self.service.alias_name)

    def traffic_for(self, function_name: str) -> Traffic:
        return Traffic(self.lambda_client, function_name, self.service.alias_name)

    @property
    def alarms(self) -> Alarms:
        return Alarms(self.cloudwatch, self.service.alarm_names)

    @property
    def records(self) -> StableRecords:
        return StableRecords(self.ssm, self.stack, self.service.name)

    def lock(self) -> Lock:
        return Lock(
            self.ssm, f"{parameter_prefix(self.stack, self.service.name)}/lock", self.clock, self.lock_ttl_s,
            self.lock_owner,
        )


# A release command is often run during an incident: fail in seconds with a clear line rather than
# hang on botocore's defaults (60 s connect and read timeouts). Attempts follow AWS_MAX_ATTEMPTS,
# botocore's own variable (total attempts, the first included), so an operator (or a test) can make
# an outage fail at once; otherwise as services.core.aws: 5 retries in standard mode.
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 30
DEFAULT_TOTAL_ATTEMPTS = 6


@lru_cache(maxsize=1)
def _session() -> Any:
    import boto3

    return boto3.session.Session()  # one per process: the API models and credentials load once


def release_client(service: str, region: str, endpoint_url: str | None) -> Any:
    from botocore.config import Config

    attempts = os.environ.get("AWS_MAX_ATTEMPTS", "").strip()
    config = Config(
        connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S, signature_version="s3v4",
        retries={"mode": "standard",
                 "total_max_attempts": int(attempts) if attempts.isdigit() else DEFAULT_TOTAL_ATTEMPTS},
    )
    return _session().client(service, region_name=region, endpoint_url=endpoint_url, config=config)


class LazyClient:
    """A boto3 client made on first use: `rollback` needs two services, and making a client costs
    a few hundred milliseconds (it loads the service's API model)."""

    def __init__(self, service: str, settings: Any):
        self._service, self._settings, self._client = service, settings, None

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            self._client = release_client(self._service, self._settings.aws_region, self._settings.aws_endpoint_url)
        return getattr(self._client, name)


def aws_clients(outputs: StackOutputs) -> dict[str, Any]:
    """lambda, cloudwatch and ssm clients for the stack's region (AWS_ENDPOINT_URL honoured)."""
    from services.core.settings import ReleaseSettings

    settings = ReleaseSettings().model_copy(update={"aws_region": outputs.region})
    return {
        "lambda_client": LazyClient("lambda", settings),
        "cloudwatch": LazyClient("cloudwatch", settings),
        "ssm": LazyClient("ssm", settings),
    }


def for_service(outputs: StackOutputs, service: ServiceOutputs, **options: Any) -> ServiceContext:
    return ServiceContext(stack=outputs.stack, service=service, **aws_clients(outputs), **options)
