"""Policies every Collections stack must satisfy, importable so tests call each `validate` directly.

- consumers-use-live-alias: API integrations, event targets, permissions and event source
  mappings name an alias-qualified function (never `$LATEST`, a bare function or a version).
- buckets-block-public-access: every bucket has a public access block with all four settings on.
- functions-have-log-retention: every function's log group exists and has a retention.
- images-pinned-by-digest: an image function runs `repository@sha256:<digest>`, never a tag.
- buckets-never-public: no bucket policy allows everyone (`"*"`) and no ACL grants public access;
  the web app's bucket is read only by its CloudFront distribution (a service principal narrowed by
  AWS:SourceArn).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

FUNCTION = "aws:lambda/function:Function"
BUCKET_TYPES = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
PUBLIC_ACCESS_SETTINGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")

# arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]
_LAMBDA_ARN = re.compile(r"arn:aws[\w-]*:lambda:[\w-]+:\d{12}:function:(?P<name>[\w-]+)(?::(?P<qualifier>[^:/]+))?")
_DIGEST = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")


def alias_qualifier(qualifier: str | None) -> bool:
    """An alias name: set, not `$LATEST`, not a version number."""
    return bool(qualifier) and qualifier != "$LATEST" and not str(qualifier).isdigit()


def _lambda_target(value: Any) -> re.Match | None:
    return _LAMBDA_ARN.search(value) if isinstance(value, str) else None


def _check_arn(value: Any, what: str, report_violation: ReportViolation) -> None:
    match = _lambda_target(value)
    if match is not None and not alias_qualifier(match.group("qualifier")):
        report_violation(f"{what} {value!r} calls the function {match.group('name')!r} without an alias; "
                         "target its `live` alias ARN so releases and rollbacks move traffic", None)


def _consumers_use_alias(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    props: Mapping[str, Any] = args.props
    kind = args.resource_type
    if kind == "aws:apigatewayv2/integration:Integration":
        _check_arn(props.get("integrationUri"), "integration URI", report_violation)
    elif kind == "aws:cloudwatch/eventTarget:EventTarget":
        _check_arn(props.get("arn"), "event target", report_violation)
    elif kind == "aws:lambda/eventSourceMapping:EventSourceMapping":
        function = props.get("functionName")
        match = _lambda_target(function)
        if match is None or not alias_qualifier(match.group("qualifier")):
            report_violation(f"event source mapping calls {function!r}; use the alias ARN "
                             "(arn:aws:lambda:…:function:<name>:live)", None)
    elif kind == "aws:lambda/permission:Permission":
        function, qualifier = props.get("function"), props.get("qualifier")
        match = _lambda_target(function)
        qualified = alias_qualifier(qualifier) or (match is not None and alias_qualifier(match.group("qualifier")))
        if not qualified:
            report_violation(f"permission on {function!r} is not qualified with an alias "
                             f"(qualifier {qualifier!r}); grant the `live` alias only", None)


def _buckets_block_public_access(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    # A block names its bucket by value, or (in a preview, where the name is not known yet) by
    # depending on the bucket resource for its `bucket` property.
    blocked: set[str] = set()
    for resource in args.resources:
        if resource.resource_type == PUBLIC_ACCESS_BLOCK and all(
            resource.props.get(setting) is True for setting in PUBLIC_ACCESS_SETTINGS
        ):
            blocked.add(resource.props.get("bucket"))
            blocked.update(dep.urn for dep in (resource.property_dependencies or {}).get("bucket", []))
    for resource in args.resources:
        if resource.resource_type in BUCKET_TYPES:
            names = {resource.props.get("bucket"), resource.props.get("id"), resource.urn}
            if not names & blocked:
                report_violation(
                    f"bucket {resource.name!r} has no public access block with {', '.join(PUBLIC_ACCESS_SETTINGS)} "
                    "all true", resource.urn)


def _functions_have_log_retention(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    retention = {
        r.props.get("name"): r.props.get("retentionInDays") for r in args.resources if r.resource_type == LOG_GROUP
    }
    for resource in args.resources:
        if resource.resource_type != FUNCTION:
            continue
        logging_config = resource.props.get("loggingConfig") or {}
        group = logging_config.get("logGroup") or f"/aws/lambda/{resource.props.get('name')}"
        days = retention.get(group)
        if not days:
            state = "has no retention" if group in retention else "is not managed by the stack"
            report_violation(f"function {resource.name!r}: log group {group!r} {state}; logs would be kept "
                             "forever (and a group Lambda creates itself escapes the stack)", resource.urn)


def _images_pinned_by_digest(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != FUNCTION:
        return
    image = args.props.get("imageUri")
    is_image = args.props.get("packageType") == "Image" or bool(image)
    if is_image and (not isinstance(image, str) or not _DIGEST.match(image)):
        report_violation(f"image URI {image!r} is not pinned by digest (repository@sha256:…); a tag can "
                         "move under a published version", None)


BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
BUCKET_ACL_TYPES = ("aws:s3/bucketAclV2:BucketAclV2", "aws:s3/bucketAcl:BucketAcl")
PUBLIC_ACLS = ("public-read", "public-read-write", "authenticated-read")
PUBLIC_GRANTEES = ("http://acs.amazonaws.com/groups/global/AllUsers",
                   "http://acs.amazonaws.com/groups/global/AuthenticatedUsers")


def _everyone(principal: Any) -> bool:
    """"*" or {"AWS": "*"} (or a list holding "*"): anybody, signed or not."""
    if principal == "*":
        return True
    if isinstance(principal, Mapping):
        aws = principal.get("AWS")
        return aws == "*" or (isinstance(aws, list) and "*" in aws)
    return False


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _buckets_never_public(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    props: Mapping[str, Any] = args.props
    if args.resource_type == BUCKET_POLICY:
        document = props.get("policy")
        if isinstance(document, str):
            try:
                document = json.loads(document)
            except ValueError:
                report_violation("bucket policy is not valid JSON", None)
                return
        if not isinstance(document, Mapping):
            return  # unknown during a preview: checked again at `up`
        for statement in _as_list(document.get("Statement") or []):
            if isinstance(statement, Mapping) and statement.get("Effect") == "Allow" and (
                _everyone(statement.get("Principal")) or "NotPrincipal" in statement
            ):
                report_violation(
                    f"bucket policy statement {statement.get('Sid') or '(no Sid)'} allows everyone "
                    f"({statement.get('Action')}); grant a service or role, e.g. CloudFront with AWS:SourceArn",
                    None)
    elif args.resource_type in BUCKET_TYPES + BUCKET_ACL_TYPES:
        acl = props.get("acl")
        grants = [g for policy in _as_list(props.get("accessControlPolicy") or {}) if isinstance(policy, Mapping)
                  for g in policy.get("grants") or []]
        grants += list(props.get("grants") or [])
        public_grant = any(isinstance(g, Mapping) and (g.get("grantee") or {}).get("uri") in PUBLIC_GRANTEES
                           or isinstance(g, Mapping) and g.get("uri") in PUBLIC_GRANTEES for g in grants)
        if acl in PUBLIC_ACLS or public_grant:
            report_violation(f"bucket ACL {acl or 'grant'} makes objects public; serve them through "
                             "CloudFront with origin access control instead", None)


consumers_use_live_alias = ResourceValidationPolicy(
    name="consumers-use-live-alias",
    description="API integrations, event targets, permissions and event source mappings use an alias ARN.",
    validate=_consumers_use_alias,
    enforcement_level=EnforcementLevel.MANDATORY,
)
buckets_block_public_access = StackValidationPolicy(
    name="buckets-block-public-access",
    description="Every S3 bucket has a public access block with all four settings enabled.",
    validate=_buckets_block_public_access,
    enforcement_level=EnforcementLevel.MANDATORY,
)
functions_have_log_retention = StackValidationPolicy(
    name="functions-have-log-retention",
    description="Every Lambda function has a stack-managed log group with a retention.",
    validate=_functions_have_log_retention,
    enforcement_level=EnforcementLevel.MANDATORY,
)
images_pinned_by_digest = ResourceValidationPolicy(
    name="images-pinned-by-digest",
    description="Container image functions run an image pinned by digest, never a tag.",
    validate=_images_pinned_by_digest,
    enforcement_level=EnforcementLevel.MANDATORY,
)

buckets_never_public = ResourceValidationPolicy(
    name="buckets-never-public",
    description="No bucket policy allows everyone and no bucket ACL grants public access.",
    validate=_buckets_never_public,
    enforcement_level=EnforcementLevel.MANDATORY,
)

POLICIES = [consumers_use_live_alias, buckets_block_public_access, functions_have_log_retention,
            images_pinned_by_digest, buckets_never_public]
