"""Every consumer targets the active slot's `live` alias, and the program builds exactly what the
catalog lists: a service per function, a route per API route, a rule per event trigger."""

from __future__ import annotations

import json

import pytest

from services import catalog
from services.core.migrations import migrations_hash
from tests.infra.conftest import slots

INTEGRATION = "aws:apigatewayv2/integration:Integration"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
RULE = "aws:cloudwatch/eventRule:EventRule"
PERMISSION = "aws:lambda/permission:Permission"
ALIAS = "aws:lambda/alias:Alias"


def alias_of(run, function_name: str):
    (alias,) = [a for a in run.of_type(ALIAS) if a.inputs["functionName"] == function_name]
    return alias


def alias_arn(run, function_name: str) -> str:
    name = alias_of(run, function_name).inputs["name"]
    return f"arn:aws:lambda:eu-west-1:123456789012:function:{function_name}:{name}"


def check_consumers(run, service: str, active_function: str) -> None:
    arn = alias_arn(run, active_function)
    assert run.outputs["services"][service]["alias_arn"] == arn
    fn = catalog.function(service)
    if fn.triggers_of("http"):
        (integration,) = run.of_type(INTEGRATION)
        assert integration.inputs["integrationUri"] == (
            f"arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/{arn}/invocations")
        assert (integration.inputs["integrationType"], integration.inputs["payloadFormatVersion"]) == (
            "AWS_PROXY", "2.0")
    targets = [t for t in run.of_type(TARGET) if t.inputs["targetId"] == f"{service.replace('_', '-')}-live"]
    assert len(targets) == sum(1 for t in fn.triggers if t.kind != "http")
    for target in targets:
        assert target.inputs["arn"] == arn
        assert target.inputs["retryPolicy"]["maximumRetryAttempts"] > 0
        assert target.inputs["deadLetterConfig"]["arn"].startswith("arn:aws:sqs:")
    grants = [p for p in run.of_type(PERMISSION) if p.inputs["function"] in run.outputs["services"][service][
        "function_names"].values()]
    assert len(grants) == len(fn.triggers)
    for grant in grants:
        assert (grant.inputs["function"], grant.inputs["qualifier"]) == (active_function, "live")
        assert grant.inputs["sourceArn"].startswith(("arn:aws:events:", "arn:aws:execute-api:"))


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_consumer_targets_the_active_live_alias(program, stack):
    run = program(stack)
    for fn in catalog.FUNCTIONS:
        check_consumers(run, fn.name, f"collections-{stack}-{fn.name.replace('_', '-')}-blue")


@pytest.mark.parametrize("service", ["api", "image_processor"])
def test_consumers_follow_the_active_slot_to_green(program, service):
    run = program("dev", slots(service, "green", blue="zip", green="image"))
    slug = service.replace("_", "-")
    check_consumers(run, service, f"collections-dev-{slug}-green")
    # Both slots exist and are published behind their own alias; the idle one serves nobody.
    assert run.outputs["services"][service]["function_names"] == {
        "blue": f"collections-dev-{slug}-blue", "green": f"collections-dev-{slug}-green"}
    idle_arn = alias_arn(run, f"collections-dev-{slug}-blue")
    consumers = run.of_type(INTEGRATION) + run.of_type(TARGET)
    assert not [c for c in consumers if idle_arn in json.dumps(c.inputs)]


def test_image_slots_run_a_digest_pinned_single_platform_image(program):
    run = program("dev", slots("image_processor", "blue", blue="zip", green="image"))
    green = run.one("aws:lambda/function:Function", "collections-dev-image-processor-green")
    assert green.inputs["packageType"] == "Image"
    assert "@sha256:" in green.inputs["imageUri"] and ":" not in green.inputs["imageUri"].split("@")[0].rsplit(
        "/", 1)[1]
    assert "handler" not in green.inputs and "runtime" not in green.inputs
    (build,) = run.of_type("docker:index/remoteImage:RemoteImage")
    # Exactly the function's platform, and no attestations: BuildKit would otherwise push an
    # image index (manifest list), which Lambda rejects.
    assert build.inputs["build"]["platform"] == "linux/arm64" == {
        "arm64": "linux/arm64"}[catalog.function("image_processor").architecture]
    assert build.inputs["build"]["provenance"] == "false" and build.inputs["build"]["sbom"] == "false"
    (image,) = run.of_type("docker:index/registryImage:RegistryImage")
    assert image.inputs["name"] == build.inputs["name"]  # pushes what was built, under its content tag
    assert image.inputs["authConfig"]["username"] == "AWS"
    assert image.inputs["keepRemotely"] is True  # a replaced image may back a published version
    assert "triggers" not in image.inputs  # pushed when the content tag changes, never re-pushed under it
    repository_url, digest = green.inputs["imageUri"].split("@")
    assert build.inputs["name"] == f"{repository_url}:{build.inputs['name'].rsplit(':', 1)[1]}"
    assert len(digest) == len("sha256:") + 64
    (repository,) = run.of_type("aws:ecr/repository:Repository")
    assert repository.inputs["imageTagMutability"] == "IMMUTABLE"
    assert repository.inputs["imageScanningConfiguration"]["scanOnPush"] is True


