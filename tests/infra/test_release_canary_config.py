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
