"""The policy pack: each policy's `validate` on passing and failing resources, then on both stacks."""

from __future__ import annotations

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
    StackValidationPolicy,
)

from infra.policies.rules import (
    POLICIES,
    buckets_block_public_access,
    consumers_use_live_alias,
    functions_have_log_retention,
    images_pinned_by_digest,
)

ARN = "arn:aws:lambda:eu-west-1:123456789012:function:collections-dev-api-blue"
INVOKE = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/{}/invocations"
DIGEST = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/api@sha256:" + "a" * 64


def options() -> PolicyResourceOptions:
    return PolicyResourceOptions(protect=False, ignore_changes=[], delete_before_replace=False, aliases=[],
                                 custom_timeouts=PolicyCustomTimeouts(0, 0, 0), additional_secret_outputs=[])


def violations_of(policy, resource_type: str, props: dict) -> list[str]:
    found: list[str] = []
    args = ResourceValidationArgs(resource_type, props, f"urn:pulumi:dev::collections::{resource_type}::x", "x",
                                  options(), None)
    policy.validate(args, lambda message, urn=None: found.append(message))
    return found


def policy_resource(resource_type: str, props: dict, name: str = "x", property_dependencies=None) -> PolicyResource:
    return PolicyResource(resource_type, props, f"urn:pulumi:dev::collections::{resource_type}::{name}", name,
                          options(), None, None, [], property_dependencies or {})


def stack_violations(policy, resources: list[PolicyResource]) -> list[str]:
    found: list[str] = []
    policy.validate(StackValidationArgs(resources), lambda message, urn=None: found.append(message))
    return found


@pytest.mark.parametrize(("resource_type", "props"), [
    ("aws:apigatewayv2/integration:Integration", {"integrationUri": INVOKE.format(f"{ARN}:live")}),
    ("aws:cloudwatch/eventTarget:EventTarget", {"arn": f"{ARN}:live"}),
    ("aws:cloudwatch/eventTarget:EventTarget", {"arn": "arn:aws:sqs:eu-west-1:123456789012:queue"}),
    ("aws:lambda/permission:Permission", {"function": "collections-dev-api-blue", "qualifier": "live"}),
    ("aws:lambda/permission:Permission", {"function": f"{ARN}:live"}),
    ("aws:lambda/eventSourceMapping:EventSourceMapping", {"functionName": f"{ARN}:live"}),
])
def test_alias_qualified_consumers_pass(resource_type, props):
    assert violations_of(consumers_use_live_alias, resource_type, props) == []


@pytest.mark.parametrize(("resource_type", "props", "words"), [
    ("aws:apigatewayv2/integration:Integration", {"integrationUri": INVOKE.format(ARN)}, "without an alias"),
    ("aws:apigatewayv2/integration:Integration", {"integrationUri": INVOKE.format(f"{ARN}:$LATEST")},
     "without an alias"),
    ("aws:cloudwatch/eventTarget:EventTarget", {"arn": f"{ARN}:7"}, "without an alias"),
    ("aws:lambda/permission:Permission", {"function": "collections-dev-api-blue"}, "not qualified with an alias"),
    ("aws:lambda/permission:Permission", {"function": ARN, "qualifier": "3"}, "not qualified with an alias"),
    ("aws:lambda/eventSourceMapping:EventSourceMapping", {"functionName": "collections-dev-api-blue"},
     "use the alias ARN"),
])
def test_unqualified_consumers_fail(resource_type, props, words):
    (message,) = violations_of(consumers_use_live_alias, resource_type, props)
    assert words in message


def test_images_must_be_pinned_by_digest():
    function = "aws:lambda/function:Function"
    assert violations_of(images_pinned_by_digest, function, {"packageType": "Image", "imageUri": DIGEST}) == []
    assert violations_of(images_pinned_by_digest, function, {"packageType": "Zip", "handler": "a.b"}) == []
    (message,) = violations_of(images_pinned_by_digest, function,
                               {"packageType": "Image", "imageUri": DIGEST.split("@")[0] + ":latest"})
    assert "not pinned by digest" in message
    assert violations_of(images_pinned_by_digest, function, {"packageType": "Image"})  # no URI at all


