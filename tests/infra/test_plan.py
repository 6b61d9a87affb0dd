"""The zip → image move, its rollback and code releases, classified resource by resource.

Each scenario runs the program for the config before and after (the second run sees what the
first deployed) and classifies every URN by the replace-forcing inputs (infra/plan.py).
"""

from __future__ import annotations

import shutil

import pytest

from infra.config import ConfigError
from infra.mocks import ProgramRun, Resource
from infra.plan import classify, consumer_violations, diff
from tests.infra.conftest import SERVICES, slots

FUNCTION = "aws:lambda/function:Function"
ALIAS = "aws:lambda/alias:Alias"
PERMISSION = "aws:lambda/permission:Permission"
# Resources whose ARN is exported or that consumers point at: never replaced, never deleted.
CONSUMED_OR_EXPORTED = {
    FUNCTION, ALIAS, "aws:apigatewayv2/api:Api", "aws:apigatewayv2/integration:Integration",
    "aws:apigatewayv2/route:Route", "aws:apigatewayv2/stage:Stage", "aws:cloudwatch/eventRule:EventRule",
    "aws:cloudwatch/eventTarget:EventTarget", "aws:cloudwatch/eventBus:EventBus", "aws:s3/bucket:Bucket",
    "aws:cognito/userPool:UserPool", "aws:cognito/userPoolClient:UserPoolClient",
    "aws:cloudwatch/metricAlarm:MetricAlarm", "aws:cloudwatch/dashboard:Dashboard",
}


def step1(service: str) -> dict:
    return slots(service, "blue", blue="zip", green="image")


def step2(service: str) -> dict:
    return slots(service, "green", blue="zip", green="image")


def snap_start_off(service: str) -> dict:
    """Step 0 where the service has SnapStart (dev's api): Lambda has none for images."""
    return {SERVICES: {service: {"snapStart": False}}}


def test_step0_turns_snap_start_off_in_place(plan_of):
    plan = plan_of("dev", None, snap_start_off("api"))
    assert plan.actions("replace", "delete", "create") == []
    assert [(c.name, c.inputs) for c in plan.actions("update") if c.type == FUNCTION] == [
        ("collections-dev-api-blue", ("snapStart",))]


@pytest.mark.parametrize("service", ["api", "image_processor"])
def test_step1_adds_the_image_slot_with_creates_only(plan_of, service):
    plan = plan_of("dev", snap_start_off(service), step1(service))
    slug = service.replace("_", "-")
    assert plan.actions("update", "replace", "delete") == []
    assert plan.violations == ()
    created = {(c.type, c.name) for c in plan.actions("create")}
    assert (FUNCTION, f"collections-dev-{slug}-green") in created
    assert (ALIAS, f"collections-dev-{slug}-green") in created
    assert ("docker:index/remoteImage:RemoteImage", f"collections-dev-{slug}-build") in created
    assert ("docker:index/registryImage:RegistryImage", f"collections-dev-{slug}-image") in created
    assert ("aws:ecr/repository:Repository", f"collections-dev-{slug}-repo") in created
    # Only the new slot's name appears in the outputs; what consumers use is unchanged.
    assert plan.output_changes == {
        f"services.{service}.function_names.green": (None, f"collections-dev-{slug}-green")}


@pytest.mark.parametrize("service", ["api", "image_processor"])
def test_step2_moves_consumers_in_place_and_swaps_permissions(plan_of, service):
    plan = plan_of("dev", step1(service), step2(service))
    slug = service.replace("_", "-")
    assert plan.actions("replace") == []
    assert plan.violations == ()  # the old permissions go last, after the consumers moved
    touched = plan.actions("create", "update", "delete")
    assert {c.type for c in plan.actions("create", "delete")} == {PERMISSION}
    assert all(c.name.endswith("-green") for c in plan.actions("create"))
    assert all(c.name.endswith("-blue") for c in plan.actions("delete"))
    assert len(plan.actions("create")) == len(plan.actions("delete")) >= 1
    assert not [c for c in touched if c.type in CONSUMED_OR_EXPORTED and c.action != "update"]
    updated = {c.type: c.inputs for c in plan.actions("update")}
    if service == "api":
        assert updated["aws:apigatewayv2/integration:Integration"] == ("integrationUri",)
    else:
        assert updated["aws:cloudwatch/eventTarget:EventTarget"] == ("arn",)
    assert updated["aws:cloudwatch/metricAlarm:MetricAlarm"] == ("dimensions",)
    assert FUNCTION not in updated and ALIAS not in updated  # the slots themselves stay as they are
    green_alias = f"arn:aws:lambda:eu-west-1:123456789012:function:collections-dev-{slug}-green:live"
    assert plan.output_changes == {
        f"services.{service}.active_slot": ("blue", "green"),
        f"services.{service}.alias_arn": (plan.before.outputs["services"][service]["alias_arn"], green_alias),
    }


