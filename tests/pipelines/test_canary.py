"""The canary judged by its own version's metrics (ExecutedVersion), on moto's CloudWatch.

Lambda publishes Invocations/Errors per executed version for alias invocations; here the test
publishes them (put_metric_data with the same dimensions) for both versions at every (fake) wait,
standing in for the traffic the alias splits. moto's GetMetricData computes Sum but not
percentiles (moto/cloudwatch/models.py, Statistics.get_statistics_for_type: Sum, Average, Minimum,
Maximum, SampleCount; a p95 query answers 500), so the latency limits are tested against
GetMetricData's documented response shape with botocore's Stubber.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import ANY, Stubber

from pipelines.canary import CanaryMetrics, CanaryThresholds, VersionFigures, judge
from pipelines.errors import RolledBack
from pipelines.shift import Shift
from pipelines.strategies import parse

LIMITS = CanaryThresholds(max_error_rate=0.02, min_invocations=50, stable_ratio=1.5)


def publish(d, version: str, invocations: int, errors: int) -> None:
    """One minute's figures of one version, as Lambda reports them for invocations through `live`."""
    dimensions = [{"Name": "FunctionName", "Value": d.function}, {"Name": "Resource", "Value": f"{d.function}:live"},
                  {"Name": "ExecutedVersion", "Value": version}]
    at = datetime.fromtimestamp(d.clock.now() - 1, UTC)
    d.clients["cloudwatch"].put_metric_data(Namespace="AWS/Lambda", MetricData=[
        {"MetricName": "Invocations", "Dimensions": dimensions, "Value": invocations, "Unit": "Count", "Timestamp": at},
        {"MetricName": "Errors", "Dimensions": dimensions, "Value": errors, "Unit": "Count", "Timestamp": at},
    ])


def traffic(d, canary: tuple[int, int], stable: tuple[int, int]):
    """A clock hook: each wait, the canary (v3) and the stable version (v1) serve (invocations, errors)."""

    def hook(_clock):
        if d.alias()["weights"]:
            publish(d, "3", *canary)
            publish(d, "1", *stable)

    d.clock.hooks.append(hook)


def test_bad_canary_behind_a_healthy_stable_rolls_back(deploy):
    d = deploy(versions=3)
    traffic(d, canary=(20, 6), stable=(180, 0))
    with pytest.raises(RolledBack) as caught:
        Shift(d.context(), parse("canary:10:10"), poll_s=60, canary=LIMITS).run()
    message = str(caught.value)
    assert "canary judged bad while holding 10%" in message and "rolled back to version 1" in message
    assert "error rate 30.00% > 2.00%" in message and caught.value.exit_code == 3
    assert d.alias() == {"version": "1", "weights": {}}
    # judged at the first poll whose window held min_invocations (3 x 20 = 60 >= 50), not at the bake's end
    assert d.clock.slept == [60, 60, 60]
    assert d.context().lock().current() is None


def test_a_healthy_canary_is_not_blamed_for_the_stable_versions_errors(deploy):
    d = deploy(versions=3)
    traffic(d, canary=(20, 0), stable=(180, 45))  # stable at 25 % errors, e.g. its own bug
    result = Shift(d.context(), parse("canary:10:5"), poll_s=60, canary=LIMITS).run()
    assert result.outcome == "completed" and d.alias() == {"version": "3", "weights": {}}
    assert "canary healthy" in result.verdicts[0] and "stable v1: 1440 invocations, 360 errors" in result.verdicts[0]


def test_a_canary_no_worse_than_stable_in_the_same_window_passes(deploy):
    """Both versions fail alike (a shared dependency is down): over the limit, but not the canary's doing."""
    d = deploy(versions=3)
    traffic(d, canary=(20, 2), stable=(180, 18))  # 10 % each
    assert Shift(d.context(), parse("canary:10:5"), poll_s=60, canary=LIMITS).run().outcome == "completed"