def test_buckets_must_block_public_access():
    bucket = policy_resource("aws:s3/bucket:Bucket", {"bucket": "b1"}, "b1")
    all_on = {s: True for s in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")}
    block = policy_resource("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", {"bucket": "b1", **all_on})
    assert stack_violations(buckets_block_public_access, [bucket, block]) == []
    # In a preview the name is unknown: the block's dependency on the bucket counts.
    by_dependency = policy_resource("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", all_on,
                                    property_dependencies={"bucket": [bucket]})
    assert stack_violations(buckets_block_public_access, [bucket, by_dependency]) == []
    partly = policy_resource("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
                             {"bucket": "b1", **all_on, "restrictPublicBuckets": False})
    (message,) = stack_violations(buckets_block_public_access, [bucket, partly])
    assert "bucket 'b1' has no public access block" in message
    assert stack_violations(buckets_block_public_access, [bucket])


def test_functions_need_a_log_group_with_retention():
    function = policy_resource("aws:lambda/function:Function", {"name": "f"}, "f")
    kept = policy_resource("aws:cloudwatch/logGroup:LogGroup", {"name": "/aws/lambda/f", "retentionInDays": 14})
    assert stack_violations(functions_have_log_retention, [function, kept]) == []
    forever = policy_resource("aws:cloudwatch/logGroup:LogGroup", {"name": "/aws/lambda/f"})
    (message,) = stack_violations(functions_have_log_retention, [function, forever])
    assert "has no retention" in message
    (message,) = stack_violations(functions_have_log_retention, [function])
    assert "is not managed by the stack" in message
    custom = policy_resource("aws:lambda/function:Function", {"name": "g", "loggingConfig": {"logGroup": "/x/g"}})
    group = policy_resource("aws:cloudwatch/logGroup:LogGroup", {"name": "/x/g", "retentionInDays": 7})
    assert stack_violations(functions_have_log_retention, [custom, group]) == []


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_both_stacks_pass_every_policy_including_an_image_slot(program, stack):
    # (SnapStart off: dev's api has it, and Lambda has none for image slots)
    api = {"snapStart": False, "slots": {"green": {"package": "image"}}}
    run = program(stack, {"collections:services": {"api": api}})
    by_urn: dict[str, PolicyResource] = {}
    for resource in run.resources.values():
        if resource.custom:
            by_urn[resource.urn] = policy_resource(resource.type, dict(resource.inputs), resource.name)
    for urn, resource in run.resources.items():
        if urn in by_urn:
            by_urn[urn].property_dependencies = {
                prop: [by_urn[u] for u in urns if u in by_urn] for prop, urns in resource.property_dependencies.items()}
    resources = list(by_urn.values())
    assert any(r.props.get("packageType") == "Image" for r in resources)
    found: list[str] = []
    for policy in POLICIES:
        if isinstance(policy, StackValidationPolicy):
            policy.validate(StackValidationArgs(resources), lambda message, urn=None: found.append(message))
        else:
            for r in resources:
                args = ResourceValidationArgs(r.resource_type, r.props, r.urn, r.name, r.opts, None)
                policy.validate(args, lambda message, urn=None: found.append(message))
    assert found == []


# --- buckets-never-public -----------------------------------------------------------------------
def _policy_document(*statements: dict) -> str:
    import json

    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


CLOUDFRONT_READ = {
    "Sid": "CloudFrontReadsTheApp", "Effect": "Allow", "Principal": {"Service": "cloudfront.amazonaws.com"},
    "Action": "s3:GetObject", "Resource": "arn:aws:s3:::app/*",
    "Condition": {"StringEquals": {"AWS:SourceArn": "arn:aws:cloudfront::123456789012:distribution/E1"}},
}
DENY_PLAIN_HTTP = {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                   "Resource": ["arn:aws:s3:::app", "arn:aws:s3:::app/*"],
                   "Condition": {"Bool": {"aws:SecureTransport": "false"}}}


def test_a_policy_for_cloudfront_only_and_a_deny_for_everyone_pass():
    from infra.policies.rules import buckets_never_public

    props = {"bucket": "app", "policy": _policy_document(CLOUDFRONT_READ, DENY_PLAIN_HTTP)}
    assert violations_of(buckets_never_public, "aws:s3/bucketPolicy:BucketPolicy", props) == []


@pytest.mark.parametrize("principal", ["*", {"AWS": "*"}, {"AWS": ["arn:aws:iam::123456789012:root", "*"]}])
def test_a_policy_allowing_everyone_is_refused(principal):
    from infra.policies.rules import buckets_never_public

    public = {"Sid": "Website", "Effect": "Allow", "Principal": principal, "Action": "s3:GetObject",
              "Resource": "arn:aws:s3:::app/*"}
    found = violations_of(buckets_never_public, "aws:s3/bucketPolicy:BucketPolicy",
                          {"bucket": "app", "policy": _policy_document(CLOUDFRONT_READ, public)})
    assert len(found) == 1 and "Website" in found[0] and "allows everyone" in found[0]


def test_a_not_principal_allow_is_refused():
    from infra.policies.rules import buckets_never_public

    statement = {"Effect": "Allow", "NotPrincipal": {"AWS": "arn:aws:iam::123456789012:root"},
                 "Action": "s3:GetObject", "Resource": "arn:aws:s3:::app/*"}
    assert violations_of(buckets_never_public, "aws:s3/bucketPolicy:BucketPolicy",
                         {"policy": _policy_document(statement)})


@pytest.mark.parametrize(("resource_type", "props"), [
    ("aws:s3/bucket:Bucket", {"acl": "public-read"}),
    ("aws:s3/bucketAclV2:BucketAclV2", {"acl": "public-read-write"}),
    ("aws:s3/bucketAclV2:BucketAclV2", {"accessControlPolicy": {"grants": [
        {"grantee": {"type": "Group", "uri": "http://acs.amazonaws.com/groups/global/AllUsers"},
         "permission": "READ"}], "owner": {"id": "x"}}}),
])
def test_public_acls_are_refused(resource_type, props):
    from infra.policies.rules import buckets_never_public

    assert violations_of(buckets_never_public, resource_type, props)


def test_private_acls_pass():
    from infra.policies.rules import buckets_never_public

    assert violations_of(buckets_never_public, "aws:s3/bucketAclV2:BucketAclV2", {"acl": "private"}) == []
    assert violations_of(buckets_never_public, "aws:s3/bucket:Bucket", {"bucket": "x"}) == []