def test_rollback_of_step2_is_the_mirror_image(plan_of):
    forward = plan_of("dev", step1("api"), step2("api"))
    back = plan_of("dev", step2("api"), step1("api"),
                deployed={"collections-dev-api-blue": "zip", "collections-dev-api-green": "image"})
    assert back.actions("replace") == []
    assert {(c.name, c.action) for c in back.actions("create", "delete")} == {
        (c.name, {"create": "delete", "delete": "create"}[c.action]) for c in forward.actions("create", "delete")}
    assert {c.urn for c in back.actions("update")} == {c.urn for c in forward.actions("update")}
    assert back.after.outputs == forward.before.outputs


def test_changing_the_active_slots_package_directly_is_refused_before_anything_runs(plan_of):
    with pytest.raises(ConfigError, match="two steps"):
        plan_of("dev", None, slots("api", "blue", blue="image"))


def test_an_idle_slots_package_change_replaces_only_that_slot(plan_of):
    """Allowed on the idle slot: its function is replaced (delete first: the name is explicit) and
    its alias with it (Lambda deletes a function's aliases); nothing consumed moves."""
    both_zip = slots("api", "blue", blue="zip", green="zip")
    both_zip[SERVICES]["api"]["snapStart"] = False  # back on later, as its own change (step 0 reversed)
    plan = plan_of("dev", step1("api"), both_zip, deployed={"collections-dev-api-blue": "zip"})
    replaced = {(c.type, c.name) for c in plan.actions("replace")}
    assert replaced == {(FUNCTION, "collections-dev-api-green"), (ALIAS, "collections-dev-api-green")}
    assert plan.after.one(FUNCTION, "collections-dev-api-green").delete_before_replace
    deleted = {c.type for c in plan.actions("delete")}
    assert deleted == {"aws:ecr/repository:Repository", "aws:ecr/lifecyclePolicy:LifecyclePolicy",
                       "docker:index/remoteImage:RemoteImage",
                       "docker:index/registryImage:RegistryImage"}  # no image slot is left
    assert not [c for c in plan.actions("update", "replace", "delete") if c.type in CONSUMED_OR_EXPORTED
                and not c.name.endswith("-green")]
    assert plan.output_changes == {}
    assert plan.violations == ()  # nothing calls the idle slot


@pytest.fixture
def changed_source(tmp_path, source):
    """A copy of the services snapshot with one handler edited: a code release."""
    changed = tmp_path / "services"
    shutil.copytree(source, changed)
    handler = changed / "api" / "handler.py"
    handler.write_text(handler.read_text() + "\n# release 2\n")
    return changed


def test_code_release_in_gradual_mode_updates_functions_and_leaves_aliases(plan_of, changed_source):
    plan = plan_of("prod", after_source=changed_source)
    assert plan.actions("create", "replace", "delete") == []
    functions = [c for c in plan.actions("update") if c.type == FUNCTION]
    assert len(functions) == 6 and all(set(c.inputs) == {"code", "sourceCodeHash"} for c in functions)
    # New versions were published, but each `live` stays where the release tooling put it —
    # except migrate's: the deploy runs the new migrations through it, so Pulumi moves it.
    others = [(c.type, c.name, c.inputs) for c in plan.actions("update") if c.type != FUNCTION]
    assert others == [(ALIAS, "collections-prod-migrate-blue", ("functionVersion",))]
    after_alias = plan.after.one(ALIAS, "collections-prod-api-blue")
    assert after_alias.ignore_changes == ("functionVersion", "routingConfig")
    assert plan.output_changes == {}