def test_a_quiet_canary_waits_for_enough_invocations(deploy):
    d = deploy(versions=3)
    calls = []

    def hook(clock):
        if d.alias()["weights"]:
            calls.append(clock.t)
            publish(d, "3", 5 if len(calls) <= 8 else 30, 0)  # quiet for 8 minutes, then busier
            publish(d, "1", 45, 0)

    d.clock.hooks.append(hook)
    result = Shift(d.context(), parse("canary:10:5"), poll_s=60, canary=LIMITS).run()
    assert result.outcome == "completed" and d.alias()["version"] == "3"
    # 5 polls of bake and 3 for the metrics to arrive (40 invocations), then waits: poll 9 (70 >= 50: healthy)
    assert sum(d.clock.slept) == 540
    assert any("waiting at 10% for the canary's invocations" in m for m in d.messages)


def test_a_quiet_canary_fails_when_so_configured(deploy):
    d = deploy(versions=3)
    traffic(d, canary=(2, 0), stable=(18, 0))
    limits = LIMITS.model_copy(update={"on_insufficient_data": "fail"})
    with pytest.raises(RolledBack) as caught:
        Shift(d.context(), parse("canary:10:5"), poll_s=60, canary=limits).run()
    assert "canary unproven at 10%" in str(caught.value) and "16 of 50 invocations needed" in str(caught.value)
    assert d.alias() == {"version": "1", "weights": {}}


def test_waiting_gives_up_after_max_wait(deploy):
    d = deploy(versions=3)
    traffic(d, canary=(1, 0), stable=(9, 0))
    limits = LIMITS.model_copy(update={"max_wait_minutes": 3})
    with pytest.raises(RolledBack, match="after waiting 3 min"):
        Shift(d.context(), parse("canary:10:2"), poll_s=60, canary=limits).run()
    assert sum(d.clock.slept) == 120 + 180 + 180  # bake, metrics delay, max wait
    assert d.alias() == {"version": "1", "weights": {}}


def late_traffic(d, bad_minute: int):
    """Each minute's figures reach CloudWatch 2 minutes late (stamped with the minute they were served).

    The canary (v3) fails half its invocations in `bad_minute` of its step only, the bake's last one.
    """
    minutes = []

    def hook(clock):
        if not d.alias()["weights"]:
            return
        minutes.append(clock.t)
        served = len(minutes) - 2  # what is published now was served two polls ago
        if served < 1:
            return
        at = datetime.fromtimestamp(clock.now() - 121, UTC)
        for version, (invocations, errors) in (("3", (20, 10 if served == bad_minute else 0)), ("1", (180, 0))):
            dimensions = [{"Name": "FunctionName", "Value": d.function},
                          {"Name": "Resource", "Value": f"{d.function}:live"},
                          {"Name": "ExecutedVersion", "Value": version}]
            d.clients["cloudwatch"].put_metric_data(Namespace="AWS/Lambda", MetricData=[
                {"MetricName": name, "Dimensions": dimensions, "Value": value, "Unit": "Count", "Timestamp": at}
                for name, value in (("Invocations", invocations), ("Errors", errors))])

    d.clock.hooks.append(hook)


def test_the_bakes_last_minute_is_judged_once_its_metrics_arrive(deploy):
    d = deploy(versions=3)
    late_traffic(d, bad_minute=5)
    with pytest.raises(RolledBack) as caught:
        Shift(d.context(), parse("canary:10:5"), poll_s=60, canary=LIMITS.model_copy(
            update={"metrics_delay_s": 180})).run()
    assert "canary judged bad while holding 10%" in str(caught.value)
    assert "v3: 100 invocations, 10 errors" in str(caught.value)  # minutes 1-5, the 5th published at poll 7
    assert d.alias() == {"version": "1", "weights": {}} and sum(d.clock.slept) == 7 * 60


def test_without_waiting_for_the_metrics_the_last_minute_would_go_unjudged(deploy):
    """The same late-published bad minute with no metrics delay: released. This is what the delay is for."""
    d = deploy(versions=3)
    late_traffic(d, bad_minute=5)
    result = Shift(d.context(), parse("canary:10:5"), poll_s=60,
                   canary=LIMITS.model_copy(update={"metrics_delay_s": 0})).run()
    assert result.outcome == "completed" and "v3: 60 invocations, 0 errors" in result.verdicts[0]


