"""The replace-forcing table (infra/plan.py) fails closed and says what upstream says.

Every type either stack registers (dev, prod, an image slot, a flip) must have an entry; each entry's
inputs must be inputs the installed Pulumi SDK knows; and the cases the issue names are checked
against the provider facts recorded in the table.
"""

from __future__ import annotations

import dataclasses
import inspect
import re

import pulumi_aws
import pulumi_docker
import pytest

from infra.mocks import Resource
from infra.plan import REPLACEMENTS, UnknownResourceType, classify, replacement_rule


@pytest.fixture(scope="module")
def registered_types(build_dir, source) -> set[str]:
    """Custom resource types registered by both stacks and by the image-slot and flip variants."""
    from infra.mocks import run_program

    def run(stack, overrides=None, **kwargs):
        return run_program(stack, overrides, build_dir=build_dir, source_root=source, **kwargs)

    image_slot = {"collections:services": {
        "api": {"active": "blue", "snapStart": False,
                "slots": {"blue": {"package": "zip"}, "green": {"package": "image"}}},
        "image_processor": {"active": "blue", "slots": {"blue": {"package": "zip"}, "green": {"package": "image"}}},
    }}
    flipped = {"collections:services": {
        "api": {"active": "green", "snapStart": False,
                "slots": {"blue": {"package": "zip"}, "green": {"package": "image"}}},
    }}
    runs = [run("dev"), run("prod"), run("dev", image_slot), run("prod", image_slot)]
    runs.append(run("dev", flipped, previous=runs[2], deployed={"collections-dev-api-green": "image"}))
    return {r.type for run_ in runs for r in run_.resources.values() if r.custom}


def test_every_registered_type_has_an_entry(registered_types):
    missing = sorted(t for t in registered_types if t not in REPLACEMENTS)
    assert not missing, f"types without a replace-forcing entry in infra.plan.REPLACEMENTS: {missing}"
    # The variants really registered the image and network types the issue names.
    assert {"docker:index/remoteImage:RemoteImage", "docker:index/registryImage:RegistryImage",
            "aws:ecr/lifecyclePolicy:LifecyclePolicy", "aws:ec2/vpc:Vpc", "aws:rds/proxyTarget:ProxyTarget",
            "aws:sns/topicSubscription:TopicSubscription"} <= registered_types


def test_every_entry_names_its_upstream_source():
    for typ, rule in REPLACEMENTS.items():
        assert re.search(r"(terraform-provider-aws|pulumi-docker) \S+", rule.source), typ


def _sdk_class(typ: str):
    package, module_path, name = typ.split(":")
    module = module_path.split("/")[0]
    if package == "docker":
        return getattr(pulumi_docker, name)
    return getattr(getattr(pulumi_aws, module + ("_" if module == "lambda" else "")), name)


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@pytest.mark.parametrize("typ", sorted(REPLACEMENTS))
def test_entries_name_inputs_the_sdk_has(typ):
    rule = REPLACEMENTS[typ]
    parameters = inspect.signature(_sdk_class(typ)._internal_init).parameters
    inputs = {_camel(p) for p in parameters if p not in ("__self__", "resource_name", "opts", "__props__")}
    named = [*rule.forcing, *rule.when, *rule.ignored]
    assert {path.split(".")[0] for path in named} <= inputs, typ
    assert rule.regional == ("region" in inputs), f"{typ}: `region` argument and `regional` disagree"


def resource(typ: str, inputs: dict, urn_name: str = "x") -> Resource:
    return Resource(urn=f"urn:pulumi:dev::collections::{typ}::{urn_name}", type=typ, name=urn_name, custom=True,
                    inputs=inputs, parent="")


def test_an_unknown_type_is_an_error_not_an_update():
    typ = "aws:ec2/flowLog:FlowLog"
    with pytest.raises(UnknownResourceType, match="aws:ec2/flowLog:FlowLog: no entry"):
        classify(resource(typ, {"a": 1}), resource(typ, {"a": 2}))
    with pytest.raises(UnknownResourceType):  # a delete as well
        classify(resource(typ, {"a": 1}), None)
    with pytest.raises(UnknownResourceType):
        replacement_rule(typ)


def test_docker_image_never_replaces_and_ignores_registry_credentials():
    typ = "docker:index/image:Image"
    before = resource(typ, {"imageName": "repo:a", "build": {"context": "x"},
                            "registry": {"server": "s", "username": "AWS", "password": "one"}})
    after = resource(typ, {"imageName": "repo:b", "build": {"context": "y"},
                           "registry": {"server": "s", "username": "AWS", "password": "one"}})
    assert classify(before, after).action == "update"
    rotated = resource(typ, {**before.inputs, "registry": {"server": "s", "username": "AWS", "password": "two"}})
    assert classify(before, rotated).action == "same"
    moved = resource(typ, {**before.inputs, "registry": {"server": "other", "username": "AWS", "password": "one"}})
    assert classify(before, moved).action == "update"