def test_code_release_in_direct_mode_moves_each_alias_in_place(plan_of, changed_source):
    plan = plan_of("dev", after_source=changed_source)
    assert plan.actions("create", "replace", "delete") == []
    by_type: dict[str, list] = {}
    for change in plan.actions("update"):
        by_type.setdefault(change.type, []).append(change)
    assert set(by_type) == {FUNCTION, ALIAS}
    assert all(c.inputs == ("functionVersion",) for c in by_type[ALIAS])
    assert len(by_type[ALIAS]) == len(by_type[FUNCTION]) == 6
    old = plan.before.one(ALIAS, "collections-dev-api-blue").inputs["functionVersion"]
    new = plan.after.one(ALIAS, "collections-dev-api-blue").inputs["functionVersion"]
    assert old != new
    assert plan.output_changes == {}


def test_an_unchanged_config_plans_nothing(plan_of):
    plan = plan_of("dev")
    assert plan.summary().keys() == {"same"}


# -- the classifier on its own ---------------------------------------------------------------------
def resource(typ: str, inputs: dict, ignore: tuple[str, ...] = ()) -> Resource:
    return Resource(urn=f"urn:pulumi:dev::collections::{typ}::x", type=typ, name="x", custom=True,
                    inputs=inputs, parent="", ignore_changes=ignore)


def test_classifier_replaces_on_forcing_inputs_only():
    before = resource(FUNCTION, {"name": "f", "packageType": "Zip", "memorySize": 512})
    assert classify(before, resource(FUNCTION, {"name": "f", "packageType": "Zip", "memorySize": 1024})).action \
        == "update"
    change = classify(before, resource(FUNCTION, {"name": "f", "packageType": "Image", "memorySize": 512}))
    assert (change.action, change.inputs) == ("replace", ("packageType",))


def test_classifier_replaces_a_permission_on_any_change():
    before = resource(PERMISSION, {"function": "a", "qualifier": "live"})
    assert classify(before, resource(PERMISSION, {"function": "b", "qualifier": "live"})).action == "replace"


def test_classifier_honours_ignore_changes_and_json_spelling():
    before = resource(ALIAS, {"functionName": "f", "name": "live", "functionVersion": "1"})
    after = resource(ALIAS, {"functionName": "f", "name": "live", "functionVersion": "2"}, ignore=("functionVersion",))
    assert classify(before, after).action == "same"
    policy = "aws:iam/rolePolicy:RolePolicy"
    assert classify(resource(policy, {"policy": '{"a": 1, "b": 2}'}),
                    resource(policy, {"policy": '{"b":2,"a":1}'})).action == "same"


def test_classifier_sees_creates_and_deletes_and_compares_outputs(program):
    one = program("dev")
    two = program("dev", step1("embedder"))
    plan = diff(two, one)  # going back: the green slot is deleted
    assert {c.name for c in plan.actions("delete")} >= {"collections-dev-embedder-green"}
    assert plan.output_changes == {"services.embedder.function_names.green": ("collections-dev-embedder-green", None)}
    with pytest.raises(ValueError):
        classify(None, None)


# -- no flip that breaks the slot still serving ---------------------------------------------------
FLIPPED_TO_GREEN = {"collections-dev-api-blue": "zip", "collections-dev-api-green": "image"}


def test_a_flip_that_also_converts_the_serving_slot_is_refused_naming_the_two_steps(plan_of):
    with pytest.raises(ConfigError, match=r"flips `active` from 'blue' to 'green' and converts slot 'blue'.*"
                                          r"Two steps: \(1\).*active: green.*\(2\).*slots.blue.package: image"):
        plan_of("dev", step1("api"), slots("api", "green", blue="image", green="image"))


def test_a_flip_that_also_removes_the_serving_slot_is_refused_naming_the_two_steps(plan_of):
    remove_blue = {"collections:services": {"api": {"active": "green", "snapStart": False, "slots": {"blue": None,
                                                                                 "green": {"package": "image"}}}}}
    with pytest.raises(ConfigError, match=r"flips `active` from 'blue' to 'green' and removes slot 'blue'.*"
                                          r"Two steps: \(1\).*\(2\) remove `collections:services.api.slots.blue`"):
        plan_of("dev", step1("api"), remove_blue)