def test_content_already_in_the_repository_is_pinned_not_pushed_again(program):
    """ECR refuses a second push of an existing tag on an IMMUTABLE repository, even with the same
    content (moby/buildkit#3776, aws/containers-roadmap#2380): a revert or a rollback to an older
    commit re-uses the digest ECR holds for the content tag instead of building and pushing."""
    variant = slots("image_processor", "blue", blue="zip", green="image")
    first = program("dev", variant)
    (build,) = first.of_type("docker:index/remoteImage:RemoteImage")
    (repository,) = first.of_type("aws:ecr/repository:Repository")
    assert repository.inputs["name"] == "collections-dev-image-processor"  # explicit: looked up by name
    tag = build.inputs["name"].rsplit(":", 1)[1]
    held = "sha256:" + "ab" * 32
    again = program("dev", variant, pushed={f"collections-dev-image-processor:{tag}": held})
    assert again.of_type("docker:index/remoteImage:RemoteImage") == []
    assert again.of_type("docker:index/registryImage:RegistryImage") == []
    green = again.one("aws:lambda/function:Function", "collections-dev-image-processor-green")
    built = first.one("aws:lambda/function:Function", "collections-dev-image-processor-green")
    assert green.inputs["imageUri"] == f"{built.inputs['imageUri'].split('@')[0]}@{held}"
    # Another tag in the repository (older content) changes nothing: this content is built and pushed.
    other = program("dev", variant, pushed={"collections-dev-image-processor:0123456789abcdef0123": held})
    assert len(other.of_type("docker:index/registryImage:RegistryImage")) == 1