def test_an_alarm_still_stops_a_shift_with_a_healthy_canary(deploy):
    d = deploy(versions=3)
    traffic(d, canary=(20, 0), stable=(180, 0))

    def fire(clock):
        if len(clock.slept) == 2:
            d.set_alarm("ALARM", reason="api 5xx")

    d.clock.hooks.append(fire)
    with pytest.raises(RolledBack, match="api 5xx"):
        Shift(d.context(), parse("canary:10:5"), poll_s=60, canary=LIMITS).run()
    assert d.alias() == {"version": "1", "weights": {}}


# -- latency, against GetMetricData's response shape (moto computes no percentiles) ----------------
def test_latency_percentiles_are_read_per_version_and_judged():
    cloudwatch = boto3.client("cloudwatch", region_name="eu-west-1")
    limits = CanaryThresholds(max_error_rate=0.05, max_p95_ms=300, max_p99_ms=1000, min_invocations=10)
    metrics = CanaryMetrics(cloudwatch, "collections-prod-api-blue", "live", limits)
    values = {"canary_invocations": 100, "canary_errors": 0, "canary_p95_ms": 450, "canary_p99_ms": 700,
              "stable_invocations": 900, "stable_errors": 0, "stable_p95_ms": 120, "stable_p99_ms": 400}
    stubber = Stubber(cloudwatch)
    stubber.add_response("get_metric_data", {"MetricDataResults": [
        {"Id": key, "Label": key, "Timestamps": [datetime(2026, 1, 1, 12, 0, tzinfo=UTC)], "Values": [float(v)],
         "StatusCode": "Complete"} for key, v in values.items()]},
        {"MetricDataQueries": ANY, "StartTime": datetime(2026, 1, 1, 12, 0, tzinfo=UTC),
         "EndTime": datetime(2026, 1, 1, 12, 10, tzinfo=UTC)})
    start = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC).timestamp()
    with stubber:
        verdict = metrics.verdict("4", "5", start, start + 9 * 60)
    stubber.assert_no_pending_responses()
    assert verdict.outcome == "bad" and verdict.reasons == ("p95 450 ms > 300 ms, stable 120 ms",)
    assert (verdict.canary.p99_ms, verdict.stable.p95_ms) == (700, 120)


def test_latency_queries_use_the_executed_version_dimension():
    cloudwatch = boto3.client("cloudwatch", region_name="eu-west-1")
    metrics = CanaryMetrics(cloudwatch, "f", "live", CanaryThresholds(max_p95_ms=300))
    seen = {}

    def capture(params, **_):
        seen.update(params)

    cloudwatch.meta.events.register("provide-client-params.cloudwatch.GetMetricData", capture)
    stubber = Stubber(cloudwatch)
    stubber.add_response("get_metric_data", {"MetricDataResults": []})
    with stubber:
        figures = metrics.figures({"canary": "5"}, 0, 120)
    queries = {q["Id"]: q["MetricStat"] for q in seen["MetricDataQueries"]}
    assert set(queries) == {"canary_invocations", "canary_errors", "canary_p95_ms"}
    assert queries["canary_p95_ms"]["Stat"] == "p95" and queries["canary_p95_ms"]["Period"] == 120
    assert queries["canary_errors"]["Metric"]["Dimensions"] == [
        {"Name": "FunctionName", "Value": "f"}, {"Name": "Resource", "Value": "f:live"},
        {"Name": "ExecutedVersion", "Value": "5"}]
    assert figures["canary"] == VersionFigures("5")  # no data: zero invocations, no percentile


