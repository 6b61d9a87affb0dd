"""EventBridge: the pipeline's custom bus and its dead-letter queue, then the catalog's triggers as
rules whose targets are the active `live` aliases.

Targets keep a stable `target_id` (no slot in it), so a slot flip updates each target's `arn`
in place; permissions are per slot, created before the old slot's go.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.lambda_service import LambdaService
from infra.config import ALIAS_NAME
from services import catalog

# EventBridge retries delivery to Lambda for up to this long; then the event goes to the DLQ.
TARGET_RETRY_ATTEMPTS = 8
TARGET_MAX_EVENT_AGE_S = 3600
DLQ_RETENTION_S = 14 * 24 * 3600


@dataclass
class PipelineBusArgs:
    name: str
    tags: dict[str, str]


class PipelineBus(pulumi.ComponentResource):
    def __init__(self, name: str, args: PipelineBusArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("collections:events:PipelineBus", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.bus = aws.cloudwatch.EventBus(f"{name}-bus", name=args.name, tags=args.tags, opts=child)
        # What never succeeds lands here: undeliverable events and async invocations out of retries.
        self.dead_letter_queue = aws.sqs.Queue(f"{name}-dlq", message_retention_seconds=DLQ_RETENTION_S,
                                               sqs_managed_sse_enabled=True, tags=args.tags, opts=child)
        self.register_outputs({"bus": self.bus.name, "dead_letter_queue": self.dead_letter_queue.arn})


@dataclass
class EventRoutingArgs:
    services: Mapping[str, LambdaService]
    bus: PipelineBus
    bucket_name: pulumi.Input[str]
    tags: dict[str, str]


class EventRouting(pulumi.ComponentResource):
    def __init__(self, name: str, args: EventRoutingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("collections:events:EventRouting", name, None, opts)
        self.rules: dict[str, aws.cloudwatch.EventRule] = {}
        self.targets: dict[str, aws.cloudwatch.EventTarget] = {}
        self.permissions: dict[str, aws.lambda_.Permission] = {}
        for service_name, service in args.services.items():
            for index, trigger in enumerate(service.function_spec.triggers):
                key = f"{service_name.replace('_', '-')}-{trigger.kind}-{index}"
                if isinstance(trigger, catalog.ObjectCreatedTrigger):
                    # S3 notifications go to the default bus (event_bus_name omitted).
                    rule = aws.cloudwatch.EventRule(
                        f"{name}-{key}", description=f"uploads → {service_name}",
                        event_pattern=pulumi.Output.from_input(args.bucket_name).apply(
                            lambda bucket, t=trigger: json.dumps(t.event_pattern(bucket))),
                        tags=args.tags, opts=pulumi.ResourceOptions(parent=self))
                elif isinstance(trigger, catalog.PipelineEventTrigger):
                    rule = aws.cloudwatch.EventRule(
                        f"{name}-{key}", description=f"{', '.join(trigger.detail_types)} → {service_name}",
                        event_bus_name=args.bus.bus.name, event_pattern=json.dumps(trigger.event_pattern()),
                        tags=args.tags, opts=pulumi.ResourceOptions(parent=self))
                elif isinstance(trigger, catalog.ScheduleTrigger):
                    rule = aws.cloudwatch.EventRule(
                        f"{name}-{key}", description=f"{trigger.expression} → {service_name}",
                        schedule_expression=trigger.expression, tags=args.tags,
                        opts=pulumi.ResourceOptions(parent=self))
                else:
                    continue  # http triggers belong to the HTTP API
                self._target(name, key, rule, service, args)
        self._allow_dead_letters(name, args)
        self.register_outputs({"rules": {k: r.arn for k, r in self.rules.items()}})

    def _target(self, name: str, key: str, rule: aws.cloudwatch.EventRule, service: LambdaService,
                args: EventRoutingArgs) -> None:
        child = pulumi.ResourceOptions(parent=self)
        permission = aws.lambda_.Permission(
            f"{name}-{key}-{service.active_slot}", action="lambda:InvokeFunction",
            principal="events.amazonaws.com", function=service.function_name, qualifier=ALIAS_NAME,
            source_arn=rule.arn, opts=child,
        )
        target = aws.cloudwatch.EventTarget(
            f"{name}-{key}", rule=rule.name, event_bus_name=rule.event_bus_name,
            target_id=f"{service.service.name.replace('_', '-')}-{ALIAS_NAME}",
            arn=service.alias_arn,
            retry_policy=aws.cloudwatch.EventTargetRetryPolicyArgs(
                maximum_retry_attempts=TARGET_RETRY_ATTEMPTS, maximum_event_age_in_seconds=TARGET_MAX_EVENT_AGE_S),
            dead_letter_config=aws.cloudwatch.EventTargetDeadLetterConfigArgs(
                arn=args.bus.dead_letter_queue.arn),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[permission]),
        )
        self.rules[key], self.targets[key], self.permissions[key] = rule, target, permission

    def _allow_dead_letters(self, name: str, args: EventRoutingArgs) -> None:
        """EventBridge may put undeliverable events into the DLQ, for our rules only."""
        queue = args.bus.dead_letter_queue
        aws.sqs.QueuePolicy(
            f"{name}-dlq", queue_url=queue.url,
            policy=pulumi.Output.all(queue.arn, *[r.arn for r in self.rules.values()]).apply(
                lambda values: json.dumps({
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Sid": "EventBridgeDeadLetters", "Effect": "Allow",
                        "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage",
                        "Resource": values[0], "Condition": {"ArnEquals": {"aws:SourceArn": values[1:]}},
                    }],
                })),
            opts=pulumi.ResourceOptions(parent=self),
        )
