"""Alarms on every service's `live` alias, the API, event delivery, the DLQ and the database; an SNS
topic; one dashboard.

Alarm names are stable (no slot in them) and exported: the release tooling watches them while
it shifts traffic and rolls back when one fires. Their dimensions follow the active slot.

Metric names and dimensions are AWS's own:
- AWS/Lambda (Lambda Developer Guide, "Types of metrics for Lambda functions"): Errors, Throttles,
  Duration, ProvisionedConcurrencySpilloverInvocations, DestinationDeliveryFailures, by
  {FunctionName, Resource=function:alias}.
- AWS/Events (EventBridge User Guide, "Monitoring Amazon EventBridge"): FailedInvocations by
  {RuleName} for the default bus, {EventBusName, RuleName} for a custom bus; sent only when not zero.
- AWS/SQS ApproximateNumberOfMessagesVisible by {QueueName}; AWS/RDS DatabaseConnections by
  {DBInstanceIdentifier}, and for RDS Proxy ClientConnections / DatabaseConnections by {ProxyName}.
Ours: the stages' outcomes (services/core/observability.py OUTCOME_METRICS), published by the functions
in embedded metric format under the stack's namespace by {service, stage}; the dashboard finds every
(service, stage) pair with a SEARCH expression, so a new stage shows up without a change here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.components.lambda_service import LambdaService
from infra.config import ALIAS_NAME, PROJECT
from services import catalog
from services.core.observability import OUTCOME_METRICS, STAGE_DIMENSIONS

PERIOD_S = 60
P95_OF_TIMEOUT = 0.8  # a p95 near the timeout means timeouts are next
DEFAULT_BUS = "default"

# The database's max_connections is the catalog's budget, set in its parameter group (infra/connection_budget.py),
# so the alarm fires at 70 % of that figure: the same on every instance class.
CONNECTIONS_ALARM_SHARE = 0.7
# Stage outcomes that move an item on, and those that stop a delivery (one graph each).
ADVANCING_OUTCOMES = ("processed", "analyzed", "ready")


def metrics_namespace(stack: str) -> str:
    """The functions' own metrics (COLLECTIONS_METRICS_NAMESPACE): one namespace per stack, so a dev or
    preview stack in the same account never mixes with prod on the dashboard."""
    return f"{PROJECT.capitalize()}/{stack}"


def max_connections_alarm() -> int:
    return int(catalog.DATABASE_MAX_CONNECTIONS * CONNECTIONS_ALARM_SHARE)


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
    # service -> its EventBridge rules (EventRouting.rules): FailedInvocations per rule
    event_rules: Mapping[str, list[aws.cloudwatch.EventRule]] = field(default_factory=dict)
    database_instance_id: pulumi.Input[str] | None = None  # rds mode
    database_proxy_name: pulumi.Input[str] | None = None  # when the RDS Proxy is on
    metrics_namespace: str | None = None  # the functions' stage outcomes (embedded metric format)


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
            throttles = self._alarm(
                f"{name}-{slug}-throttles", f"{args.prefix}-{slug}-throttles", args,
                alarm_description=f"{service_name}: invocations throttled on the {ALIAS_NAME} alias",
                namespace="AWS/Lambda", metric_name="Throttles", statistic="Sum", threshold=0,
                dimensions=dimensions,
            )
            self.alarm_names[service_name] = [errors, duration, throttles]
            if service.service.provisioned_concurrency:
                self.alarm_names[service_name].append(self._alarm(
                    f"{name}-{slug}-spillover", f"{args.prefix}-{slug}-pc-spillover", args,
                    alarm_description=f"{service_name}: invocations beyond provisioned concurrency (cold starts)",
                    namespace="AWS/Lambda", metric_name="ProvisionedConcurrencySpilloverInvocations",
                    statistic="Sum", threshold=0, dimensions=dimensions,
                ))
            if any(t.kind in ("s3", "event", "schedule") for t in service.function_spec.triggers):
                self.alarm_names[service_name].append(self._alarm(
                    f"{name}-{slug}-destination-failures", f"{args.prefix}-{slug}-destination-failures", args,
                    alarm_description=f"{service_name}: failed async invocations not delivered to their destination",
                    namespace="AWS/Lambda", metric_name="DestinationDeliveryFailures", statistic="Sum", threshold=0,
                    dimensions=dimensions,
                ))
            for index, rule in enumerate(args.event_rules.get(service_name, [])):
                self.alarm_names[service_name].append(self._alarm(
                    f"{name}-{slug}-rule-{index}-failed", f"{args.prefix}-{slug}-rule-{index}-failed-invocations",
                    args, alarm_description=f"{service_name}: EventBridge could not deliver to it (after retries)",
                    namespace="AWS/Events", metric_name="FailedInvocations", statistic="Sum", threshold=0,
                    dimensions=pulumi.Output.all(rule.name, rule.event_bus_name).apply(
                        lambda values: rule_dimensions(values[0], values[1])),
                ))

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
        self.database_alarm = None
        if args.database_instance_id is not None:
            self.database_alarm = self._alarm(
                f"{name}-db-connections", f"{args.prefix}-db-connections", args,
                alarm_description="Database connections near max_connections (the connection budget)",
                namespace="AWS/RDS", metric_name="DatabaseConnections", statistic="Maximum",
                threshold=max_connections_alarm(),
                dimensions={"DBInstanceIdentifier": args.database_instance_id},
            )
        self.dashboard_name = f"{args.prefix}"
        self.dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard", dashboard_name=self.dashboard_name,
            dashboard_body=pulumi.Output.all(
                args.api_id, args.dead_letter_queue_name, args.database_instance_id, args.database_proxy_name,
                [pulumi.Output.all(r.name, r.event_bus_name) for rules in args.event_rules.values() for r in rules],
                *[s.function_name for s in args.services.values()],
            ).apply(lambda values: dashboard_body(args.region, list(args.services), values[0], values[1],
                                                  values[5:], database=values[2], proxy=values[3],
                                                  rules=[tuple(r) for r in values[4]],
                                                  metrics_namespace=args.metrics_namespace)),
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


def rule_dimensions(rule: str, bus: str | None) -> dict[str, str]:
    """EventBridge publishes a default-bus rule's metrics by RuleName, a custom bus's by EventBusName too."""
    if not bus or bus == DEFAULT_BUS:
        return {"RuleName": rule}
    return {"EventBusName": bus, "RuleName": rule}


def dashboard_body(region: str, services: list[str], api_id: str, dlq_name: str, functions: list[str], *,
                   database: str | None = None, proxy: str | None = None,
                   rules: list[tuple[str, str]] | None = None, metrics_namespace: str | None = None) -> str:
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
                    [".", "ProvisionedConcurrencySpilloverInvocations", ".", ".", ".", "."],
                    [".", "DestinationDeliveryFailures", ".", ".", ".", "."],
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
    y += 6
    if rules:
        metrics = []
        for rule, bus in rules:
            dims = [x for k, v in rule_dimensions(rule, bus).items() for x in (k, v)]
            metrics.append(["AWS/Events", "FailedInvocations", *dims, {"stat": "Sum"}])
        widgets.append({"type": "metric", "x": 0, "y": y, "width": 12, "height": 6, "properties": {
            "title": "EventBridge failed invocations", "region": region, "view": "timeSeries", "metrics": metrics}})
    if database or proxy:
        metrics = [["AWS/RDS", "DatabaseConnections", "DBInstanceIdentifier", database, {"stat": "Maximum"}]] \
            if database else []
        if proxy:
            # RDS publishes proxy metrics once a minute per EC2 node serving the proxy ("Monitoring RDS Proxy
            # metrics with Amazon CloudWatch": aggregate across the instances with a statistic): the
            # proxy's connections are the Sum over a 1-minute period; Maximum would show one node's.
            metrics += [["AWS/RDS", "ClientConnections", "ProxyName", proxy, {"stat": "Sum", "period": 60}],
                        ["AWS/RDS", "DatabaseConnections", "ProxyName", proxy, {"stat": "Sum", "period": 60}]]
        widgets.append({"type": "metric", "x": 12, "y": y, "width": 12, "height": 6, "properties": {
            "title": "Database connections", "region": region, "view": "timeSeries", "metrics": metrics}})
    if metrics_namespace:
        y += 6
        advancing = [r for r in OUTCOME_METRICS if r in ADVANCING_OUTCOMES]
        stopping = [r for r in OUTCOME_METRICS if r not in ADVANCING_OUTCOMES]
        for x, (title, results) in enumerate((("Stage outcomes: items moved on", advancing),
                                              ("Stage outcomes: failed, refused, duplicate, skipped", stopping))):
            widgets.append({"type": "metric", "x": x * 12, "y": y, "width": 12, "height": 6, "properties": {
                "title": title, "region": region, "view": "timeSeries", "stat": "Sum", "period": 300,
                "metrics": [[{"id": f"{result}", "label": OUTCOME_METRICS[result],
                              "expression": stage_outcome_search(metrics_namespace, OUTCOME_METRICS[result])}]
                            for result in results],
            }})
    return json.dumps({"widgets": widgets})


def stage_outcome_search(namespace: str, metric: str, period_s: int = 300) -> str:
    """Every (service, stage) series of one outcome metric. Names with characters other than letters
    and digits are quoted in a search's schema (CloudWatch User Guide, "Search expression syntax")."""
    schema = ",".join([f'"{namespace}"', *STAGE_DIMENSIONS])
    return f"SEARCH('{{{schema}}} MetricName=\"{metric}\"', 'Sum', {period_s})"