def test_judge_rules():
    ok = VersionFigures("2", invocations=100, errors=1)
    assert judge(ok, VersionFigures("1"), LIMITS).outcome == "healthy"
    assert judge(VersionFigures("2", invocations=49, errors=49), VersionFigures("1"), LIMITS).outcome == "insufficient"
    bad = VersionFigures("2", invocations=100, errors=10)
    assert judge(bad, VersionFigures("1", invocations=10, errors=5), LIMITS).outcome == "bad"  # stable too quiet
    assert judge(bad, VersionFigures("1", invocations=1000, errors=100), LIMITS).outcome == "healthy"
    # a latency limit with no percentile for the canary (Duration not in yet): no verdict rather than a pass
    slow_limits = LIMITS.model_copy(update={"max_p95_ms": 300})
    verdict = judge(ok, VersionFigures("1", invocations=1000, p95_ms=100), slow_limits)
    assert verdict.outcome == "insufficient" and verdict.reasons == ("no p95 of the canary yet",)
    fast = VersionFigures("2", invocations=100, p95_ms=200)
    assert judge(fast, VersionFigures("1"), slow_limits).outcome == "healthy"


def test_stack_output_release_carries_the_canary_limits():
    from pipelines.outputs import ReleaseDefaults

    defaults = ReleaseDefaults.model_validate({"steps": [0.1, 1.0], "step_minutes": 5, "canary": {
        "max_error_rate": 0.01, "max_p95_ms": 800, "min_invocations": 100, "on_insufficient_data": "fail"}})
    assert defaults.canary.min_invocations == 100 and defaults.canary.on_insufficient_data == "fail"
    with pytest.raises(ValueError, match="on_insufficient_data"):
        ReleaseDefaults.model_validate({"steps": [1.0], "step_minutes": 0, "canary": {"on_insufficient_data": "hope"}})


def test_per_service_limits_win_over_the_stacks_and_older_outputs_fall_back():
    from pipelines.outputs import StackOutputs

    base = {"active_slot": "blue", "alias_arn": "arn", "function_names": {"blue": "f"}}
    outputs = StackOutputs.model_validate({"stack": "prod", "release": {
        "steps": [1.0], "step_minutes": 0, "canary": {"min_invocations": 100}}, "services": {
        "api": {**base, "canary": {"min_invocations": 500}}, "cleanup": {**base, "canary": False},
        "old": {**base, "canary": None}}})
    assert outputs.canary_for(outputs.service("api")).min_invocations == 500
    assert outputs.canary_for(outputs.service("cleanup")) is None
    assert outputs.canary_for(outputs.service("old")).min_invocations == 100


def test_shift_command_judges_by_the_stacks_canary_limits(deploy, tmp_path, capsys):
    from pipelines.cli import main

    d = deploy(versions=2)
    data = d.outputs.model_dump()
    data["release"] = {"steps": [0.1, 1.0], "step_minutes": 0,
                       "canary": {"min_invocations": 10, "on_insufficient_data": "fail"}}
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(data))
    assert main(["shift", "--outputs", str(path), "--service", "api", "--poll", "1"]) == 3  # nobody called v2
    err = capsys.readouterr().err
    assert "canary unproven at 10%" in err and "0 of 10 invocations needed" in err
    assert d.alias() == {"version": "1", "weights": {}}


def test_only_the_executed_version_dimension_set_is_read(deploy):
    """CloudWatch matches a query's dimensions exactly ("you must specify the same dimensions that were used
    when the metrics were created"): the alias-wide figures ({FunctionName, Resource}), which mix both
    versions, and the function-wide ones ({FunctionName}) are not the canary's."""
    d = deploy(versions=3)
    at = datetime.fromtimestamp(d.clock.now() - 1, UTC)
    alias = [{"Name": "FunctionName", "Value": d.function}, {"Name": "Resource", "Value": f"{d.function}:live"}]
    for dimensions in (alias, alias[:1]):
        d.clients["cloudwatch"].put_metric_data(Namespace="AWS/Lambda", MetricData=[
            {"MetricName": n, "Dimensions": dimensions, "Value": 500, "Unit": "Count", "Timestamp": at}
            for n in ("Invocations", "Errors")])
    publish(d, "3", 60, 0)
    figures = CanaryMetrics(d.clients["cloudwatch"], d.function, "live", LIMITS).figures(
        {"canary": "3", "stable": "1"}, d.clock.now() - 60, d.clock.now())
    assert figures["canary"] == VersionFigures("3", invocations=60, errors=0)
    assert figures["stable"] == VersionFigures("1")  # nothing published for v1 under ExecutedVersion