# The classifier is a second, independent check. To exercise it alone, the next two runs give the
# program an AWS view without the blue function: config validation then has nothing to refuse (with
# both functions and no recorded active slot it refuses on its own: tests/infra/test_config.py).
GREEN_ONLY_ON_AWS = {"collections-dev-api-green": "image"}


def test_the_plan_check_refuses_flip_and_convert_even_when_config_cannot_see_the_last_update(program):
    """Without the stack's last outputs (no `previous`) and without blue on AWS, config validation cannot
    know what served; the classifier still sees the serving function replaced and says so."""
    before = program("dev", step1("api"))
    after = program("dev", slots("api", "green", blue="image", green="image"), deployed=GREEN_ONLY_ON_AWS)
    plan = diff(before, after)
    replaced = {(c.type, c.name) for c in plan.actions("replace")}
    assert (FUNCTION, "collections-dev-api-blue") in replaced
    assert any("replaces aws:lambda/function:Function collections-dev-api-blue" in v and "before this up" in v
               for v in plan.violations)


def test_the_plan_check_refuses_flip_and_remove_when_config_cannot_see_the_last_update(program):
    before = program("dev", step1("api"))
    green_only = {"collections:services": {"api": {"active": "green", "snapStart": False,
                                                   "slots": {"blue": None, "green": {"package": "image"}}}}}
    after = program("dev", green_only, deployed=GREEN_ONLY_ON_AWS)
    plan = diff(before, after)
    assert (FUNCTION, "collections-dev-api-blue") in {(c.type, c.name) for c in plan.actions("delete")}
    assert any("deletes aws:lambda/function:Function collections-dev-api-blue" in v and "flip first" in v
               for v in plan.violations)


@pytest.mark.parametrize("then", ["convert", "remove"])
def test_the_safe_path_flips_first_then_converts_or_removes_the_old_slot(plan_of, then):
    flip = plan_of("dev", step1("api"), step2("api"))
    assert flip.violations == ()
    last = (slots("api", "green", blue="image", green="image") if then == "convert"
            else {"collections:services": {"api": {"active": "green", "snapStart": False, "slots": {"blue": None,
                                                                                "green": {"package": "image"}}}}})
    follow_up = plan_of("dev", step2("api"), last, deployed=FLIPPED_TO_GREEN)
    assert follow_up.violations == ()
    touched = {c.name for c in follow_up.actions("create", "replace", "delete")}
    assert "collections-dev-api-blue" in touched  # the old slot is what changes…
    assert not [c for c in follow_up.actions("update", "replace", "delete")
                if c.type in CONSUMED_OR_EXPORTED and c.name.endswith("-green")]  # …the serving one stays


def _run(*resources: Resource) -> ProgramRun:
    return ProgramRun(stack="dev", config={}, resources={r.urn: r for r in resources}, outputs={})


def test_deleting_a_permission_a_consumer_still_calls_is_refused():
    arn = "arn:aws:lambda:eu-west-1:123456789012:function:f-blue:live"
    integration = resource("aws:apigatewayv2/integration:Integration",
                           {"integrationUri": f"arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/"
                                              f"{arn}/invocations"})
    permission = Resource(urn="urn:pulumi:dev::collections::aws:lambda/permission:Permission::p", type=PERMISSION,
                          name="p", custom=True, inputs={"function": "f-blue", "qualifier": "live"}, parent="")
    before, after = _run(integration, permission), _run(integration)
    plan = diff(before, after)
    assert plan.violations == ("deletes aws:lambda/permission:Permission p (f-blue:live), which a consumer still "
                               "calls after this up",)
    # Once the consumer calls another alias after the up, the old permission may go.
    moved = resource("aws:apigatewayv2/integration:Integration",
                     {"integrationUri": integration.inputs["integrationUri"].replace("f-blue", "f-green")})
    moved_plan = diff(before, _run(moved))
    assert moved_plan.violations == ()
    assert consumer_violations(moved_plan.changes, before, _run(moved)) == ()
