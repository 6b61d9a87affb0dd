"""Alarms on every service's `live` alias, the API and the DLQ, an SNS topic, one dashboard.

Alarm names are stable (no slot in them) and exported: the release tooling watches them while
it shifts traffic and rolls back when one fires. Their dimensions follow the active slot.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.lambda_service import LambdaService
from infra.config import ALIAS_NAME

PERIOD_S = 60
P95_OF_TIMEOUT = 0.8  # a p95 near the timeout means timeouts are next


@dataclass
class MonitoringArgs:
    prefix: str  # collections-<stack>
    region: str
    services: Mapping[str, LambdaService]
    api_id: pulumi.Input[str]
    api_latency_p95_ms: int
    dead_letter_queue_name: pulumi.Input[str]
    alarm_email: str | None
    tags: dict[str, str]


class Monitoring(pulumi.ComponentResource):
    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("collections:monitoring:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.topic = aws.sns.Topic(f"{name}-alarms", tags=args.tags, opts=child)
        if args.alarm_email:
            aws.sns.TopicSubscription(f"{name}-email", topic=self.topic.arn, protocol="email",
                                      endpoint=args.alarm_email, opts=child)
        self.alarm_names: dict[str, list[str]] = {}
        for service_name, service in args.services.items():
            slug = service_name.replace("_", "-")
            dimensions = {
                "FunctionName": service.function_name,
                "Resource": service.function_name.apply(lambda fn: f"{fn}:{ALIAS_NAME}"),
            }
            errors = self._alarm(
                f"{name}-{slug}-errors", f"{args.prefix}-{slug}-errors", args,
                alarm_description=f"{service_name}: invocation errors on the {ALIAS_NAME} alias",
                namespace="AWS/Lambda", metric_name="Errors", statistic="Sum", threshold=0,
                dimensions=dimensions,
            )
            duration = self._alarm(
                f"{name}-{slug}-duration", f"{args.prefix}-{slug}-duration-p95", args,
                alarm_description=f"{service_name}: p95 duration near the timeout on the {ALIAS_NAME} alias",
                namespace="AWS/Lambda", metric_name="Duration", extended_statistic="p95",
                threshold=service.service.timeout_s * 1000 * P95_OF_TIMEOUT, dimensions=dimensions,
            )
            self.alarm_names[service_name] = [errors, duration]

        api_dimensions = {"ApiId": args.api_id, "Stage": "$default"}
        latency = self._alarm(
            f"{name}-api-latency", f"{args.prefix}-api-latency-p95", args,
            alarm_description=f"HTTP API p95 latency above {args.api_latency_p95_ms} ms",
            namespace="AWS/ApiGateway", metric_name="Latency", extended_statistic="p95",
            threshold=args.api_latency_p95_ms, dimensions=api_dimensions,
        )
        server_errors = self._alarm(
            f"{name}-api-5xx", f"{args.prefix}-api-5xx", args, alarm_description="HTTP API 5xx responses",
            namespace="AWS/ApiGateway", metric_name="5xx", statistic="Sum", threshold=0,
            dimensions=api_dimensions,
        )
        if "api" in self.alarm_names:
            self.alarm_names["api"] += [latency, server_errors]
        self.dlq_alarm = self._alarm(
            f"{name}-dlq-depth", f"{args.prefix}-dlq-depth", args,
            alarm_description="Pipeline events or invocations that never succeeded", namespace="AWS/SQS",
            metric_name="ApproximateNumberOfMessagesVisible", statistic="Maximum", threshold=0,
            dimensions={"QueueName": args.dead_letter_queue_name},
        )
        self.dashboard_name = f"{args.prefix}"
        self.dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard", dashboard_name=self.dashboard_name,
            dashboard_body=pulumi.Output.all(
                args.api_id, args.dead_letter_queue_name,
                *[s.function_name for s in args.services.values()],
            ).apply(lambda values: dashboard_body(args.region, list(args.services), values[0], values[1],
                                                  values[2:])),
            opts=child,
        )
        self.register_outputs({"alarm_names": self.alarm_names, "dashboard": self.dashboard_name})

    def _alarm(self, resource_name: str, alarm_name: str, args: MonitoringArgs, *, threshold: float,
               statistic: str | None = None, extended_statistic: str | None = None, **kwargs) -> str:
        aws.cloudwatch.MetricAlarm(
            resource_name, name=alarm_name, comparison_operator="GreaterThanThreshold",
            evaluation_periods=5, datapoints_to_alarm=3, period=PERIOD_S, threshold=threshold,
            statistic=statistic, extended_statistic=extended_statistic, treat_missing_data="notBreaching",
            alarm_actions=[self.topic.arn], ok_actions=[self.topic.arn], tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self), **kwargs,
        )
        return alarm_name


def dashboard_body(region: str, services: list[str], api_id: str, dlq_name: str, functions: list[str]) -> str:
    widgets = []
    for index, (service, fn) in enumerate(zip(services, functions, strict=True)):
        resource = f"{fn}:{ALIAS_NAME}"
        widgets.append({
            "type": "metric", "x": (index % 2) * 12, "y": (index // 2) * 6, "width": 12, "height": 6,
            "properties": {
                "title": f"{service} ({resource})", "region": region, "view": "timeSeries", "stat": "Sum",
                "metrics": [
                    ["AWS/Lambda", "Invocations", "FunctionName", fn, "Resource", resource],
                    [".", "Errors", ".", ".", ".", "."],
                    [".", "Throttles", ".", ".", ".", "."],
                    [".", "Duration", ".", ".", ".", ".", {"stat": "p95", "yAxis": "right"}],
                ],
            },
        })
    y = ((len(services) + 1) // 2) * 6
    widgets.append({
        "type": "metric", "x": 0, "y": y, "width": 12, "height": 6,
        "properties": {"title": "HTTP API", "region": region, "view": "timeSeries", "metrics": [
            ["AWS/ApiGateway", "Latency", "ApiId", api_id, "Stage", "$default", {"stat": "p95"}],
            [".", "5xx", ".", ".", ".", ".", {"stat": "Sum", "yAxis": "right"}],
        ]},
    })
    widgets.append({
        "type": "metric", "x": 12, "y": y, "width": 12, "height": 6,
        "properties": {"title": "Dead-letter queue", "region": region, "view": "timeSeries", "metrics": [
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", dlq_name, {"stat": "Maximum"}],
        ]},
    })
    return json.dumps({"widgets": widgets})
