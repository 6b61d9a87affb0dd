"""releaseCanary: validated like every key, and exported in `release` in the shape the release tool reads."""

from __future__ import annotations

import pytest

import infra.config as infra_config
from pipelines.outputs import ReleaseDefaults


def _parse(canary):
    return infra_config.parse("prod", "eu-west-1", {"releaseCanary": canary})


def test_defaults_and_values():
    assert _parse({}).release_canary == infra_config.CanaryConfig()
    canary = _parse({"maxErrorRate": 0.05, "maxP95Ms": 800, "minInvocations": 10,
                     "onInsufficientData": "fail"}).release_canary
    assert (canary.max_error_rate, canary.max_p95_ms, canary.max_p99_ms, canary.min_invocations,
            canary.on_insufficient_data) == (0.05, 800, None, 10, "fail")


@pytest.mark.parametrize(("canary", "message"), [
    ({"maxErrorRate": 2}, "releaseCanary.maxErrorRate: a fraction"),
    ({"onInsufficientData": "hope"}, "releaseCanary.onInsufficientData: 'hope' is not one of wait, fail"),
    ({"minInvocations": 0}, "releaseCanary.minInvocations: 0 is outside"),
    ({"stableRatio": 0.5}, "releaseCanary.stableRatio: at least 1"),
    ({"maxP95": 800}, "releaseCanary.maxP95: unknown key"),
])
def test_bad_values_name_their_key(canary, message):
    with pytest.raises(infra_config.ConfigError, match=message):
        _parse(canary)


def test_the_prod_stack_exports_limits_the_release_tool_accepts(program):
    release = program("prod").outputs["release"]
    defaults = ReleaseDefaults.model_validate(release)
    assert defaults.canary is not None
    assert (defaults.canary.max_p95_ms, defaults.canary.min_invocations) == (800, 100)
    assert defaults.strategy == "steps:5,25,50,100:10"


def test_a_service_overrides_or_opts_out_of_the_stacks_limits():
    config = infra_config.parse("prod", "eu-west-1", {
        "releaseCanary": {"maxErrorRate": 0.02, "minInvocations": 100},
        "services": {"api": {"slots": {"blue": {}}, "releaseCanary": {"minInvocations": 500}},
                     "cleanup": {"slots": {"blue": {}}, "releaseCanary": {"enabled": False}}},
    })
    api = config.services["api"].release_canary
    assert (api.max_error_rate, api.min_invocations) == (0.02, 500)  # the stack's rate, its own minimum
    assert config.services["analyzer"].release_canary.min_invocations == 100  # unlisted: the stack's
    assert config.services["cleanup"].release_canary is None


def test_each_service_exports_the_limits_its_shift_uses(program):
    from pipelines.outputs import StackOutputs

    outputs = StackOutputs.model_validate(program("prod").outputs)
    assert outputs.canary_for(outputs.service("api")).min_invocations == 100
    assert outputs.canary_for(outputs.service("cleanup")) is None  # Pulumi.prod.yaml: alarms only


def test_each_services_verdict_waits_its_functions_timeout_for_the_metrics(program):
    """Lambda stamps metrics with the invocation's start: a minute is complete after timeout + a margin."""
    from pipelines.outputs import StackOutputs

    config = infra_config.parse("prod", "eu-west-1", {"services": {
        "api": {"slots": {"blue": {}}, "timeoutS": 29}, "analyzer": {"slots": {"blue": {}}, "timeoutS": 600}}})
    api, analyzer = config.services["api"], config.services["analyzer"]
    assert api.release_canary.as_output(api.timeout_s)["metrics_delay_s"] == 29 + 120
    assert analyzer.release_canary.as_output(analyzer.timeout_s)["metrics_delay_s"] == 600 + 120
    outputs = StackOutputs.model_validate(program("prod").outputs)
    timeouts = infra_config.parse("prod", "eu-west-1", {}).services  # the catalog's timeouts
    for name in ("api", "analyzer"):
        expected = timeouts[name].timeout_s + infra_config.METRICS_DELAY_MARGIN_S
        assert outputs.canary_for(outputs.service(name)).metrics_delay_s == expected


def test_metrics_delay_can_be_set_and_is_validated():
    assert _parse({"metricsDelaySeconds": 300}).release_canary.as_output(30)["metrics_delay_s"] == 300
    assert _parse({"metricsDelaySeconds": 0}).release_canary.as_output(30)["metrics_delay_s"] == 0
    with pytest.raises(infra_config.ConfigError, match="releaseCanary.metricsDelaySeconds: 5000 is outside"):
        _parse({"metricsDelaySeconds": 5000})
