"""Both stacks from their own YAML files: resource types and counts, the prod/dev differences,
the output contract, function environments and least-privilege IAM."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from services import catalog
from services.core.settings import Settings
from services.web.site import app_files

FUNCTION = "aws:lambda/function:Function"
ALIAS = "aws:lambda/alias:Alias"
N = len(catalog.FUNCTIONS)
ASYNC = [f for f in catalog.FUNCTIONS if any(t.kind in ("s3", "event", "schedule") for t in f.triggers)]
EVENT_TRIGGERS = sum(1 for f in catalog.FUNCTIONS for t in f.triggers if t.kind in ("s3", "event", "schedule"))
ROUTES = len(catalog.API_ROUTES)


def counts(run) -> Counter:
    return Counter(r.type for r in run.resources.values())


COMMON = {
    FUNCTION: N, ALIAS: N,
    "aws:cloudwatch/logGroup:LogGroup": N + 1,  # + the API access log
    "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig": len(ASYNC),
    "aws:cloudwatch/eventRule:EventRule": EVENT_TRIGGERS, "aws:cloudwatch/eventTarget:EventTarget": EVENT_TRIGGERS,
    "aws:lambda/permission:Permission": EVENT_TRIGGERS + 1,  # + API Gateway's
    "aws:apigatewayv2/route:Route": ROUTES, "aws:apigatewayv2/integration:Integration": 1,
    "aws:apigatewayv2/authorizer:Authorizer": 1, "aws:apigatewayv2/stage:Stage": 1,
    # errors + p95 + throttles per service, async destination failures, EventBridge FailedInvocations per
    # rule, API latency + 5xx, DLQ, database connections (both stacks run RDS); + spillover per PC service
    "aws:cloudwatch/metricAlarm:MetricAlarm": 3 * N + len(ASYNC) + EVENT_TRIGGERS + 3 + 1,
    "aws:cloudwatch/dashboard:Dashboard": 1, "aws:sns/topic:Topic": 1,
    # The uploads bucket and the web app's (infra/components/web.py), each with its public access block.
    "aws:s3/bucket:Bucket": 2, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": 2,
    "aws:cloudfront/distribution:Distribution": 1, "aws:cloudfront/originAccessControl:OriginAccessControl": 1,
    "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy": 1,
    "aws:cognito/userPoolDomain:UserPoolDomain": 1,
    "aws:s3/bucketObjectv2:BucketObjectv2": len(app_files()) + 1,  # + config.json
    "aws:cloudwatch/eventBus:EventBus": 1, "aws:sqs/queue:Queue": 1,
    "aws:cognito/userPool:UserPool": 1, "aws:cognito/userPoolClient:UserPoolClient": 1,
    "aws:rds/instance:Instance": 1, "aws:rds/parameterGroup:ParameterGroup": 1,  # max_connections: the budget
    "aws:lambda/invocation:Invocation": 1, "aws:ec2/vpcEndpoint:VpcEndpoint": 1,
    "aws:ecr/repository:Repository": 0, "docker:index/remoteImage:RemoteImage": 0,
    "docker:index/registryImage:RegistryImage": 0,
}
PER_STACK = {
    "dev": {"aws:ec2/natGateway:NatGateway": 1, "aws:ec2/subnet:Subnet": 4, "aws:rds/proxy:Proxy": 0,
            "aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig": 0,
            "aws:sns/topicSubscription:TopicSubscription": 0, "aws:secretsmanager/secret:Secret": 3,
            "aws:iam/role:Role": N, "aws:iam/rolePolicy:RolePolicy": N},
    "prod": {"aws:ec2/natGateway:NatGateway": 3, "aws:ec2/subnet:Subnet": 6, "aws:rds/proxy:Proxy": 1,
             "aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig": 1,
             "aws:sns/topicSubscription:TopicSubscription": 1, "aws:secretsmanager/secret:Secret": 4,
             "aws:iam/role:Role": N + 1, "aws:iam/rolePolicy:RolePolicy": N + 1,  # + the RDS Proxy's
             "aws:cloudwatch/metricAlarm:MetricAlarm": COMMON["aws:cloudwatch/metricAlarm:MetricAlarm"] + 1},  # api PC
}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_resource_types_and_counts(program, stack):
    found = counts(program(stack))
    for typ, expected in {**COMMON, **PER_STACK[stack]}.items():
        assert found[typ] == expected, f"{stack}: {typ}: {found[typ]} != {expected}"


def test_component_type_tokens_and_parents(program):
    run = program("dev")
    components = {r.type for r in run.resources.values() if not r.custom and r.type != "pulumi:pulumi:Stack"}
    assert all(t.startswith("collections:") and t.count(":") == 2 for t in components)
    assert "collections:lambda:LambdaService" in components
    # Every AWS resource is a child of a component (none floats at the stack root) except the
    # on-deploy invocation, which belongs to the whole stack.
    orphans = [r.name for r in run.resources.values()
               if r.custom and "$" not in r.urn.split("::")[2] and r.type != "aws:lambda/invocation:Invocation"]
    assert orphans == []


def test_prod_is_gradual_dev_is_direct(program):
    for stack, ignored in (("dev", ()), ("prod", ("functionVersion", "routingConfig"))):
        run = program(stack)
        for fn in catalog.FUNCTIONS:
            alias = run.one(ALIAS, f"collections-{stack}-{fn.name.replace('_', '-')}-blue")
            mode = run.outputs["services"][fn.name]["release_mode"]
            if fn.invoke_on_deploy:  # migrate runs through `live` during the deploy: always direct
                assert (alias.ignore_changes, mode) == ((), "direct")
            else:
                assert alias.ignore_changes == ignored, f"{stack} {fn.name}"
                assert mode == ("gradual" if ignored else "direct")


def test_alias_and_configs_live_and_die_with_their_function(program):
    run = program("prod")
    function = run.one(FUNCTION, "collections-prod-api-blue")
    tied = [r for r in run.resources.values() if r.name == "collections-prod-api-blue" and r.type in (
        ALIAS, "aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig")]
    tied += [r for r in run.of_type("aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig")
             if r.name == "collections-prod-analyzer-blue"]
    assert len(tied) == 3
    for resource in tied:
        owner = function.urn if "api" in resource.name else run.one(FUNCTION, "collections-prod-analyzer-blue").urn
        assert (resource.replace_with, resource.deleted_with) == ((owner,), owner)


def test_prod_warms_the_api_alias_only(program):
    run = program("prod")
    (config,) = run.of_type("aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig")
    assert config.inputs["functionName"] == "collections-prod-api-blue"
    assert config.inputs["qualifier"] == "live"
    assert config.inputs["provisionedConcurrentExecutions"] == run.outputs["services"]["api"][
        "provisioned_concurrency"] > 0


def test_prod_protects_its_data_and_dev_does_not(program):
    for stack, protected in (("dev", False), ("prod", True)):
        run = program(stack)
        (db,) = run.of_type("aws:rds/instance:Instance")
        (pool,) = run.of_type("aws:cognito/userPool:UserPool")
        buckets = run.of_type("aws:s3/bucket:Bucket")  # uploads and the web app's
        assert db.inputs["deletionProtection"] is protected
        assert db.inputs["skipFinalSnapshot"] is (not protected)
        assert pool.inputs["deletionProtection"] == ("ACTIVE" if protected else "INACTIVE")
        assert len(buckets) == 2 and all(b.inputs["forceDestroy"] is (not protected) for b in buckets)
        assert db.inputs["multiAz"] is protected  # prod also runs a standby
        assert db.inputs["engine"] == "postgres" and db.inputs["engineVersion"].startswith("17")
        assert db.inputs["publiclyAccessible"] is False and db.inputs["storageEncrypted"] is True


def test_outputs_follow_the_release_contract(program):
    run = program("dev")
    assert set(run.outputs) == {"api_url", "app_url", "bucket", "event_bus", "user_pool_id", "user_pool_client_id",
                                "dashboard_name", "region", "stack", "release", "services"}
    assert (run.outputs["stack"], run.outputs["region"]) == ("dev", "eu-west-1")
    release = run.outputs["release"]
    assert (release["steps"], release["step_minutes"]) == ([0.1, 0.5, 1.0], 5)  # Pulumi.yaml defaults
    prod = program("prod").outputs["release"]
    assert (prod["steps"], prod["step_minutes"]) == ([0.05, 0.25, 0.5, 1.0], 10)
    assert prod["canary"]["min_invocations"] == 100  # Pulumi.prod.yaml releaseCanary
    from pipelines.outputs import ReleaseDefaults

    assert ReleaseDefaults.model_validate(prod).strategy == "steps:5,25,50,100:10"  # what shift defaults to
    assert run.outputs["api_url"].startswith("https://") and run.outputs["event_bus"] == "collections-dev"
    assert set(run.outputs["services"]) == set(catalog.FUNCTIONS_BY_NAME)
    for name, service in run.outputs["services"].items():
        fn = catalog.function(name)
        slug = name.replace("_", "-")
        assert set(service) == {"active_slot", "alias_arn", "alias_name", "function_names", "release_mode",
                                "provisioned_concurrency", "alarm_names", "triggers", "canary"}
        assert service["alias_arn"].endswith(f":function:collections-dev-{slug}-blue:live")
        assert service["function_names"] == {"blue": f"collections-dev-{slug}-blue"}
        assert service["triggers"] == [t.kind for t in fn.triggers]
        assert (service["alias_name"], service["release_mode"], service["active_slot"]) == ("live", "direct", "blue")
        alarms = {r.inputs["name"] for r in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
        assert set(service["alarm_names"]) <= alarms and len(service["alarm_names"]) >= 2


def test_function_settings_are_what_the_lambda_config_says(program):
    run = program("prod")
    for fn in catalog.FUNCTIONS:
        resource = run.one(FUNCTION, f"collections-prod-{fn.name.replace('_', '-')}-blue")
        inputs = resource.inputs
        assert inputs["name"] == f"collections-prod-{fn.name.replace('_', '-')}-blue"
        assert inputs["publish"] is True and inputs["packageType"] == "Zip"
        assert inputs["architectures"] == [fn.architecture] and inputs["runtime"] == "python3.12"
        assert (inputs["memorySize"], inputs["timeout"], inputs["handler"]) == (fn.memory_mb, fn.timeout_s, fn.handler)
        assert inputs.get("reservedConcurrentExecutions") == fn.reserved_concurrency
        assert inputs["loggingConfig"]["logGroup"] == f"/aws/lambda/{inputs['name']}"
        assert resource.delete_before_replace  # explicit names cannot exist twice


def test_function_environment_uses_the_settings_variable_names(program):
    run = program("dev")
    prefix = Settings.model_config["env_prefix"]
    known = {f"{prefix}{name}".upper() for name in Settings.model_fields}
    by_name = {r.inputs["name"]: r.inputs["environment"]["variables"] for r in run.of_type(FUNCTION)}
    for fn in catalog.FUNCTIONS:
        env = by_name[f"collections-dev-{fn.name.replace('_', '-')}-blue"]
        ours = {k for k in env if k.startswith(prefix)}
        assert ours <= known, f"{fn.name}: not settings: {ours - known}"
        assert env["COLLECTIONS_BUCKET"] == run.outputs["bucket"]
        assert env["COLLECTIONS_EVENT_BUS"] == run.outputs["event_bus"]
        secrets = {"database": "COLLECTIONS_DATABASE_SECRET_ARN", "anthropic": "COLLECTIONS_ANTHROPIC_SECRET_ARN",
                   "voyage": "COLLECTIONS_VOYAGE_SECRET_ARN"}
        for secret, variable in secrets.items():
            assert (variable in env) is (secret in fn.secrets), f"{fn.name}: {variable}"
            if variable in env:
                assert env[variable].startswith("arn:aws:secretsmanager:")
        if fn.triggers_of("http"):
            assert env["COLLECTIONS_AUTH_MODE"] == "apigateway"
            assert env["COLLECTIONS_COGNITO_USER_POOL_ID"] == run.outputs["user_pool_id"]
            assert env["COLLECTIONS_COGNITO_CLIENT_ID"] == run.outputs["user_pool_client_id"]
        else:
            assert "COLLECTIONS_AUTH_MODE" not in env


def _policy(run, stack: str, service: str) -> dict:
    role_policy = run.one("aws:iam/rolePolicy:RolePolicy", f"collections-{stack}-{service}-blue")
    return json.loads(role_policy.inputs["policy"])


def test_iam_is_least_privilege_per_function(program):
    run = program("dev")
    bucket = f"arn:aws:s3:::{run.outputs['bucket']}"
    processor = _policy(run, "dev", "image-processor")
    s3 = [s for s in processor["Statement"] if any(a.startswith("s3:") for a in s["Action"])]
    objects = [s for s in s3 if s["Action"] != ["s3:ListBucket"]]
    assert {r for s in objects for r in s["Resource"]} == {
        f"{bucket}/uploads/*",
        f"{bucket}/originals/*",
        f"{bucket}/thumbnails/*",
    }
    # ListBucket with no prefix condition: a missing key then answers 404, not 403 (services/catalog.py).
    (listing,) = [s for s in s3 if s["Action"] == ["s3:ListBucket"]]
    assert listing["Resource"] == [bucket] and "Condition" not in listing
    assert not any(a == "*" or a.endswith(":*") for s in processor["Statement"] for a in s["Action"])

    # The api signs the presigned POSTs: it (hence an uploader) can never write a verified original.
    api = _policy(run, "dev", "api")
    api_writes = {r for s in api["Statement"] if "s3:PutObject" in s["Action"] for r in s["Resource"]}
    assert api_writes == {f"{bucket}/uploads/*"}

    embedder = _policy(run, "dev", "embedder")
    assert not [s for s in embedder["Statement"] if any(a.startswith("s3:") for a in s["Action"])]
    (secrets,) = [s for s in embedder["Statement"] if s["Sid"] == "Secrets"]
    assert len(secrets["Resource"]) == 2  # database and voyage: not anthropic's
    assert all("anthropic" not in arn for arn in secrets["Resource"])

    cleanup = _policy(run, "dev", "cleanup")
    (listing,) = [s for s in cleanup["Statement"] if s["Action"] == ["s3:ListBucket"]]
    assert listing["Resource"] == [bucket]
    assert not [s for s in cleanup["Statement"] if "events:PutEvents" in s["Action"]]

    api = _policy(run, "dev", "api")
    assert not [s for s in api["Statement"] if s["Sid"] == "FailedEvents"]  # synchronous: no DLQ


def test_database_is_reachable_from_the_functions_only(program):
    run = program("dev")
    db_group = run.one("aws:ec2/securityGroup:SecurityGroup", "collections-dev-postgres")
    functions_group = run.one("aws:ec2/securityGroup:SecurityGroup", "collections-dev-functions")
    (rule,) = db_group.inputs["ingress"]
    assert (rule["fromPort"], rule["toPort"]) == (5432, 5432)
    assert rule.get("cidrBlocks") in (None, []) and len(rule["securityGroups"]) == 1
    for fn in run.of_type(FUNCTION):
        assert len(fn.inputs["vpcConfig"]["securityGroupIds"]) == 1
        assert fn.inputs["vpcConfig"]["subnetIds"]
    assert functions_group.inputs["vpcId"] == db_group.inputs["vpcId"]
    prod = program("prod").one("aws:ec2/securityGroup:SecurityGroup", "collections-prod-postgres")
    assert [rule.get("self", False) for rule in prod.inputs["ingress"]] == [False, True]  # + the RDS Proxy


def test_connection_secret_has_the_shape_the_services_read(program):
    run = program("prod")
    versions = {r.name: r for r in run.of_type("aws:secretsmanager/secretVersion:SecretVersion")}
    secret = json.loads(versions["collections-prod-connection"].inputs["secretString"])
    assert set(secret) >= {"host", "port", "username", "password", "dbname"}
    assert ".proxy-" in secret["host"]  # prod goes through the RDS Proxy
    assert json.loads(program("dev").one("aws:secretsmanager/secretVersion:SecretVersion",
                                         "collections-dev-connection").inputs["secretString"])["host"].endswith(
        ".rds.amazonaws.com")


def test_external_database_mode_stores_the_url_and_creates_no_instance(program):
    run = program("dev", {"collections:database": {"mode": "external"},
                          "collections:databaseUrl": "postgresql://u:p@db.example.com/collections"})
    assert run.count("aws:rds/instance:Instance") == 0
    version = run.one("aws:secretsmanager/secretVersion:SecretVersion", "collections-dev-connection")
    assert json.loads(version.inputs["secretString"]) == {"url": "postgresql://u:p@db.example.com/collections"}


def test_bucket_is_private_encrypted_and_tls_only(program):
    run = program("dev")

    def uploads(typ: str) -> list:  # the web app's bucket is checked in tests/infra/test_web.py
        return [r for r in run.of_type(typ) if "-web-" not in r.name]

    (block,) = uploads("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert all(block.inputs[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                                 "restrictPublicBuckets"))
    (policy,) = uploads("aws:s3/bucketPolicy:BucketPolicy")
    (statement,) = json.loads(policy.inputs["policy"])["Statement"]
    assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    (cors,) = run.of_type("aws:s3/bucketCorsConfiguration:BucketCorsConfiguration")
    assert "POST" in cors.inputs["corsRules"][0]["allowedMethods"]
    (notification,) = run.of_type("aws:s3/bucketNotification:BucketNotification")
    assert notification.inputs["eventbridge"] is True
    (encryption,) = uploads(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert encryption.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"


def test_cognito_signs_in_by_email_and_the_client_has_no_secret(program):
    run = program("dev")
    (pool,) = run.of_type("aws:cognito/userPool:UserPool")
    (client,) = run.of_type("aws:cognito/userPoolClient:UserPoolClient")
    assert pool.inputs["usernameAttributes"] == ["email"]
    assert pool.inputs["passwordPolicy"]["minimumLength"] >= 12
    assert client.inputs["generateSecret"] is False


def test_alarms_watch_the_live_alias(program):
    run = program("dev")
    alarms = {r.inputs["name"]: r.inputs for r in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    errors = alarms["collections-dev-analyzer-errors"]
    assert errors["dimensions"] == {"FunctionName": "collections-dev-analyzer-blue",
                                    "Resource": "collections-dev-analyzer-blue:live"}
    duration = alarms["collections-dev-analyzer-duration-p95"]
    assert duration["extendedStatistic"] == "p95" and duration["namespace"] == "AWS/Lambda"
    latency = alarms["collections-dev-api-latency-p95"]
    assert (latency["namespace"], latency["threshold"]) == ("AWS/ApiGateway", 500)
    assert alarms["collections-dev-api-5xx"]["metricName"] == "5xx"
    assert alarms["collections-dev-dlq-depth"]["namespace"] == "AWS/SQS"
    topic_arn = run.one("aws:sns/topic:Topic", "collections-dev-monitoring-alarms").inputs  # registered
    assert topic_arn is not None
    (dashboard,) = run.of_type("aws:cloudwatch/dashboard:Dashboard")
    body = json.loads(dashboard.inputs["dashboardBody"])
    resources = {m[5] for w in body["widgets"] for m in w["properties"]["metrics"] if m[0] == "AWS/Lambda"}
    assert resources == {f"collections-dev-{f.name.replace('_', '-')}-blue:live" for f in catalog.FUNCTIONS}


def test_alarms_cover_throttles_spillover_event_delivery_and_database(program):
    run = program("prod")
    alarms = {r.inputs["name"]: r.inputs for r in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    live = {"FunctionName": "collections-prod-api-blue", "Resource": "collections-prod-api-blue:live"}
    assert (alarms["collections-prod-api-throttles"]["metricName"], alarms["collections-prod-api-throttles"][
        "dimensions"]) == ("Throttles", live)
    assert alarms["collections-prod-api-pc-spillover"]["metricName"] == "ProvisionedConcurrencySpilloverInvocations"
    assert alarms["collections-prod-analyzer-destination-failures"]["metricName"] == "DestinationDeliveryFailures"
    failed = {n: a for n, a in alarms.items() if a["metricName"] == "FailedInvocations"}
    assert len(failed) == EVENT_TRIGGERS and {a["namespace"] for a in failed.values()} == {"AWS/Events"}
    # the S3 rule is on the default bus (RuleName only); pipeline rules on the custom bus (EventBusName too)
    assert sorted(tuple(sorted(a["dimensions"])) for a in failed.values()).count(("RuleName",)) == sum(
        1 for f in catalog.FUNCTIONS for t in f.triggers if t.kind in ("s3", "schedule"))
    connections = alarms["collections-prod-db-connections"]
    assert (connections["namespace"], connections["metricName"]) == ("AWS/RDS", "DatabaseConnections")
    assert connections["threshold"] == int(catalog.DATABASE_MAX_CONNECTIONS * 0.7)  # the max_connections the group sets
    outputs = run.outputs["services"]
    assert "collections-prod-api-pc-spillover" in outputs["api"]["alarm_names"]  # a shift watches it
    (dashboard,) = run.of_type("aws:cloudwatch/dashboard:Dashboard")
    metrics = [m for w in json.loads(dashboard.inputs["dashboardBody"])["widgets"] for m in w["properties"]["metrics"]]
    names = {m[1] for m in metrics if isinstance(m[0], str)}  # not the stage outcomes' search expressions
    assert {"ProvisionedConcurrencySpilloverInvocations", "DestinationDeliveryFailures", "FailedInvocations",
            "DatabaseConnections", "ClientConnections", "ApproximateNumberOfMessagesVisible", "Throttles"} <= names
    # the proxy's figures are summed over its nodes; the instance's connections are one figure (Maximum)
    proxy = [m for m in metrics if m[0] == "AWS/RDS" and m[2] == "ProxyName"]
    assert len(proxy) == 2 and all(m[-1] == {"stat": "Sum", "period": 60} for m in proxy)
    (instance,) = [m for m in metrics if m[0] == "AWS/RDS" and m[2] == "DBInstanceIdentifier"]
    assert instance[-1] == {"stat": "Maximum"}


def test_snap_start_applies_to_published_versions_of_the_api_in_dev_only(program):
    """dev: SnapStart on the api (versions are published already, aliases point at them); prod:
    provisioned concurrency instead, never both."""
    dev, prod = program("dev"), program("prod")
    for name, function in ((n, dev.one(FUNCTION, f"collections-dev-{n}-blue")) for n in ("api", "embedder")):
        assert function.inputs["publish"] is True
        expected = {"applyOn": "PublishedVersions"} if name == "api" else None
        assert function.inputs.get("snapStart") == expected
    assert prod.one(FUNCTION, "collections-prod-api-blue").inputs.get("snapStart") is None
    assert not dev.of_type("aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig")
