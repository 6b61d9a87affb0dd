"""Release tooling against moto's server: functions, versions, `live` aliases and alarms made there.

Every test deploys its own service (unique function, stack and parameter names), so tests share
one moto server without seeing each other. Time is a FakeClock: shifts that would wait minutes run
at once, and hooks fire "during" a wait (an alarm going off, Ctrl-C).
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from pipelines.context import ServiceContext
from pipelines.outputs import StackOutputs

ROLE_NAME = "collections-release-test"


class FakeClock:
    """now() starts at the real time (lock expiries are epoch seconds); sleep() only advances it."""

    def __init__(self, start: float | None = None):
        import time

        self.t = time.time() if start is None else start
        self.slept: list[float] = []
        self.hooks: list[Callable[[FakeClock], None]] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.slept.append(seconds)
        self.t += seconds
        for hook in list(self.hooks):
            hook(self)


def tiny_zip(marker: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", f"MARKER = {marker!r}\n\ndef handler(event, context):\n    return MARKER\n")
    return buffer.getvalue()


@dataclass
class Deployed:
    stack: str
    service: str
    function: str
    alarms: list[str]
    clients: dict[str, Any]
    clock: FakeClock
    outputs: StackOutputs
    messages: list[str] = field(default_factory=list)

    def context(self, **options: Any) -> ServiceContext:
        options.setdefault("clock", self.clock)
        options.setdefault("progress", self.messages.append)
        return ServiceContext(stack=self.stack, service=self.outputs.service(self.service), **self.clients, **options)

    @property
    def lambda_client(self) -> Any:
        return self.clients["lambda_client"]

    def alias(self) -> dict[str, Any]:
        raw = self.lambda_client.get_alias(FunctionName=self.function, Name="live")
        weights = (raw.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        return {"version": raw["FunctionVersion"], "weights": {k: v for k, v in weights.items() if v}}

    def publish(self) -> str:
        self.lambda_client.update_function_code(FunctionName=self.function, ZipFile=tiny_zip(uuid.uuid4().hex))
        return self.lambda_client.publish_version(FunctionName=self.function)["Version"]

    def set_alarm(self, state: str, index: int = 0, reason: str = "test") -> None:
        self.clients["cloudwatch"].set_alarm_state(AlarmName=self.alarms[index], StateValue=state, StateReason=reason)


def _client(service: str, endpoint: str) -> Any:
    return boto3.client(service, region_name="us-east-1", endpoint_url=endpoint)


@pytest.fixture(scope="module")
def clients(aws) -> dict[str, Any]:
    iam = _client("iam", aws)
    try:
        iam.get_role(RoleName=ROLE_NAME)
    except iam.exceptions.NoSuchEntityException:
        iam.create_role(
            RoleName=ROLE_NAME,
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
        )
    return {
        "lambda_client": _client("lambda", aws),
        "cloudwatch": _client("cloudwatch", aws),
        "ssm": _client("ssm", aws),
    }


def outputs_for(stack: str, services: dict[str, dict[str, Any]], region: str = "us-east-1") -> StackOutputs:
    return StackOutputs.model_validate({"stack": stack, "region": region, "bucket": f"collections-{stack}",
                                        "services": services})


@pytest.fixture
def deploy(clients) -> Callable[..., Deployed]:
    """deploy(versions=3, alarms=1, release_mode="gradual", pc=0): a function with `live` on v1."""

    def make(versions: int = 3, alarms: int = 1, release_mode: str = "gradual", pc: int = 0,
             service: str = "api", live: str = "1") -> Deployed:
        suffix = uuid.uuid4().hex[:8]
        stack = f"t{suffix}"
        function = f"collections-{stack}-{service.replace('_', '-')}-blue"
        role = f"arn:aws:iam::123456789012:role/{ROLE_NAME}"
        lam = clients["lambda_client"]
        lam.create_function(FunctionName=function, Runtime="python3.12", Role=role, Handler="handler.handler",
                            Code={"ZipFile": tiny_zip("v0")})
        for _ in range(versions):
            lam.update_function_code(FunctionName=function, ZipFile=tiny_zip(uuid.uuid4().hex))
            lam.publish_version(FunctionName=function)
        alias_arn = lam.create_alias(FunctionName=function, Name="live", FunctionVersion=live)["AliasArn"]
        alarm_names = [f"{function}-alarm-{i}" for i in range(alarms)]
        for name in alarm_names:
            clients["cloudwatch"].put_metric_alarm(
                AlarmName=name, MetricName="Errors", Namespace="AWS/Lambda", Statistic="Sum", Period=60,
                EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold",
                Dimensions=[{"Name": "FunctionName", "Value": function}],
            )
            clients["cloudwatch"].set_alarm_state(AlarmName=name, StateValue="OK", StateReason="deployed")
        outputs = outputs_for(stack, {service: {
            "active_slot": "blue", "alias_arn": alias_arn, "alias_name": "live",
            "function_names": {"blue": function}, "release_mode": release_mode,
            "provisioned_concurrency": pc, "alarm_names": alarm_names, "triggers": ["http"],
        }})
        return Deployed(stack, service, function, alarm_names, clients, FakeClock(), outputs)

    return make
