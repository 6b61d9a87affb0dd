"""The catalog's triggers wired on moto: one SQS queue (with a dead-letter queue) per function and
one EventBridge rule per trigger, targeting that queue.

On AWS each rule targets the function's `live` alias. moto cannot invoke Lambda code (and its
put_events answers 500 when a matching rule targets a Lambda ARN), so locally the queue stands in
for the function and services.local.worker invokes the handler with the SQS body, which is the
EventBridge event exactly as Lambda would receive it. Patterns come from the catalog, so matching
is moto's EventBridge matching of the same patterns the Pulumi program deploys.

Generic over the catalog: a new function with s3/event/schedule triggers gets its queue and rules
here with no code change. HTTP triggers are served by uvicorn (services.local.dev), not wired.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from services import catalog
from services.core.settings import Settings

log = logging.getLogger(__name__)

# Trigger kinds that become rule → queue wiring. "http" is the API (uvicorn locally).
WIRED_KINDS = ("s3", "event", "schedule")
DEFAULT_BUS = "default"
DEFAULT_MAX_RECEIVE_COUNT = 3  # attempts before a message lands in the DLQ (Lambda async retries: 2 + 1)


@dataclass(frozen=True)
class WiredRule:
    name: str
    event_bus: str
    kind: str
    event_pattern: dict[str, Any] | None = None
    schedule_expression: str | None = None


@dataclass(frozen=True)
class FunctionQueue:
    """A function's local stand-in: the queue its rules deliver to, and where failures end up."""

    function: catalog.Function
    queue_url: str
    queue_arn: str
    dlq_url: str
    dlq_arn: str
    rules: tuple[WiredRule, ...]
    rule_arns: dict[str, str]  # rule name → ARN (a scheduled event names its rule in `resources`)
    visibility_timeout_s: int
    max_receive_count: int


@dataclass(frozen=True)
class Wiring:
    prefix: str
    event_bus: str
    functions: dict[str, FunctionQueue]

    def queue(self, function_name: str) -> FunctionQueue:
        try:
            return self.functions[function_name]
        except KeyError:
            known = ", ".join(sorted(self.functions)) or "none"
            raise KeyError(f"function {function_name!r} is not wired locally; wired: {known}") from None


def wired_functions(functions: tuple[catalog.Function, ...] = catalog.FUNCTIONS) -> tuple[catalog.Function, ...]:
    """The functions that get a queue: those with at least one s3/event/schedule trigger."""
    return tuple(f for f in functions if any(t.kind in WIRED_KINDS for t in f.triggers))


def resource_prefix(settings: Settings) -> str:
    # The custom bus name is unique per environment (per test module too), so names never collide
    # on a shared moto server.
    return settings.event_bus


def queue_name(prefix: str, function: catalog.Function) -> str:
    return f"{prefix}-{function.name.replace('_', '-')}"


def rule_name(prefix: str, function: catalog.Function, trigger: catalog.Trigger, index: int) -> str:
    return f"{prefix}-{function.name.replace('_', '-')}-{trigger.kind}-{index}"


def expected_rules(
    settings: Settings, functions: tuple[catalog.Function, ...] = catalog.FUNCTIONS
) -> dict[str, list[WiredRule]]:
    """Per function, the rules its catalog triggers call for (pure: no AWS calls)."""
    prefix = resource_prefix(settings)
    result: dict[str, list[WiredRule]] = {}
    for function in wired_functions(functions):
        rules = []
        for index, trigger in enumerate(function.triggers):
            name = rule_name(prefix, function, trigger, index)
            if isinstance(trigger, catalog.ObjectCreatedTrigger):
                # S3 publishes to the account's default bus, never to a custom one.
                rules.append(WiredRule(name, DEFAULT_BUS, trigger.kind, trigger.event_pattern(settings.bucket)))
            elif isinstance(trigger, catalog.PipelineEventTrigger):
                rules.append(WiredRule(name, settings.event_bus, trigger.kind, trigger.event_pattern()))
            elif isinstance(trigger, catalog.ScheduleTrigger):
                # Schedules only exist on the default bus. moto does not fire them: the worker does.
                rules.append(WiredRule(name, DEFAULT_BUS, trigger.kind, schedule_expression=trigger.expression))
        result[function.name] = rules
    return result