def test_the_registry_is_asked_for_exactly_the_content_tag():
    """DescribeImages through boto3's real ECR client (botocore's Stubber checks the request
    against the service model): a held tag gives its digest; a missing repository or tag, none."""
    import boto3
    from botocore.stub import Stubber

    from infra.components import image

    client = boto3.client("ecr", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    held = "sha256:" + "1" * 64
    stub = Stubber(client)
    stub.add_response("describe_images", {"imageDetails": [{"imageDigest": held, "imageTags": ["t1"]}]},
                      {"repositoryName": "repo", "imageIds": [{"imageTag": "t1"}]})
    stub.add_client_error("describe_images", "ImageNotFoundException",
                          expected_params={"repositoryName": "repo", "imageIds": [{"imageTag": "t2"}]})
    stub.add_client_error("describe_images", "RepositoryNotFoundException",
                          expected_params={"repositoryName": "other", "imageIds": [{"imageTag": "t1"}]})
    stub.add_client_error("describe_images", "AccessDeniedException",
                          expected_params={"repositoryName": "repo", "imageIds": [{"imageTag": "t3"}]})
    with stub:
        assert image.digest_of_tag(client, "repo", "t1") == held
        assert image.digest_of_tag(client, "repo", "t2") is None
        assert image.digest_of_tag(client, "other", "t1") is None
        # Anything else is not "no such image": the deploy stops instead of pushing blindly.
        with pytest.raises(client.exceptions.ClientError, match="AccessDenied"):
            image.digest_of_tag(client, "repo", "t3")
    stub.assert_no_pending_responses()


def test_each_catalog_function_is_a_service(program):
    run = program("dev")
    services = {r.name for r in run.of_type("collections:lambda:LambdaService")}
    assert services == {f"collections-dev-{f.name.replace('_', '-')}" for f in catalog.FUNCTIONS}


def test_each_api_route_is_a_route_with_the_right_authorization(program):
    run = program("dev")
    routes = {r.inputs["routeKey"]: r.inputs for r in run.of_type("aws:apigatewayv2/route:Route")}
    assert set(routes) == {r.route_key for r in catalog.API_ROUTES}
    (authorizer,) = run.of_type("aws:apigatewayv2/authorizer:Authorizer")
    assert authorizer.inputs["jwtConfiguration"]["audiences"] == [run.outputs["user_pool_client_id"]]
    assert authorizer.inputs["jwtConfiguration"]["issuer"].endswith(run.outputs["user_pool_id"])
    for route in catalog.API_ROUTES:
        inputs = routes[route.route_key]
        assert inputs["authorizationType"] == ("JWT" if route.authorized else "NONE"), route.route_key
        assert ("authorizerId" in inputs) is route.authorized
        assert inputs["target"].startswith("integrations/")
    (stage,) = run.of_type("aws:apigatewayv2/stage:Stage")
    assert stage.inputs["name"] == "$default" and stage.inputs["autoDeploy"] is True
    assert stage.inputs["defaultRouteSettings"]["throttlingBurstLimit"] == 40
    assert json.loads(stage.inputs["accessLogSettings"]["format"])["status"] == "$context.status"


def test_each_event_trigger_is_a_rule_with_the_catalog_pattern(program):
    run = program("dev")
    rules = run.of_type(RULE)
    targets = {t.inputs["rule"]: t.inputs for t in run.of_type(TARGET)}
    bucket, bus = run.outputs["bucket"], run.outputs["event_bus"]
    for fn in catalog.FUNCTIONS:
        for trigger in fn.triggers:
            if trigger.kind == "http":
                continue
            if trigger.kind == "s3":
                expected = {"pattern": trigger.event_pattern(bucket), "bus": "default"}
            elif trigger.kind == "event":
                expected = {"pattern": trigger.event_pattern(), "bus": bus}
            else:
                expected = {"schedule": trigger.expression, "bus": "default"}
            matching = [
                r for r in rules
                if (r.inputs.get("eventBusName") or "default") == expected["bus"]
                and ("pattern" not in expected or json.loads(r.inputs.get("eventPattern", "null")) == expected[
                    "pattern"])
                and ("schedule" not in expected or r.inputs.get("scheduleExpression") == expected["schedule"])
            ]
            assert len(matching) == 1, f"{fn.name}: {trigger}"
            # The target names its rule by the rule's physical name, which starts with the resource name.
            (target,) = [t for name, t in targets.items() if name.startswith(matching[0].name)]
            assert target["arn"] == run.outputs["services"][fn.name]["alias_arn"]


def test_uploads_rule_matches_only_this_buckets_uploads_prefix(program):
    run = program("dev")
    (rule,) = [r for r in run.of_type(RULE) if "aws.s3" in r.inputs.get("eventPattern", "")]
    pattern = json.loads(rule.inputs["eventPattern"])
    assert pattern == {"source": ["aws.s3"], "detail-type": ["Object Created"],
                       "detail": {"bucket": {"name": [run.outputs["bucket"]]},
                                  "object": {"key": [{"prefix": "uploads/"}]}}}


def test_migrate_runs_on_deploy_keyed_by_the_migrations(program):
    run = program("dev")
    (invocation,) = run.of_type("aws:lambda/invocation:Invocation")
    deployed = [f for f in catalog.FUNCTIONS if f.invoke_on_deploy]
    assert [f.name for f in deployed] == ["migrate"]
    assert invocation.inputs["functionName"] == "collections-dev-migrate-blue"
    assert invocation.inputs["qualifier"] == "live"
    assert invocation.inputs["triggers"] == {"migrations_hash": migrations_hash()}
    assert any("rds/instance" in d for d in invocation.dependencies)  # after the database exists


def test_failed_async_invocations_go_to_the_dead_letter_queue(program):
    run = program("dev")
    configs = {c.inputs["functionName"]: c.inputs for c in run.of_type(
        "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig")}
    (queue,) = run.of_type("aws:sqs/queue:Queue")
    for fn in catalog.FUNCTIONS:
        name = f"collections-dev-{fn.name.replace('_', '-')}-blue"
        if fn.triggers_of("http") or not fn.triggers:
            assert name not in configs
            continue
        assert configs[name]["qualifier"] == "live"
        assert configs[name]["destinationConfig"]["onFailure"]["destination"].startswith("arn:aws:sqs:")
    assert queue.inputs["messageRetentionSeconds"] == 14 * 24 * 3600


INVOCATION = "aws:lambda/invocation:Invocation"


def _urns(run, typ: str, name_part: str = "") -> set[str]:
    return {r.urn for r in run.of_type(typ) if name_part in r.name}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_migrations_wait_for_the_database_secret_proxy_and_nat_routes(program, stack):
    """`depends_on` on a component does not reach its children, so the edges must be on the
    invocation itself, as the engine records them."""
    run = program(stack)
    (invocation,) = run.of_type(INVOCATION)
    needs = (
        _urns(run, "aws:secretsmanager/secretVersion:SecretVersion", "-connection")
        | _urns(run, "aws:rds/instance:Instance")
        | _urns(run, "aws:rds/proxyTarget:ProxyTarget")
        | _urns(run, "aws:ec2/natGateway:NatGateway")
        | _urns(run, "aws:ec2/routeTable:RouteTable", "-private-")
        | _urns(run, "aws:ec2/routeTableAssociation:RouteTableAssociation", "-private-")
        | {alias_of(run, f"collections-{stack}-migrate-blue").urn}
    )
    assert len(_urns(run, "aws:ec2/natGateway:NatGateway")) == (3 if stack == "prod" else 1)
    assert len(_urns(run, "aws:rds/proxyTarget:ProxyTarget")) == (1 if stack == "prod" else 0)
    missing = needs - set(invocation.dependencies)
    assert not missing, f"the migrate invocation does not wait for {sorted(missing)}"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_no_other_alias_moves_before_the_migrations_ran(program, stack):
    run = program(stack, slots("api", "blue", blue="zip", green="image"))
    (invocation,) = run.of_type(INVOCATION)
    aliases = run.of_type(ALIAS)
    assert len(aliases) == len(catalog.FUNCTIONS) + 1  # the api's green slot too
    for alias in aliases:
        if alias.inputs["functionName"].startswith(f"collections-{stack}-migrate-"):
            assert invocation.urn not in alias.dependencies  # the invocation runs through this alias
        else:
            assert invocation.urn in alias.dependencies, alias.inputs["functionName"]


def test_the_invocation_edges_are_on_the_children_not_only_the_components(program):
    """The component carries no dependency that would have to reach its children."""
    run = program("dev")
    for service in run.of_type("collections:lambda:LambdaService"):
        assert service.dependencies == (), service.name


def test_the_ecr_lifecycle_never_expires_an_image_a_published_version_may_use(program):
    """Every pushed image is tagged (immutable content tags) and may back a version that
    `collections-release prune` keeps (prune deletes versions, never images): so the only rule
    selects untagged images, and no rule counts tagged ones."""
    from infra.components.image import lifecycle_policy

    run = program("dev", slots("image_processor", "blue", blue="zip", green="image"))
    (lifecycle,) = run.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy")
    policy = json.loads(lifecycle.inputs["policy"])
    assert policy == lifecycle_policy()
    for rule in policy["rules"]:
        assert rule["selection"]["tagStatus"] == "untagged", rule
        assert rule["action"] == {"type": "expire"}
    (repository,) = run.of_type("aws:ecr/repository:Repository")
    assert repository.inputs["imageTagMutability"] == "IMMUTABLE"  # a tag never moves off an image
    (build,) = run.of_type("docker:index/remoteImage:RemoteImage")
    assert ":" in build.inputs["name"].rsplit("/", 1)[1]  # pushed with a tag


def test_prune_deletes_versions_only_so_their_images_stay():
    """The other half of the agreement: prune's only destructive call is DeleteFunction on a version."""
    import ast
    from pathlib import Path

    import pipelines.prune
    import pipelines.traffic

    calls = set()
    for module in (pipelines.prune, pipelines.traffic):
        for node in ast.walk(ast.parse(Path(module.__file__).read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr.startswith(
                    ("delete", "batch_delete", "put_lifecycle")):
                calls.add(node.func.attr)
    assert calls <= {"delete_version", "delete_function"}, calls
