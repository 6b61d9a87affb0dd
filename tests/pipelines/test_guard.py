"""The preview guard on `pulumi preview --json` documents (fixtures in previews/, Pulumi's PreviewDigest)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.errors import ReleaseError
from pipelines.guard import check, check_file

PREVIEWS = Path(__file__).parent / "previews"


def test_clean_preview_passes():
    report = check_file(str(PREVIEWS / "clean.json"))
    assert report.ok and report.steps == 6 and not report.expected
    assert "OK: nothing that consumers use" in report.render()


@pytest.mark.parametrize(
    ("fixture", "what", "name"),
    [
        ("replace_alias.json", "alias", "api-blue-live"),
        ("replace_integration.json", "API integration", "api-integration"),
        ("delete_bucket.json", "bucket", "collections-bucket"),
    ],
)
def test_replacing_or_deleting_a_consumed_resource_fails(fixture, what, name):
    report = check_file(str(PREVIEWS / fixture))
    assert not report.ok
    assert [(f.what, f.name) for f in report.blocked] == [(what, name)]  # a replacement is reported once
    assert "BLOCKED" in report.render() and name in report.render()


def test_replace_reasons_are_shown():
    report = check_file(str(PREVIEWS / "replace_integration.json"))
    assert "because of: integrationType" in report.render()


def test_permission_swap_of_a_flip_passes():
    report = check_file(str(PREVIEWS / "flip.json"))
    assert report.ok
    assert sorted(f.name for f in report.expected) == ["analyzer-events-invoke", "api-blue-invoke"]


@pytest.mark.parametrize("allow", ["api-blue-live", "urn:pulumi:dev::collections::*::api-blue-live"])
def test_allow_list_by_name_or_urn_lets_it_through(allow):
    report = check_file(str(PREVIEWS / "replace_alias.json"), [allow])
    assert report.ok and [f.name for f in report.allowed] == ["api-blue-live"]


def test_type_is_read_from_the_urn_when_states_are_missing():
    step = {"op": "delete", "urn": "urn:pulumi:prod::collections::aws:cognito/userPool:UserPool::users"}
    assert [f.what for f in check({"steps": [step]}).blocked] == ["user pool"]


def test_not_a_preview_is_a_clear_error(tmp_path):
    bad = tmp_path / "p.json"
    bad.write_text(json.dumps({"outputs": {}}))
    with pytest.raises(ReleaseError, match='no "steps" list'):
        check_file(str(bad))
    bad.write_text("Previewing update (dev)")
    with pytest.raises(ReleaseError, match="not JSON"):
        check_file(str(bad))


def test_guard_command_exit_codes(capsys):
    assert main(["guard", str(PREVIEWS / "clean.json")]) == 0
    assert main(["guard", str(PREVIEWS / "replace_alias.json")]) == 8
    assert "BLOCKED" in capsys.readouterr().err
    assert main(["guard", str(PREVIEWS / "replace_alias.json"), "--allow", "api-blue-live"]) == 0
    assert main(["guard", str(PREVIEWS / "missing.json")]) == 1


def test_allow_file_entries_and_comments(tmp_path):
    allow = tmp_path / "allow.txt"
    allow.write_text("# intended: alias renamed in PR 42\napi-blue-live  # the old alias goes\n\n")
    preview = str(PREVIEWS / "replace_alias.json")
    assert main(["guard", preview, "--allow-file", str(allow)]) == 0
    assert main(["guard", preview, "--allow-file", str(tmp_path / "absent.txt")]) == 8


def test_the_repository_allow_file_allows_nothing_by_default():
    from pipelines.guard import read_allow_file

    assert read_allow_file(str(Path(__file__).resolve().parents[2] / ".github" / "preview-allow.txt")) == []


# -- a gradual stack's live alias ------------------------------------------------------------------
def _alias_update(function: str, version: str, weights: dict | None = None, description: str = "new") -> dict:
    """An update step of the `live` alias as `pulumi preview --json` prints it: newState.inputs carry the
    ignored functionVersion/routingConfig from Pulumi's state (step_generator.go, processIgnoreChanges)."""
    urn = f"urn:pulumi:prod::collections::collections:service:Service$aws:lambda/alias:Alias::{function}"
    inputs = {"functionName": function, "name": "live", "functionVersion": version, "description": description}
    if weights:
        inputs["routingConfig"] = {"additionalVersionWeights": weights}
    old = {**inputs, "description": "old"}
    return {"op": "update", "urn": urn, "diffReasons": ["description"],
            "oldState": {"urn": urn, "custom": True, "type": "aws:lambda/alias:Alias", "inputs": old},
            "newState": {"urn": urn, "custom": True, "type": "aws:lambda/alias:Alias", "inputs": inputs}}


@pytest.fixture
def shifted(deploy):
    """A gradual service whose alias collections-release moved to v3 (Pulumi created it at v1)."""
    from pipelines.guard import StackLiveAliases
    from pipelines.shift import Shift
    from pipelines.strategies import parse

    d = deploy(versions=3)
    Shift(d.context(), parse("all-at-once")).run()
    assert d.alias() == {"version": "3", "weights": {}}
    return d, StackLiveAliases(d.outputs, d.lambda_client)