def _clients(settings: Settings) -> tuple[Any, Any]:
    from services.core.aws import client

    return client("sqs", settings), client("events", settings)


def _create_queue(sqs: Any, name: str, attributes: dict[str, str]) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    # create_queue keeps an existing queue's attributes only if they match; set them explicitly.
    sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _allow_eventbridge(queue_arn: str, rule_arns: list[str]) -> str:
    # What an SQS target needs on AWS (moto does not enforce it; kept so the shapes match).
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": rule_arns}},
                }
            ],
        }
    )


def wire(
    settings: Settings,
    functions: tuple[catalog.Function, ...] = catalog.FUNCTIONS,
    *,
    visibility_timeout_s: int | None = None,
    max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT,
) -> Wiring:
    """Create (or update) every queue, DLQ, rule and target the catalog calls for. Idempotent.

    `visibility_timeout_s` is how long a failed message stays hidden before its retry; by default
    each function's timeout, as SQS-triggered Lambdas are configured. Tests pass a tiny value.
    """
    if max_receive_count < 1:
        raise ValueError(f"max_receive_count must be at least 1, got {max_receive_count}")
    if visibility_timeout_s is not None and not 0 <= visibility_timeout_s <= 43200:
        raise ValueError(f"visibility_timeout_s must be within 0..43200, got {visibility_timeout_s}")
    sqs, events = _clients(settings)
    prefix = resource_prefix(settings)
    by_name = {f.name: f for f in functions}
    wired: dict[str, FunctionQueue] = {}
    for function_name, rules in expected_rules(settings, functions).items():
        function = by_name[function_name]
        name = queue_name(prefix, function)
        dlq_url, dlq_arn = _create_queue(sqs, f"{name}-dlq", {"MessageRetentionPeriod": str(14 * 24 * 3600)})
        visibility = function.timeout_s if visibility_timeout_s is None else visibility_timeout_s
        queue_url, queue_arn = _create_queue(
            sqs,
            name,
            {
                "VisibilityTimeout": str(visibility),
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}),
            },
        )
        rule_arns: dict[str, str] = {}
        for rule in rules:
            kwargs: dict[str, Any] = {"Name": rule.name, "EventBusName": rule.event_bus, "State": "ENABLED"}
            if rule.event_pattern is not None:
                kwargs["EventPattern"] = json.dumps(rule.event_pattern)
            else:
                kwargs["ScheduleExpression"] = rule.schedule_expression
            rule_arns[rule.name] = events.put_rule(**kwargs)["RuleArn"]
            if rule.schedule_expression is not None:
                # moto treats a rule without a pattern as matching every event (S3 and pipeline
                # events would reach this queue), and it never fires schedules anyway: the worker's
                # scheduler sends the Scheduled Event to the queue, as the target would on AWS.
                continue
            response = events.put_targets(
                Rule=rule.name, EventBusName=rule.event_bus, Targets=[{"Id": "queue", "Arn": queue_arn}]
            )
            if response.get("FailedEntryCount"):
                raise RuntimeError(f"could not target {name} from rule {rule.name}: {response['FailedEntries']}")
        policy = _allow_eventbridge(queue_arn, list(rule_arns.values()))
        sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": policy})
        wired[function.name] = FunctionQueue(
            function=function,
            queue_url=queue_url,
            queue_arn=queue_arn,
            dlq_url=dlq_url,
            dlq_arn=dlq_arn,
            rules=tuple(rules),
            rule_arns=rule_arns,
            visibility_timeout_s=visibility,
            max_receive_count=max_receive_count,
        )
        log.info("wired %s: %d rule(s) → %s", function.name, len(rules), name)
    return Wiring(prefix=prefix, event_bus=settings.event_bus, functions=wired)
