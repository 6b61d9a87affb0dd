"""An engine without `replace_with` / `deleted_with` stops the program with one line naming the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pulumi
import pytest
import yaml
from pulumi.runtime.proto import resource_pb2

from infra.engine import MIN_PULUMI_VERSION


@pytest.mark.parametrize("feature, name", [
    (resource_pb2.RESOURCE_MONITOR_FEATURE_REPLACE_WITH, "replace_with"),
    (resource_pb2.RESOURCE_MONITOR_FEATURE_DELETED_WITH, "deleted_with"),
])
def test_an_engine_without_the_option_fails_with_one_line_naming_the_version(program, feature, name):
    with pytest.raises(pulumi.RunError) as error:
        program("dev", unsupported_features=[feature])
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"This Pulumi CLI does not support {name}: install Pulumi 3.207.0 or newer")


def test_pyproject_and_every_workflow_running_pulumi_ask_for_that_version():
    """The SDK floor and the CLI each workflow installs are the version the engine check names."""
    import tomllib

    root = Path(__file__).resolve().parents[2]
    infra_deps = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]["infra"]
    assert [d for d in infra_deps if re.match(r"pulumi[<>=!~,]", d)] == [f"pulumi>={MIN_PULUMI_VERSION},<4"]
    steps = [step for workflow in sorted((root / ".github" / "workflows").glob("*.yml"))
             for job in yaml.safe_load(workflow.read_text())["jobs"].values() for step in job["steps"]
             if str(step.get("uses", "")).startswith("pulumi/actions")]
    assert len(steps) >= 4  # deploy dev + prod, preview, rollback
    assert {str((step.get("with") or {}).get("pulumi-version")) for step in steps} == {MIN_PULUMI_VERSION}


def test_the_same_engine_with_the_options_runs_the_program(program):
    run = program("dev", unsupported_features=[resource_pb2.RESOURCE_MONITOR_FEATURE_PARAMETERIZATION])
    alias = run.one("aws:lambda/alias:Alias", "collections-dev-api-blue")
    assert alias.replace_with  # the option the check protects is in use


def test_the_mock_engine_answers_the_legacy_probe_the_same_way():
    from pulumi.runtime.proto import resource_pb2 as pb

    from infra.mocks import CollectionsMocks, RecordingMonitor

    monitor = RecordingMonitor(CollectionsMocks("eu-west-1"), [pb.RESOURCE_MONITOR_FEATURE_REPLACE_WITH])
    assert monitor.SupportsFeature(pb.SupportsFeatureRequest(id="replaceWith")).hasSupport is False
    assert monitor.SupportsFeature(pb.SupportsFeatureRequest(id="deletedWith")).hasSupport is True
    assert pb.RESOURCE_MONITOR_FEATURE_REPLACE_WITH not in monitor.GetDeploymentInfo(None).supportedFeatures


def test_an_sdk_older_than_the_option_fails_with_one_line_before_asking_the_engine(monkeypatch):
    from infra import engine

    monkeypatch.setattr(engine, "sdk_version", lambda: "3.206.0")
    with pytest.raises(pulumi.RunError) as error:
        engine.require_engine_features()
    message = str(error.value)
    assert message.startswith("The Pulumi Python SDK 3.206.0 has no replace_with: install pulumi>=3.207.0")
    assert "\n" not in message


def test_versions_compare_by_release_numbers_not_text():
    from infra.engine import _release

    assert _release("3.272.0") > _release("3.207.0") > _release("3.99.9")  # "3.99" > "3.207" as text
    assert _release("3.207.0a1760000000+dirty") == (3, 207, 0)
    with pytest.raises(ValueError):
        _release("dev")
