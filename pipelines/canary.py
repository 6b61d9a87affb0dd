"""The canary judged by its own figures: the new version's error rate and duration, per bake window.

During a weighted shift the alias-level metrics ({FunctionName, Resource=fn:live}) mix both
versions. Lambda also publishes Invocations, Errors, Throttles and Duration with the dimensions
{FunctionName, Resource=fn:alias, ExecutedVersion=N} for invocations through an alias ("Use the
ExecutedVersion dimension to compare error rates for two versions of a function that are both
targets of a weighted alias", AWS Lambda Developer Guide, "Viewing metrics for functions").
One GetMetricData call per check reads them for both versions over the window so far:
Invocations and Errors as Sum, Duration as p95/p99 (only when a latency limit is configured).

The new version fails a window when it has enough invocations and a figure over its limit that is
also worse than the stable version's own figure for the same window (times `stable_ratio`): a
dependency failing for both versions is not the canary's fault. With too few invocations the
verdict is "insufficient": the shift waits for more, or fails, as the stack says.

Errors include the invocations a stage ends with StageBusy or NotReadyYet on purpose (so Lambda retries the
event). They are not subtracted: no metric counts them by version yet, and subtracting a count that is not the
canary's own would hide its errors (README, "How the canary is judged": "Expected retries count as errors").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipelines.errors import aws_errors

NAMESPACE = "AWS/Lambda"


class CanaryThresholds(BaseModel):
    """The stack's canary limits (config releaseCanary, exported in the stack output `release`)."""

    model_config = ConfigDict(extra="forbid")

    max_error_rate: float = Field(default=0.01, ge=0, le=1)  # errors / invocations of the new version
    max_p95_ms: float | None = Field(default=None, gt=0)
    max_p99_ms: float | None = Field(default=None, gt=0)
    min_invocations: int = Field(default=50, ge=1)  # fewer in a window: no verdict yet
    on_insufficient_data: Literal["wait", "fail"] = "wait"
    max_wait_minutes: float = Field(default=60, ge=0)  # "wait" gives up (and fails) after this
    stable_ratio: float = Field(default=1.5, ge=1)  # worse than stable's figure x this to count as bad
    # How long after a window ends its last invocations are surely in CloudWatch. Lambda sends metrics
    # in 1-minute intervals, stamped with the time the function was *invoked*, emitted after it ends:
    # "if your function has a 10-minute timeout, look more than 10 minutes in the past for accurate
    # metrics" (Lambda Developer Guide, "Working with Lambda function metrics"). The stack exports the
    # function's timeout + 120 s per service; a step's final verdict waits this long after its bake.
    metrics_delay_s: float = Field(default=180, ge=0)

    def describe(self) -> str:
        limits = [f"errors <= {self.max_error_rate:.2%}"]
        limits += [f"p95 <= {self.max_p95_ms:g} ms"] if self.max_p95_ms else []
        limits += [f"p99 <= {self.max_p99_ms:g} ms"] if self.max_p99_ms else []
        return (f"{', '.join(limits)} (and {self.stable_ratio:g}x the stable version's), "
                f">= {self.min_invocations} invocations, else {self.on_insufficient_data}; "
                f"each step's verdict {self.metrics_delay_s:g}s after its bake, once its metrics are in")


@dataclass(frozen=True)
class VersionFigures:
    version: str
    invocations: float = 0.0
    errors: float = 0.0
    p95_ms: float | None = None
    p99_ms: float | None = None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.invocations if self.invocations else None

    def describe(self) -> str:
        rate = "-" if self.error_rate is None else f"{self.error_rate:.2%}"
        text = f"v{self.version}: {self.invocations:g} invocations, {self.errors:g} errors ({rate})"
        text += f", p95 {self.p95_ms:g} ms" if self.p95_ms is not None else ""
        text += f", p99 {self.p99_ms:g} ms" if self.p99_ms is not None else ""
        return text


@dataclass(frozen=True)
class Verdict:
    outcome: Literal["healthy", "bad", "insufficient"]
    canary: VersionFigures
    stable: VersionFigures
    reasons: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        why = f": {'; '.join(self.reasons)}" if self.reasons else ""
        return f"canary {self.outcome}{why} [{self.canary.describe()} | stable {self.stable.describe()}]"


