"""What `pulumi up` would do between two configurations, worked out from two mock runs.

Each resource (by URN) is classified as create, update, replace, delete or same. "Replace"
follows the replace-forcing inputs of terraform-provider-aws as bridged by pulumi-aws (the
table in DESIGN.md, plus the other types this program uses); inputs listed in the new
registration's `ignore_changes` are not compared, as Pulumi does. The stack outputs are compared
too, so a scenario can say which outputs moved.

    plan = plan_between("dev", base_overrides, new_overrides)
    plan.actions("replace")   # → [] for a safe change
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from infra.mocks import ProgramRun, Resource, plain, run_program

Action = Literal["create", "update", "replace", "delete", "same"]
EVERY_INPUT = ("*",)

# Inputs whose change makes the provider replace the resource (ForceNew in the Terraform schema).
REPLACE_ON: Mapping[str, tuple[str, ...]] = {
    "aws:lambda/function:Function": ("name", "packageType"),
    "aws:lambda/alias:Alias": ("functionName", "name"),
    "aws:lambda/permission:Permission": EVERY_INPUT,
    "aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig": ("functionName", "qualifier"),
    "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig": ("functionName", "qualifier"),
    "aws:lambda/invocation:Invocation": ("functionName", "qualifier", "input", "triggers"),
    "aws:apigatewayv2/api:Api": ("protocolType",),
    "aws:apigatewayv2/integration:Integration": ("apiId", "integrationType", "integrationSubtype"),
    "aws:apigatewayv2/route:Route": ("apiId",),
    "aws:apigatewayv2/stage:Stage": ("apiId", "name"),
    "aws:apigatewayv2/authorizer:Authorizer": ("apiId", "authorizerType"),
    "aws:cloudwatch/eventRule:EventRule": ("name", "eventBusName"),
    "aws:cloudwatch/eventTarget:EventTarget": ("rule", "targetId", "eventBusName"),
    "aws:cloudwatch/eventBus:EventBus": ("name",),
    "aws:cloudwatch/logGroup:LogGroup": ("name",),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("name",),
    "aws:cloudwatch/dashboard:Dashboard": ("dashboardName",),
    "aws:s3/bucket:Bucket": ("bucket",),
    "aws:sqs/queue:Queue": ("name",),
    "aws:ecr/repository:Repository": ("name",),
    "aws:iam/role:Role": ("name",),
    "aws:iam/rolePolicy:RolePolicy": ("role", "name"),
    "aws:secretsmanager/secret:Secret": ("name",),
    "aws:rds/instance:Instance": ("identifier", "engine", "dbName", "username", "storageEncrypted"),
    "aws:cognito/userPool:UserPool": ("usernameAttributes",),
    "aws:cognito/userPoolClient:UserPoolClient": ("userPoolId", "generateSecret"),
    "docker:index/image:Image": ("imageName", "build"),
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
WEB_REPLACE_ON: Mapping[str, tuple[str, ...]] = {
    "aws:cloudfront/distribution:Distribution": (),
    "aws:cloudfront/originAccessControl:OriginAccessControl": (),
    "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy": (),
    "aws:s3/bucketObjectv2:BucketObjectv2": ("bucket", "key"),
    "aws:cognito/userPoolDomain:UserPoolDomain": EVERY_INPUT,
}
REPLACE_ON = {**REPLACE_ON, **WEB_REPLACE_ON}


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


def classify(before: Resource | None, after: Resource | None) -> Change:
    if before is None and after is None:
        raise ValueError("nothing to classify")
    if before is None:
        assert after is not None
        return Change(after.urn, after.type, after.name, "create")
    if after is None:
        return Change(before.urn, before.type, before.name, "delete")
    ignored = set(after.ignore_changes)
    keys = (set(before.inputs) | set(after.inputs)) - ignored
    changed = tuple(sorted(k for k in keys if _normal(before.inputs.get(k)) != _normal(after.inputs.get(k))))
    if not changed:
        return Change(after.urn, after.type, after.name, "same")
    forcing = REPLACE_ON.get(after.type, ())
    replace = forcing == EVERY_INPUT or any(k in forcing for k in changed)
    return Change(after.urn, after.type, after.name, "replace" if replace else "update", changed)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


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
    return Plan(changes=tuple(changes.values()), output_changes=output_changes, before=before, after=after)


def deployed_packages(run: ProgramRun) -> dict[str, str]:
    """What AWS runs after `run` was applied: function name → "zip" | "image"."""
    return {
        r.inputs["name"]: "image" if r.inputs.get("packageType") == "Image" else "zip"
        for r in run.of_type("aws:lambda/function:Function")
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
    """Run the program for the `before` config (applied on `deployed`), then for `after` on top of it."""
    first = run_program(stack, before, deployed=deployed, build_dir=build_dir, source_root=before_source)
    second = run_program(stack, after, deployed=deployed_packages(first), build_dir=build_dir,
                         source_root=after_source)
    return diff(first, second)


def names(changes: Iterable[Change]) -> set[tuple[str, str]]:
    """(type, name) pairs: handy in assertions."""
    return {(c.type, c.name) for c in changes}
