"""Gradual mode and refresh: an unrelated change to a `live` alias must not undo a release.

In gradual stacks the alias's `functionVersion` and `routingConfig` are `ignore_changes`. Pulumi's
engine then sends, for those inputs, the value in its *state* (pkg/resource/deploy/step_generator.go:
"Set inputs back to their old values (if any) for any 'ignored' properties", processIgnoreChanges),
not the value in AWS. After collections-release moved the alias to v3, only a refresh puts v3 into
the state; without one, any other change to the alias (its description here) sends the version
the alias was created at, and UpdateAlias silently reverts the release.

The scenario: the program's first run is the deployed state; the state's alias is then what a
refresh records after a shift to v3 (or not, for the stale case); the alias's description differs
from the program's, so the next run updates the alias. What the update sends is computed the
engine's way, and the preview guard judges the same step against the live alias.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest

from infra.mocks import ProgramRun, Resource
from infra.plan import diff
from pipelines.guard import check
from pipelines.traffic import AliasState

ALIAS = "aws:lambda/alias:Alias"
API_ALIAS = "collections-prod-api-blue"
LIVE = "3"  # the version collections-release shifted to


def sent_inputs(state: Resource, goal: Resource) -> dict[str, Any]:
    """The inputs an update sends: the goal's, with every ignored top-level input set back to its value
    in the state (or dropped when the state has none), as processIgnoreChanges does."""
    sent = dict(goal.inputs)
    for key in goal.ignore_changes:
        if key in state.inputs:
            sent[key] = state.inputs[key]
        else:
            sent.pop(key, None)
    return sent


def with_alias_state(run: ProgramRun, name: str, **inputs: Any) -> ProgramRun:
    """`run` as the state would hold it, with the alias's recorded inputs replaced."""
    (alias,) = [r for r in run.of_type(ALIAS) if r.name == name]
    recorded = {k: v for k, v in {**alias.inputs, **inputs}.items() if v is not None}
    resources = {**run.resources, alias.urn: dataclasses.replace(alias, inputs=recorded)}
    return dataclasses.replace(run, resources=resources)


class Live:
    """The guard's view of AWS: the api alias on v3, weights cleared."""

    def gradual(self, function_name: str) -> bool:
        return True

    def read(self, function_name: str, alias: str) -> AliasState:
        return AliasState(alias, LIVE)


def preview_step(state: Resource, goal: Resource) -> dict[str, Any]:
    """The alias's update as `pulumi preview --json` prints it (newState.inputs = what is sent)."""
    return {"op": "update", "urn": goal.urn,
            "oldState": {"urn": state.urn, "type": ALIAS, "inputs": dict(state.inputs)},
            "newState": {"urn": goal.urn, "type": ALIAS, "inputs": sent_inputs(state, goal)}}


@pytest.fixture(scope="module")
def deployed(build_dir, source) -> ProgramRun:
    from infra.mocks import run_program

    return run_program("prod", build_dir=build_dir, source_root=source)


def _scenario(deployed: ProgramRun, refreshed: bool) -> tuple[Resource, Resource, Mapping[str, Any]]:
    created_at = deployed.one(ALIAS, API_ALIAS).inputs["functionVersion"]
    state = with_alias_state(deployed, API_ALIAS, description="api blue (an older description)",
                             functionVersion=LIVE if refreshed else created_at, routingConfig=None)
    plan = diff(state, deployed)
    (change,) = plan.actions("update", "replace", "create", "delete")
    assert (change.type, change.name, change.action, change.inputs) == (ALIAS, API_ALIAS, "update", ("description",))
    before, after = state.one(ALIAS, API_ALIAS), deployed.one(ALIAS, API_ALIAS)
    return before, after, sent_inputs(before, after)


def test_after_a_refresh_a_description_change_keeps_the_live_version_and_weights(deployed):
    state, goal, sent = _scenario(deployed, refreshed=True)
    assert goal.ignore_changes == ("functionVersion", "routingConfig")
    assert sent["functionVersion"] == LIVE  # what AWS runs, as the refresh recorded it
    assert "routingConfig" not in sent  # no weights sent: none are live
    assert sent["description"] == goal.inputs["description"]
    assert check({"steps": [preview_step(state, goal)]}, live=Live()).ok


def test_without_a_refresh_the_same_change_would_revert_the_release_and_is_blocked(deployed):
    state, goal, sent = _scenario(deployed, refreshed=False)
    assert sent["functionVersion"] != LIVE  # the creation-time version: UpdateAlias would undo v3
    report = check({"steps": [preview_step(state, goal)]}, live=Live())
    assert [f.what for f in report.blocked] == ["live alias"]
    assert f"from v{LIVE} 100% (live)" in report.blocked[0].reasons[0] and "--refresh" in report.render()


def test_sent_inputs_follow_the_engine_for_absent_state_values():
    state = Resource(urn="u", type=ALIAS, name="a", custom=True, inputs={"name": "live"}, parent="")
    goal = dataclasses.replace(state, inputs={"name": "live", "functionVersion": "9", "routingConfig": {}},
                               ignore_changes=("functionVersion", "routingConfig"))
    assert sent_inputs(state, goal) == {"name": "live"}
