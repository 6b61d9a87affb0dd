"""What `pulumi up` would do between two configurations, worked out from two mock runs.

Each resource (by URN) is classified as create, update, replace, delete or same. "Replace"
follows the provider: for pulumi-aws, the ForceNew schema of terraform-provider-aws that it
bridges (`REPLACEMENTS`); inputs listed in the new registration's `ignore_changes` are not
compared, as Pulumi does. The stack outputs are compared too, so a scenario can say which outputs
moved, and every plan is checked for changes that break a consumer (`Plan.violations`).

    plan = plan_between("dev", base_overrides, new_overrides)
    plan.actions("replace")   # → [] for a safe change
    plan.violations           # → () unless a serving function, alias or permission would go

The table fails closed: a registered type without an entry is an error (`UnknownResourceType`),
never a silent "update". Where the facts come from (read for this table; pulumi-aws 7.51.1 and
pulumi-docker 5.2.0 are installed; pulumi-aws 7.x bridges terraform-provider-aws v6):

- terraform-provider-aws (github.com/hashicorp/terraform-provider-aws), `internal/service/<svc>/<file>.go`,
  the `ForceNew: true` / `RequiresReplace()` attributes of each schema, and resources without an
  Update function (every argument is then ForceNew). Each entry names its file and the commit read.
- terraform-provider-aws `internal/provider/sdkv2/region.go` @0073593 (`forceNewIfRegionChanges`):
  a change of the top-level `region` argument replaces every regional resource (IAM is global).
- pulumi-docker `provider/provider.go` @237b789 (v5.1.0+, same code as v4.11.2): the native
  `docker:index/image:Image` `Diff` reports only UPDATE/ADD/DELETE kinds and never a replacement;
  changes to `registry.username`/`registry.password` alone are no diff at all.
- Pulumi renames some Terraform arguments (`function_name` → `name` on a Function, `function` on a
  Permission, `alarm_name` → `name`, `topic_arn` → `topic`, `filename` → `code`); entries use the
  Pulumi input names, and tests/infra/test_replacements.py checks each against the installed SDK.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from infra.mocks import ProgramRun, Resource, plain, run_program

Action = Literal["create", "update", "replace", "delete", "same"]

TF_AWS = "terraform-provider-aws internal/service/"


class UnknownResourceType(LookupError):
    """A registered resource type has no entry in the replace-forcing table: add one from upstream."""


@dataclass(frozen=True)
class Replacement:
    """When the provider replaces (rather than updates) one resource type."""

    forcing: tuple[str, ...] = ()  # Pulumi input names, dotted for a nested field, whose change replaces
    source: str = ""  # where the fact comes from: provider file @ commit read
    no_update: bool = False  # no Update in the provider: any input change replaces
    regional: bool = True  # v6 replaces on a change of the top-level `region` (region.go)
    # Forcing that depends on the inputs (a CustomizeDiff in the provider): input → (before, after) → forces?
    when: Mapping[str, Callable[[Mapping[str, Any], Mapping[str, Any]], bool]] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()  # dotted inputs the provider's diff leaves out

    def forces(self, changed: Iterable[str], before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[str, ...]:
        """The changed inputs (and changed nested forcing fields) that make this a replacement."""
        changed = tuple(changed)
        if self.no_update:
            return changed
        forcing = (*self.forcing, *(("region",) if self.regional else ()))
        hits = [k for k in changed if k in forcing]
        hits += [p for p in forcing if "." in p and _normal(_at(before, p)) != _normal(_at(after, p))]
        hits += [k for k, forces in self.when.items() if k in changed and forces(before, after)]
        return tuple(dict.fromkeys(hits))


def _invocation_input_forces(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    # invocation.go customizeDiffInputChangeWithCreateOnlyScope: ForceNew("input") unless lifecycle_scope is CRUD.
    return (after.get("lifecycleScope") or "CREATE_ONLY") == "CREATE_ONLY"


def _durable_config_added_or_removed(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    # function.go CustomizeDiff: ForceNewIfChange("durable_config") when the block appears or disappears.
    return bool(before.get("durableConfig")) != bool(after.get("durableConfig"))


def _subnet_ipv6_forces(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    # vpc_subnet.go CustomizeDiff: ForceNewIf("ipv6_cidr_block") when the old subnet assigned IPv6 on creation.
    return bool(before.get("assignIpv6AddressOnCreation"))


def _endpoint_private_dns_forces(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    # vpc_endpoint.go CustomizeDiff: ForceNew("private_dns_enabled") unless the endpoint is an Interface endpoint.
    return (after.get("vpcEndpointType") or "Gateway") != "Interface"


def _tf(path: str, commit: str) -> str:
    return f"{TF_AWS}{path} @{commit}"


# Every type either stack registers. Keep entries to what the upstream file says; add new types here
# (tests/infra/test_replacements.py fails for a registered type without an entry).
REPLACEMENTS: Mapping[str, Replacement] = {
    # -- Lambda -------------------------------------------------------------------------------
    "aws:lambda/function:Function": Replacement(
        ("name", "packageType", "tenancyConfig"), _tf("lambda/function.go", "0156d84"),
        when={"durableConfig": _durable_config_added_or_removed}),
    "aws:lambda/alias:Alias": Replacement(("functionName", "name"), _tf("lambda/alias.go", "029aff9")),
    # No Update: every argument is ForceNew.
    "aws:lambda/permission:Permission": Replacement(source=_tf("lambda/permission.go", "04592f0"), no_update=True),
    "aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig": Replacement(
        ("functionName", "qualifier"), _tf("lambda/provisioned_concurrency_config.go", "04c7984")),
    "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig": Replacement(
        ("functionName", "qualifier"), _tf("lambda/function_event_invoke_config.go", "0160692")),
    "aws:lambda/invocation:Invocation": Replacement(
        ("functionName", "qualifier", "triggers"), _tf("lambda/invocation.go", "0133e9e"),
        when={"input": _invocation_input_forces}),
    # -- API Gateway v2 -------------------------------------------------------------------------
    "aws:apigatewayv2/api:Api": Replacement(
        ("credentialsArn", "protocolType", "routeKey", "target"), _tf("apigatewayv2/api.go", "00a3530")),
    # `authorizer_type` is updated in place (UpdateAuthorizer), only `api_id` is ForceNew.
    "aws:apigatewayv2/authorizer:Authorizer": Replacement(("apiId",), _tf("apigatewayv2/authorizer.go", "01f4311")),
    "aws:apigatewayv2/integration:Integration": Replacement(
        ("apiId", "integrationSubtype", "integrationType"), _tf("apigatewayv2/integration.go", "03412d5")),
    "aws:apigatewayv2/route:Route": Replacement(("apiId",), _tf("apigatewayv2/route.go", "00a3530")),
    "aws:apigatewayv2/stage:Stage": Replacement(("apiId", "name"), _tf("apigatewayv2/stage.go", "02f6d2d")),
    # -- EventBridge, CloudWatch ------------------------------------------------------------------
    "aws:cloudwatch/eventBus:EventBus": Replacement(("eventSourceName", "name"), _tf("events/bus.go", "0160692")),
    "aws:cloudwatch/eventRule:EventRule": Replacement(
        ("eventBusName", "name", "namePrefix"), _tf("events/rule.go", "0cdab4a")),
    "aws:cloudwatch/eventTarget:EventTarget": Replacement(
        ("eventBusName", "rule", "targetId"), _tf("events/target.go", "0762c41")),
    "aws:cloudwatch/logGroup:LogGroup": Replacement(
        ("logGroupClass", "name", "namePrefix"), _tf("logs/group.go", "0073593")),
    # `alarm_name` is Pulumi's `name`.
    "aws:cloudwatch/metricAlarm:MetricAlarm": Replacement(("name",), _tf("cloudwatch/metric_alarm.go", "055611a")),
    "aws:cloudwatch/dashboard:Dashboard": Replacement(("dashboardName",), _tf("cloudwatch/dashboard.go", "0620f2a")),
    # -- Cognito ----------------------------------------------------------------------------------
    "aws:cognito/userPool:UserPool": Replacement(
        ("aliasAttributes", "name", "usernameAttributes", "usernameConfiguration.caseSensitive"),
        _tf("cognitoidp/user_pool.go", "015edb1")),
    "aws:cognito/userPoolClient:UserPoolClient": Replacement(
        ("generateSecret", "userPoolId"), _tf("cognitoidp/user_pool_client.go", "01f4311") + " (RequiresReplace)"),
    # -- IAM (global: no `region` argument) ---------------------------------------------------------
    "aws:iam/role:Role": Replacement(("name", "namePrefix", "path"), _tf("iam/role.go", "0040ea6"), regional=False),
    "aws:iam/rolePolicy:RolePolicy": Replacement(
        ("name", "namePrefix", "role"), _tf("iam/role_policy.go", "02f97af"), regional=False),
    # -- ECR ----------------------------------------------------------------------------------------
    "aws:ecr/repository:Repository": Replacement(
        ("encryptionConfigurations", "name"), _tf("ecr/repository.go", "0072eea")),
    # No Update: a new policy document replaces the resource.
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": Replacement(
        source=_tf("ecr/lifecycle_policy.go", "00a3530"), no_update=True),
    # -- RDS ------------------------------------------------------------------------------------------
    # `name` is updated in place (ModifyDBProxy NewDBProxyName).
    "aws:rds/proxy:Proxy": Replacement(
        ("endpointNetworkType", "engineFamily", "targetConnectionNetworkType", "vpcSubnetIds"),
        _tf("rds/proxy.go", "013f173")),
    "aws:rds/proxyDefaultTargetGroup:ProxyDefaultTargetGroup": Replacement(
        ("dbProxyName",), _tf("rds/proxy_default_target_group.go", "0aa0d33")),
    # No Update: every argument is ForceNew.
    "aws:rds/proxyTarget:ProxyTarget": Replacement(source=_tf("rds/proxy_target.go", "04a2e6e"), no_update=True),
    # -- Secrets Manager ------------------------------------------------------------------------------
    # A new secret string is a new version (PutSecretValue): only `version_stages` updates in place.
    "aws:secretsmanager/secretVersion:SecretVersion": Replacement(
        ("secretBinary", "secretId", "secretString", "secretStringWoVersion"),
        _tf("secretsmanager/secret_version.go", "0042e8e")),
    "aws:secretsmanager/secret:Secret": Replacement(("name", "namePrefix"), _tf("secretsmanager/secret.go", "00c21ce")),
    "aws:rds/instance:Instance": Replacement(
        ("availabilityZone", "characterSetName", "customIamInstanceProfile", "dbName", "engine", "identifier",
         "identifierPrefix", "kmsKeyId", "ncharCharacterSetName", "restoreToPointInTime", "snapshotIdentifier",
         "storageEncrypted", "timezone", "username"),
        _tf("rds/instance.go", "00e4b23") + " (a v4-era copy; `s3Import` fields are ForceNew inside the block)"),
    "aws:rds/subnetGroup:SubnetGroup": Replacement(("name", "namePrefix"), _tf("rds/subnet_group.go", "01c0800")),
    # `parameter` (a set) updates in place: ModifyDBParameterGroup for new values, ResetDBParameterGroup for
    # removed ones. The instance's `parameterGroupName` is updated in place too (aws:rds/instance above).
    "aws:rds/parameterGroup:ParameterGroup": Replacement(
        ("description", "family", "name", "namePrefix"), _tf("rds/parameter_group.go", "0160692")),
    # -- EC2 networking -----------------------------------------------------------------------------
    "aws:ec2/vpc:Vpc": Replacement(("cidrBlock", "ipv4IpamPoolId", "ipv4NetmaskLength"), _tf("ec2/vpc_.go", "00081ce")),
    "aws:ec2/subnet:Subnet": Replacement(
        ("availabilityZone", "availabilityZoneId", "cidrBlock", "ipv4IpamPoolId", "ipv4NetmaskLength",
         "ipv6IpamPoolId", "ipv6Native", "ipv6NetmaskLength", "outpostArn", "vpcId"),
        _tf("ec2/vpc_subnet.go", "00cda12"), when={"ipv6CidrBlock": _subnet_ipv6_forces}),
    "aws:ec2/securityGroup:SecurityGroup": Replacement(
        ("description", "name", "namePrefix", "vpcId"), _tf("ec2/vpc_security_group.go", "0160692")),
    # `vpc_id` is attach/detach in place.
    "aws:ec2/internetGateway:InternetGateway": Replacement((), _tf("ec2/vpc_internet_gateway.go", "08923b6")),
    "aws:ec2/eip:Eip": Replacement(
        ("address", "domain", "ipamPoolId", "networkBorderGroup", "publicIpv4Pool"), _tf("ec2/ec2_eip.go", "0160692")),
    "aws:ec2/natGateway:NatGateway": Replacement(
        ("allocationId", "connectivityType", "privateIp", "secondaryPrivateIpAddressCount", "subnetId"),
        _tf("ec2/vpc_nat_gateway.go", "04088ea")),
    "aws:ec2/routeTable:RouteTable": Replacement(("vpcId",), _tf("ec2/vpc_route_table.go", "0220924")),
    # `route_table_id` is ReplaceRouteTableAssociation in place.
    "aws:ec2/routeTableAssociation:RouteTableAssociation": Replacement(
        ("gatewayId", "subnetId"), _tf("ec2/vpc_route_table_association.go", "0be71be")),
    "aws:ec2/vpcEndpoint:VpcEndpoint": Replacement(
        ("resourceConfigurationArn", "serviceName", "serviceNetworkArn", "serviceRegion", "vpcEndpointType", "vpcId",
         "dnsOptions.privateDnsPreference", "dnsOptions.privateDnsSpecifiedDomains"),
        _tf("ec2/vpc_endpoint.go", "008db85"), when={"privateDnsEnabled": _endpoint_private_dns_forces}),
    # -- S3: the bucket and its sub-resources (each addresses its bucket by name) ---------------------
    "aws:s3/bucket:Bucket": Replacement(
        ("bucket", "bucketPrefix", "objectLockEnabled"),
        "terraform-provider-aws website/docs/r/s3_bucket.html.markdown (Forces new resource); s3/bucket.go @4c72bcc"),
    "aws:s3/bucketCorsConfiguration:BucketCorsConfiguration": Replacement(
        ("bucket", "expectedBucketOwner"),
        "terraform-provider-aws website/docs/r/s3_bucket_cors_configuration.html.markdown @0413c66"),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": Replacement(
        ("bucket", "expectedBucketOwner"),
        "terraform-provider-aws website/docs/r/s3_bucket_server_side_encryption_configuration.html.markdown @0aa0d33"),
    "aws:s3/bucketNotification:BucketNotification": Replacement(
        ("bucket",), _tf("s3/bucket_notification.go", "033c721")),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": Replacement(
        ("bucket",), _tf("s3/bucket_ownership_controls.go", "01c0800")),
    "aws:s3/bucketPolicy:BucketPolicy": Replacement(("bucket",), _tf("s3/bucket_policy.go", "0073593")),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": Replacement(
        ("bucket",), _tf("s3/bucket_public_access_block.go", "0160692")),
    # -- SQS, SNS -----------------------------------------------------------------------------------------
    "aws:sqs/queue:Queue": Replacement(("fifoQueue", "name", "namePrefix"), _tf("sqs/queue.go", "00a3530")),
    "aws:sqs/queuePolicy:QueuePolicy": Replacement(("queueUrl",), _tf("sqs/queue_policy.go", "0148137")),
    "aws:sns/topic:Topic": Replacement(("fifoTopic", "name", "namePrefix"), _tf("sns/topic.go", "00a3530")),
    # `topic_arn` is Pulumi's `topic`.
    "aws:sns/topicSubscription:TopicSubscription": Replacement(
        ("endpoint", "protocol", "topic"), _tf("sns/topic_subscription.go", "04a2e6e")),
    # -- pulumi-docker (native provider): never replaces ----------------------------------------------
    "docker:index/image:Image": Replacement(
        source="pulumi-docker provider/provider.go @237b789 (Diff: no replace kinds)", regional=False,
        ignored=("registry.username", "registry.password")),
    # -- pulumi-docker's bridged kreuzwerker/terraform-provider-docker (image slots build with these) --
    # internal/provider/resource_docker_image.go: name, triggers, platform, pull_triggers and every
    # field of the build block are ForceNew (buildSchema).
    "docker:index/remoteImage:RemoteImage": Replacement(
        ("name", "build", "triggers", "platform", "pullTriggers"),
        "kreuzwerker/terraform-provider-docker internal/provider/resource_docker_image.go (pulumi-docker 5.x)",
        regional=False),
    # internal/provider/resource_docker_registry_image.go: name and triggers are ForceNew.
    "docker:index/registryImage:RegistryImage": Replacement(
        ("name", "triggers", "build"),
        "kreuzwerker/terraform-provider-docker internal/provider/resource_docker_registry_image.go (pulumi-docker 5.x)",
        regional=False),
}

# --- the web app (infra/components/web.py) ------------------------------------------------------
# ForceNew facts from hashicorp/terraform-provider-aws (the schemas pulumi-aws bridges):
#   internal/service/cloudfront/distribution.go            aws_cloudfront_distribution: no ForceNew
#       attribute; every change is an UpdateDistribution.
#   internal/service/cloudfront/origin_access_control.go   aws_cloudfront_origin_access_control: no
#       ForceNew attribute (UpdateOriginAccessControl with the whole config).
#   internal/service/cloudfront/response_headers_policy.go aws_cloudfront_response_headers_policy: no
#       ForceNew attribute ("the entire policy is replaced" by UpdateResponseHeadersPolicy, in place).
#   internal/service/s3/object.go                          aws_s3_object (BucketObjectv2): `bucket`
#       and `key` are ForceNew; content and metadata changes are updates.
#   internal/service/cognitoidp/user_pool_domain.go        aws_cognito_user_pool_domain: `domain`,
#       `user_pool_id`, `certificate_arn` ForceNew; the resource has no Update at all: every input.
REPLACEMENTS = {
    **REPLACEMENTS,
    "aws:cloudfront/distribution:Distribution": Replacement(
        source=_tf("cloudfront/distribution.go", "read for issue 13"), regional=False),
    "aws:cloudfront/originAccessControl:OriginAccessControl": Replacement(
        source=_tf("cloudfront/origin_access_control.go", "read for issue 13"), regional=False),
    "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy": Replacement(
        source=_tf("cloudfront/response_headers_policy.go", "read for issue 13"), regional=False),
    "aws:s3/bucketObjectv2:BucketObjectv2": Replacement(("bucket", "key"), _tf("s3/object.go", "read for issue 13")),
    "aws:cognito/userPoolDomain:UserPoolDomain": Replacement(
        source=_tf("cognitoidp/user_pool_domain.go", "read for issue 13"), no_update=True),
}


def replacement_rule(typ: str) -> Replacement:
    """The table entry for a registered type; an unknown type is an error, never an "update"."""
    rule = REPLACEMENTS.get(typ)
    if rule is None:
        raise UnknownResourceType(
            f"{typ}: no entry in infra.plan.REPLACEMENTS; add its replace-forcing inputs from the provider's "
            f"schema (ForceNew / RequiresReplace) and name the file and commit read")
    return rule


@dataclass(frozen=True)
class Change:
    urn: str
    type: str
    name: str
    action: Action
    inputs: tuple[str, ...] = ()  # the inputs that differ (update/replace)

    def __str__(self) -> str:
        detail = f" ({', '.join(self.inputs)})" if self.inputs else ""
        return f"{self.action:7} {self.type} {self.name}{detail}"


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    output_changes: Mapping[str, tuple[Any, Any]]  # dotted path → (before, after)
    before: ProgramRun
    after: ProgramRun
    violations: tuple[str, ...] = ()  # serving functions, aliases or permissions this plan would break

    def actions(self, *actions: Action, custom_only: bool = True) -> list[Change]:
        return [c for c in self.changes if c.action in actions and (not custom_only or not _is_component(c.type))]

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for change in self.changes:
            if not _is_component(change.type):
                counts[change.action] = counts.get(change.action, 0) + 1
        return counts

    def describe(self) -> str:
        return "\n".join(str(c) for c in self.actions("create", "update", "replace", "delete"))


def _is_component(typ: str) -> bool:
    return typ.startswith("collections:") or typ == "pulumi:pulumi:Stack"


def _normal(value: Any) -> Any:
    value = plain(value)
    if isinstance(value, Mapping):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, str) and value[:1] in "{[":
        try:  # JSON documents (policies, patterns) compare by content, not by spelling
            return json.loads(value)
        except ValueError:
            return value
    return value


def _at(inputs: Mapping[str, Any], path: str) -> Any:
    value: Any = inputs
    for key in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _without(inputs: Mapping[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """The inputs with the dotted `paths` removed (what a provider's diff leaves out)."""
    result = json.loads(json.dumps(plain(inputs), default=str))
    for path in paths:
        *parents, leaf = path.split(".")
        node = result
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return result


def classify(before: Resource | None, after: Resource | None) -> Change:
    if before is None and after is None:
        raise ValueError("nothing to classify")
    current = after if after is not None else before
    assert current is not None
    rule = replacement_rule(current.type) if current.custom else None
    if before is None:
        return Change(current.urn, current.type, current.name, "create")
    if after is None:
        return Change(before.urn, before.type, before.name, "delete")
    old, new = before.inputs, after.inputs
    if rule is not None and rule.ignored:
        old, new = _without(old, rule.ignored), _without(new, rule.ignored)
    ignored = set(after.ignore_changes)
    keys = (set(old) | set(new)) - ignored
    changed = tuple(sorted(k for k in keys if _normal(old.get(k)) != _normal(new.get(k))))
    if not changed:
        return Change(after.urn, after.type, after.name, "same")
    forced = rule.forces(changed, old, new) if rule is not None else ()
    # The `replace_on_changes` option: the engine turns a diff of these inputs into a replacement
    # (pulumi/pulumi developer-docs/architecture/resource-registration.md, "Resource Diffing").
    option = after.replace_on_changes
    forced = (*forced, *(k for k in changed if "*" in option or k in option or any(
        p.startswith(f"{k}.") or p.startswith(f"{k}[") for p in option)))
    return Change(after.urn, after.type, after.name, "replace" if forced else "update", changed)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


# -- consumers ------------------------------------------------------------------------------------
FUNCTION = "aws:lambda/function:Function"
ALIAS = "aws:lambda/alias:Alias"
PERMISSION = "aws:lambda/permission:Permission"
INVOCATION = "aws:lambda/invocation:Invocation"
# The slot itself: these reference their function but do not call it.
_SLOT_TYPES = {FUNCTION, ALIAS, PERMISSION, "aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig",
               "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"}
# A function or alias ARN, also inside an API Gateway invoke ARN: group 1 the function, 2 the qualifier.
_LAMBDA_ARN = re.compile(r"arn:aws[\w-]*:lambda:[\w-]+:\d{12}:function:([A-Za-z0-9_-]+)(?::([A-Za-z0-9_$-]+))?")


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def consumed(run: ProgramRun) -> set[tuple[str, str | None]]:
    """(function name, qualifier or None) pairs that something other than the slot itself calls:
    API Gateway integrations and EventBridge targets by ARN, deploy-time invocations by name."""
    refs: set[tuple[str, str | None]] = set()
    for resource in run.resources.values():
        if not resource.custom or resource.type in _SLOT_TYPES:
            continue
        if resource.type == INVOCATION:
            refs.add((str(resource.inputs.get("functionName")), resource.inputs.get("qualifier") or "$LATEST"))
            continue
        for text in _strings(plain(resource.inputs)):
            for match in _LAMBDA_ARN.finditer(text):
                refs.add((match.group(1), match.group(2)))
    return refs


def _slot_key(resource: Resource) -> tuple[str, str | None] | None:
    if resource.type == FUNCTION:
        return (str(resource.inputs.get("name")), None)
    if resource.type == ALIAS:
        return (_function_name(resource.inputs.get("functionName")), str(resource.inputs.get("name")))
    if resource.type == PERMISSION:
        return (_function_name(resource.inputs.get("function")), resource.inputs.get("qualifier"))
    return None


def _function_name(value: Any) -> str:
    match = _LAMBDA_ARN.fullmatch(str(value))
    return match.group(1) if match else str(value)


def _is_referenced(key: tuple[str, str | None], refs: set[tuple[str, str | None]]) -> bool:
    function, qualifier = key
    if qualifier is None:  # a function: any call of it, whatever the qualifier
        return any(name == function for name, _ in refs)
    return key in refs


def consumer_violations(changes: Iterable[Change], before: ProgramRun, after: ProgramRun) -> tuple[str, ...]:
    """Changes that break something a consumer calls, before or after this `pulumi up`.

    - A function, alias or permission that a consumer references before or after may not be replaced:
      a function's replacement deletes first (explicit name), an alias goes with it, and the
      consumer calls the old one until its own update lands.
    - None of them may be deleted while a consumer still references it after the up.
    - A function or alias that served before may not be deleted in the same up that moves its
      consumers away: that is the previously active slot, which must outlive the flip.
      Its permissions may go: Pulumi issues the deletes of resources the program no longer registers
      only once the program has exited (pulumi/pulumi developer-docs/architecture/resource-registration.md,
      "The Step Generator"), and the Python program exits only after every registration it made was
      answered, i.e. after the new permissions exist and the consumers' updates landed (the flip's own
      permission swap). `deleted_with` only skips such a delete; it does not move it earlier.
    """
    refs_before, refs_after = consumed(before), consumed(after)
    problems: list[str] = []
    for change in changes:
        if change.action not in ("replace", "delete"):
            continue
        resource = after.resources.get(change.urn) or before.resources[change.urn]
        key = _slot_key(resource)
        if key is None:
            continue
        served, serves = _is_referenced(key, refs_before), _is_referenced(key, refs_after)
        what = f"{change.type} {change.name} ({key[0]}{':' + key[1] if key[1] else ''})"
        if change.action == "replace" and (served or serves):
            problems.append(f"replaces {what}, which a consumer calls {'before' if served else 'after'} this up")
        elif change.action == "delete" and serves:
            problems.append(f"deletes {what}, which a consumer still calls after this up")
        elif change.action == "delete" and served and resource.type in (FUNCTION, ALIAS):
            problems.append(f"deletes {what}, which served consumers until this up: flip first, remove it next")
    return tuple(problems)


def diff(before: ProgramRun, after: ProgramRun) -> Plan:
    urns = list(dict.fromkeys([*before.resources, *after.resources]))
    changes = {u: classify(before.resources.get(u), after.resources.get(u)) for u in urns}
    # `replace_with`: a resource is replaced along with any of the listed ones (to a fixed point).
    cascading = True
    while cascading:
        cascading = False
        for urn, change in changes.items():
            resource = after.resources.get(urn)
            if resource is None or change.action in ("create", "replace"):
                continue
            if any(changes.get(u) is not None and changes[u].action == "replace" for u in resource.replace_with):
                changes[urn] = Change(urn, change.type, change.name, "replace", (*change.inputs, "(replace_with)"))
                cascading = True
    old, new = _flatten(before.outputs), _flatten(after.outputs)
    output_changes = {
        path: (old.get(path), new.get(path))
        for path in dict.fromkeys([*old, *new])
        if old.get(path) != new.get(path)
    }
    return Plan(changes=tuple(changes.values()), output_changes=output_changes, before=before, after=after,
                violations=consumer_violations(changes.values(), before, after))


def deployed_packages(run: ProgramRun) -> dict[str, str]:
    """What AWS runs after `run` was applied: function name → "zip" | "image"."""
    return {
        r.inputs["name"]: "image" if r.inputs.get("packageType") == "Image" else "zip"
        for r in run.of_type(FUNCTION)
    }


def plan_between(
    stack: str,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    *,
    build_dir: Path | None = None,
    before_source: Path | None = None,
    after_source: Path | None = None,
    deployed: Mapping[str, str] | None = None,
) -> Plan:
    """Run the program for the `before` config (applied on `deployed`), then for `after` on top of it:
    the second run sees what the first deployed (package types, published versions, stack outputs)."""
    first = run_program(stack, before, deployed=deployed, build_dir=build_dir, source_root=before_source)
    second = run_program(stack, after, deployed=deployed_packages(first), build_dir=build_dir,
                         source_root=after_source, previous=first)
    return diff(first, second)


def names(changes: Iterable[Change]) -> set[tuple[str, str]]:
    """(type, name) pairs: handy in assertions."""
    return {(c.type, c.name) for c in changes}