def judge(canary: VersionFigures, stable: VersionFigures, limits: CanaryThresholds) -> Verdict:
    if canary.invocations < limits.min_invocations:
        return Verdict("insufficient", canary, stable, (
            f"{canary.invocations:g} of {limits.min_invocations} invocations needed for a verdict",))
    reasons = []
    checks = [("error rate", canary.error_rate, stable.error_rate, limits.max_error_rate, "{:.2%}")]
    checks += [("p95", canary.p95_ms, stable.p95_ms, limits.max_p95_ms, "{:g} ms")] if limits.max_p95_ms else []
    checks += [("p99", canary.p99_ms, stable.p99_ms, limits.max_p99_ms, "{:g} ms")] if limits.max_p99_ms else []
    missing = [name for name, mine, *_ in checks if mine is None]
    if missing:  # a limit is set but CloudWatch has no such figure for the canary yet: no verdict, not a pass
        return Verdict("insufficient", canary, stable, (f"no {', '.join(missing)} of the canary yet",))
    for name, mine, theirs, limit, fmt in checks:
        if mine is None or limit is None or mine <= limit:
            continue
        # Stable's own figure counts only where it has enough invocations to be a figure at all.
        comparable = theirs is not None and stable.invocations >= limits.min_invocations
        if comparable and mine <= theirs * limits.stable_ratio:
            continue  # over the limit, but no worse than what stable does in the same window
        against = f", stable {fmt.format(theirs)}" if comparable else ""
        reasons.append(f"{name} {fmt.format(mine)} > {fmt.format(limit)}{against}")
    return Verdict("bad" if reasons else "healthy", canary, stable, tuple(reasons))


def _dimensions(function: str, alias: str, version: str) -> list[dict[str, str]]:
    return [{"Name": "FunctionName", "Value": function}, {"Name": "Resource", "Value": f"{function}:{alias}"},
            {"Name": "ExecutedVersion", "Value": version}]


class CanaryMetrics:
    """Reads both versions' figures for a window with one GetMetricData call."""

    def __init__(self, cloudwatch: Any, function: str, alias: str, limits: CanaryThresholds):
        self.client, self.function, self.alias, self.limits = cloudwatch, function, alias, limits

    def _stats(self) -> list[tuple[str, str, str]]:
        """(query key, metric, statistic)."""
        stats = [("invocations", "Invocations", "Sum"), ("errors", "Errors", "Sum")]
        stats += [("p95_ms", "Duration", "p95")] if self.limits.max_p95_ms else []
        stats += [("p99_ms", "Duration", "p99")] if self.limits.max_p99_ms else []
        return stats

    def figures(self, versions: dict[str, str], start: float, end: float) -> dict[str, VersionFigures]:
        """{role: figures} for {role: version} over [start, end) (epoch seconds), one period covering it all.

        The period is a multiple of 60 s (what standard-resolution metrics allow) starting on the
        minute at or before `start`, so one datapoint holds the whole window (a percentile cannot be
        combined from several periods).
        """
        first = math.floor(start / 60) * 60
        period = max(60, math.ceil((end - first) / 60) * 60)
        queries, keys = [], {}
        for role, version in versions.items():
            for key, metric, stat in self._stats():
                query_id = f"{role}_{key}".lower()
                keys[query_id] = (role, key)
                queries.append({"Id": query_id, "ReturnData": True, "MetricStat": {
                    "Metric": {"Namespace": NAMESPACE, "MetricName": metric,
                               "Dimensions": _dimensions(self.function, self.alias, version)},
                    "Period": period, "Stat": stat}})
        values: dict[str, dict[str, float | None]] = {role: {} for role in versions}
        with aws_errors(f"reading the canary's metrics of {self.function}:{self.alias}", self.client):
            pages = self.client.get_paginator("get_metric_data").paginate(
                MetricDataQueries=queries, StartTime=datetime.fromtimestamp(first, UTC),
                EndTime=datetime.fromtimestamp(first + period, UTC))
            for page in pages:
                for result in page.get("MetricDataResults", []):
                    role, key = keys[result["Id"]]
                    found = [float(v) for v in result.get("Values", [])]
                    if key in ("invocations", "errors"):
                        values[role][key] = (values[role].get(key) or 0.0) + sum(found)
                    elif found:
                        values[role][key] = max(found)  # one period: one value; several would be a bug upstream
        return {role: VersionFigures(version=version, invocations=values[role].get("invocations") or 0.0,
                                     errors=values[role].get("errors") or 0.0, p95_ms=values[role].get("p95_ms"),
                                     p99_ms=values[role].get("p99_ms"))
                for role, version in versions.items()}

    def verdict(self, stable: str, canary: str, start: float, end: float) -> Verdict:
        figures = self.figures({"canary": canary, "stable": stable}, start, end)
        return judge(figures["canary"], figures["stable"], self.limits)