def test_authorizer_type_is_updated_in_place_api_id_replaces():
    typ = "aws:apigatewayv2/authorizer:Authorizer"
    before = resource(typ, {"apiId": "a", "authorizerType": "JWT", "name": "n"})
    assert classify(before, resource(typ, {**before.inputs, "authorizerType": "REQUEST"})).action == "update"
    assert classify(before, resource(typ, {**before.inputs, "apiId": "b"})).action == "replace"


def test_a_region_change_replaces_regional_resources_but_iam_has_no_region():
    queue = "aws:sqs/queue:Queue"
    assert classify(resource(queue, {"region": "eu-west-1"}), resource(queue, {"region": "us-east-1"})).action \
        == "replace"
    assert not REPLACEMENTS["aws:iam/role:Role"].regional


def test_nested_forcing_field_and_conditional_forcing():
    pool = "aws:cognito/userPool:UserPool"
    before = resource(pool, {"usernameConfiguration": {"caseSensitive": False}, "mfaConfiguration": "OFF"})
    flipped = resource(pool, {"usernameConfiguration": {"caseSensitive": True}, "mfaConfiguration": "OFF"})
    change = classify(before, flipped)
    assert change.action == "replace"
    assert classify(before, resource(pool, {**before.inputs, "mfaConfiguration": "ON"})).action == "update"
    # invocation.go: `input` replaces in the default CREATE_ONLY scope, updates in CRUD scope.
    inv = "aws:lambda/invocation:Invocation"
    assert classify(resource(inv, {"input": "{}"}), resource(inv, {"input": '{"a":1}'})).action == "replace"
    crud = {"lifecycleScope": "CRUD"}
    assert classify(resource(inv, {"input": "{}", **crud}), resource(inv, {"input": '{"a":1}', **crud})).action \
        == "update"


def test_resources_without_update_replace_on_any_change():
    for typ in ("aws:lambda/permission:Permission", "aws:ecr/lifecyclePolicy:LifecyclePolicy",
                "aws:rds/proxyTarget:ProxyTarget"):
        assert classify(resource(typ, {"x": "1"}), resource(typ, {"x": "2"})).action == "replace", typ


def test_issue_listed_types_replace_on_their_identity():
    cases = {
        "aws:ec2/vpc:Vpc": "cidrBlock", "aws:ec2/subnet:Subnet": "availabilityZone",
        "aws:ec2/securityGroup:SecurityGroup": "vpcId", "aws:ec2/natGateway:NatGateway": "subnetId",
        "aws:ec2/vpcEndpoint:VpcEndpoint": "serviceName", "aws:rds/subnetGroup:SubnetGroup": "name",
        "aws:rds/proxy:Proxy": "engineFamily", "aws:rds/proxyDefaultTargetGroup:ProxyDefaultTargetGroup":
        "dbProxyName", "aws:secretsmanager/secretVersion:SecretVersion": "secretString",
        "aws:sqs/queuePolicy:QueuePolicy": "queueUrl", "aws:sns/topic:Topic": "name",
        "aws:sns/topicSubscription:TopicSubscription": "endpoint", "aws:s3/bucketPolicy:BucketPolicy": "bucket",
    }
    for typ, key in cases.items():
        assert classify(resource(typ, {key: "a"}), resource(typ, {key: "b"})).action == "replace", typ
    # …and update in place on what the provider updates.
    updates = {"aws:rds/proxy:Proxy": "name", "aws:sqs/queuePolicy:QueuePolicy": "policy",
               "aws:ec2/routeTableAssociation:RouteTableAssociation": "routeTableId",
               "aws:ec2/internetGateway:InternetGateway": "vpcId"}
    for typ, key in updates.items():
        assert classify(resource(typ, {key: "a"}), resource(typ, {key: "b"})).action == "update", typ


def test_the_replace_on_changes_option_replaces_what_the_provider_would_update():
    """Pulumi's `replace_on_changes` turns a diff of the listed inputs into a replacement: the classifier too."""
    typ = "aws:lambda/function:Function"
    before = resource(typ, {"name": "f", "memorySize": 128, "environment": {"variables": {"A": "1"}}})
    grown = {**before.inputs, "memorySize": 256}
    assert classify(before, resource(typ, grown)).action == "update"  # the provider updates it in place
    for option in (("memorySize",), ("*",)):
        after = dataclasses.replace(resource(typ, grown), replace_on_changes=option)
        assert classify(before, after).action == "replace", option
    nested = dataclasses.replace(resource(typ, {**before.inputs, "environment": {"variables": {"A": "2"}}}),
                                 replace_on_changes=("environment.variables",))
    assert classify(before, nested).action == "replace"
    unrelated = dataclasses.replace(resource(typ, grown), replace_on_changes=("timeout",))
    assert classify(before, unrelated).action == "update"