def test_stale_state_update_of_a_gradual_alias_is_blocked(shifted):
    d, live = shifted
    report = check({"steps": [_alias_update(d.function, "1")]}, live=live)
    assert not report.ok
    (finding,) = report.blocked
    assert finding.what == "live alias"
    assert f"would move {d.function}:live from v3 100% (live) to v1 100%" in finding.reasons[0]
    assert "--refresh" in report.render()
    assert d.alias() == {"version": "3", "weights": {}}  # the guard only reads


def test_refreshed_update_of_a_gradual_alias_passes(shifted):
    d, live = shifted
    report = check({"steps": [_alias_update(d.function, "3")]}, live=live)
    assert report.ok, report.render()


def test_an_update_that_would_cancel_a_canary_is_blocked(deploy):
    from pipelines.guard import StackLiveAliases

    d = deploy(versions=3)
    d.lambda_client.update_alias(FunctionName=d.function, Name="live", FunctionVersion="1",
                                 RoutingConfig={"AdditionalVersionWeights": {"3": 0.1}})
    live = StackLiveAliases(d.outputs, d.lambda_client)
    assert not check({"steps": [_alias_update(d.function, "1")]}, live=live).ok  # weights dropped
    assert check({"steps": [_alias_update(d.function, "1", {"3": 0.1})]}, live=live).ok


def test_direct_stacks_aliases_are_left_to_pulumi(deploy):
    from pipelines.guard import StackLiveAliases

    d = deploy(versions=3, release_mode="direct")
    assert check({"steps": [_alias_update(d.function, "3")]}, live=StackLiveAliases(d.outputs, d.lambda_client)).ok


def test_guard_command_with_outputs_reads_aws(shifted, tmp_path, aws, capsys):
    d, _ = shifted
    preview, outputs = tmp_path / "preview.json", tmp_path / "outputs.json"
    preview.write_text(json.dumps({"steps": [_alias_update(d.function, "1")]}))
    outputs.write_text(d.outputs.model_dump_json())
    assert main(["guard", str(preview)]) == 0  # without outputs: the AWS comparison is not made
    assert main(["guard", str(preview), "--outputs", str(outputs)]) == 8
    assert "from v3 100% (live) to v1 100%" in capsys.readouterr().err


# -- a brand-new stack: `pulumi stack output --json` prints `{}` ------------------------------------
def _alias_create(function: str) -> dict:
    urn = f"urn:pulumi:prod::collections::collections:service:Service$aws:lambda/alias:Alias::{function}"
    inputs = {"functionName": function, "name": "live", "functionVersion": "1"}
    return {"op": "create", "urn": urn,
            "newState": {"urn": urn, "custom": True, "type": "aws:lambda/alias:Alias", "inputs": inputs}}


def test_a_new_stacks_empty_outputs_pass_its_creating_preview(tmp_path, capsys):
    preview, outputs = tmp_path / "preview.json", tmp_path / "outputs.json"
    preview.write_text(json.dumps({"steps": [_alias_create("collections-prod-api-blue")]}))
    outputs.write_text("{}\n")  # what `pulumi stack output --json` prints before the first up completes
    assert main(["guard", str(preview), "--outputs", str(outputs)]) == 0
    out = capsys.readouterr().out
    assert "no outputs yet" in out and "OK: nothing that consumers use" in out


def test_empty_outputs_do_not_pass_an_alias_update(tmp_path, capsys):
    """Outputs `{}` with an alias that already exists (a first up that failed half-way): not judgeable."""
    preview, outputs = tmp_path / "preview.json", tmp_path / "outputs.json"
    preview.write_text(json.dumps({"steps": [_alias_update("collections-prod-api-blue", "1")]}))
    outputs.write_text("{}")
    assert main(["guard", str(preview), "--outputs", str(outputs)]) == 8
    assert "the stack has no outputs yet" in capsys.readouterr().err


@pytest.mark.parametrize(("document", "message"), [
    ("[]", "JSON, but an array"),
    ("null", "JSON, but null"),
    ('{"stack": "prod"}', "do not match the contract: services"),
    ("{", "are not JSON"),
])
def test_malformed_outputs_still_fail_the_guard(tmp_path, capsys, document, message):
    preview, outputs = tmp_path / "preview.json", tmp_path / "outputs.json"
    preview.write_text(json.dumps({"steps": [_alias_create("f")]}))
    outputs.write_text(document)
    assert main(["guard", str(preview), "--outputs", str(outputs)]) == 1
    assert message in capsys.readouterr().err


def test_empty_outputs_from_pulumi_itself(tmp_path, monkeypatch, capsys):
    """--stack runs `pulumi stack output --json`; a fake CLI prints what Pulumi prints for a new stack."""
    fake = tmp_path / "bin" / "pulumi"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho '{}'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{__import__('os').environ['PATH']}")
    preview = tmp_path / "preview.json"
    preview.write_text(json.dumps({"steps": [_alias_create("f")]}))
    assert main(["guard", str(preview), "--stack", "prod"]) == 0
    assert "no outputs yet" in capsys.readouterr().out
