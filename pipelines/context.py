"""Everything one release command needs for one service, wired from the stack outputs.

Commands take a ServiceContext; tests build one around moto's (or a Stubber's) clients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
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


class LazyClient:
    """A boto3 client made on first use: `rollback` needs two services, and making a client costs
    a few hundred milliseconds (it loads the service's API model)."""

    def __init__(self, service: str, settings: Any):
        self._service, self._settings, self._client = service, settings, None

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            from services.core.aws import client

            self._client = client(self._service, self._settings)
        return getattr(self._client, name)


def aws_clients(outputs: StackOutputs) -> dict[str, Any]:
    """lambda, cloudwatch and ssm clients for the stack's region (AWS_ENDPOINT_URL honoured)."""
    from services.core.settings import get_settings

    settings = get_settings().model_copy(update={"aws_region": outputs.region})
    return {
        "lambda_client": LazyClient("lambda", settings),
        "cloudwatch": LazyClient("cloudwatch", settings),
        "ssm": LazyClient("ssm", settings),
    }


def for_service(outputs: StackOutputs, service: ServiceOutputs, **options: Any) -> ServiceContext:
    return ServiceContext(stack=outputs.stack, service=service, **aws_clients(outputs), **options)
