"""The web app on AWS: a private bucket behind CloudFront (origin access control), the HTTP API behind
the same distribution, security headers, the app's files and its config.json.

- The bucket is never public: public access blocked, objects owned by the bucket owner, and the
  only grant is s3:GetObject to this distribution (service principal + AWS:SourceArn), as AWS's
  OAC guide prescribes.
- The API is served from the same origin, at the paths of the catalog's routes (so no CORS and no
  preflight for the app): CachingDisabled plus AllViewerExceptHostHeader, which forwards the
  Authorization header when caching is off and keeps API Gateway's own Host (AWS re:Post
  "cloudfront-authorization-header"; a forwarded viewer Host makes API Gateway answer 403).
- A response headers policy adds the CSP (only the app, the bucket's presigned URLs and the Cognito
  domain), HSTS, nosniff, frame denial and the referrer policy: the values of services.web.site, the
  same the dev server sends.
- config.json names the API as the app's own origin and Cognito's hosted UI (code flow + PKCE).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from services import catalog
from services.web import site

# AWS managed policies (ids are fixed by AWS: docs "Use managed cache policies" and "Use managed
# origin request policies").
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST_HEADER = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
APP_ORIGIN_ID = "app"
API_ORIGIN_ID = "api"
ALL_METHODS = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]
# Files have stable names (no build step): browsers revalidate (a 304 when unchanged) and CloudFront
# holds them for at most CachingOptimized's 1 s minimum, so a deploy is live at once.
CACHE_CONTROL = "no-cache"


def api_path_patterns(routes: Iterable[catalog.Route]) -> list[str]:
    """CloudFront path patterns covering every API route: `/items/{id}/retry` → `/items/*`, `/items`."""
    patterns: list[str] = []
    for route in routes:
        first = route.path.strip("/").split("/")[0]
        if not first or first.startswith("{"):
            raise ValueError(f"route {route.route_key}: the app cannot share its origin with a route at the root")
        exact, nested = f"/{first}", f"/{first}/*"
        wanted = [exact] if route.path == exact else [nested]
        patterns += [p for p in wanted if p not in patterns]
    return sorted(patterns)


def check_no_collision(patterns: Iterable[str], files: Iterable[str]) -> None:
    """An app file under an API path would never be served: refuse it at preview time."""
    for name in files:
        path = f"/{name}"
        for pattern in patterns:
            if path == pattern or (pattern.endswith("/*") and path.startswith(pattern[:-1])):
                raise ValueError(f"app file {name!r} is shadowed by the API path {pattern!r}")


@dataclass
class WebAppArgs:
    api_endpoint: pulumi.Input[str]  # https://{id}.execute-api.{region}.amazonaws.com
    api_routes: tuple[catalog.Route, ...]
    storage_bucket: pulumi.Input[str]  # the uploads bucket the browser POSTs to and GETs from
    region: str
    auth_domain_url: pulumi.Input[str]  # https://{prefix}.auth.{region}.amazoncognito.com
    client_id: pulumi.Input[str]
    max_upload_bytes: int
    categories: tuple[str, ...]
    force_destroy: bool
    tags: dict[str, str]


class WebApp(pulumi.ComponentResource):
    def __init__(self, name: str, args: WebAppArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("collections:web:WebApp", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        files = site.app_files()
        patterns = api_path_patterns(args.api_routes)
        check_no_collision(patterns, [*files, site.CONFIG_FILE])

        self.bucket = aws.s3.Bucket(f"{name}-bucket", force_destroy=args.force_destroy, tags=args.tags, opts=child)
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership", bucket=self.bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"), opts=child,
        )
        self.public_access_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access", bucket=self.bucket.id, block_public_acls=True, block_public_policy=True,
            ignore_public_acls=True, restrict_public_buckets=True, opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption", bucket=self.bucket.id,
            rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.
                BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="AES256"),  # SSE-KMS would need a key policy for CloudFront
            )],
            opts=child,
        )
        access = aws.cloudfront.OriginAccessControl(
            f"{name}-oac", name=f"{name}-oac", description="CloudFront reads the web app's bucket",
            origin_access_control_origin_type="s3", signing_behavior="always", signing_protocol="sigv4", opts=child,
        )

        csp = pulumi.Output.all(args.storage_bucket, args.auth_domain_url).apply(
            lambda values: site.content_security_policy(
                api_origins=[],  # same origin: 'self'
                storage_origins=site.storage_origins_on_aws(values[0], args.region),
                auth_origins=[site.origin(values[1])],
            )
        )
        self.headers_policy = aws.cloudfront.ResponseHeadersPolicy(
            f"{name}-headers", name=f"{name}-security-headers",
            comment="Collections web app: CSP, HSTS, nosniff, frame denial, referrer policy",
            security_headers_config=aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigArgs(
                content_security_policy=aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigContentSecurityPolicyArgs(
                    content_security_policy=csp, override=True),
                strict_transport_security=aws.cloudfront.
                ResponseHeadersPolicySecurityHeadersConfigStrictTransportSecurityArgs(
                    access_control_max_age_sec=site.HSTS_MAX_AGE_S, include_subdomains=True, override=True),
                content_type_options=aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigContentTypeOptionsArgs(
                    override=True),
                frame_options=aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigFrameOptionsArgs(
                    frame_option=site.FRAME_OPTIONS, override=True),
                referrer_policy=aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigReferrerPolicyArgs(
                    referrer_policy=site.REFERRER_POLICY, override=True),
            ),
            opts=child,
        )

        api_domain = pulumi.Output.from_input(args.api_endpoint).apply(lambda url: url.split("://", 1)[-1].rstrip("/"))
        self.distribution = aws.cloudfront.Distribution(
            f"{name}-cdn",
            enabled=True,
            is_ipv6_enabled=True,
            http_version="http2and3",
            price_class="PriceClass_100",
            default_root_object=site.INDEX_FILE,
            comment=f"{name}: web app and API",
            origins=[
                aws.cloudfront.DistributionOriginArgs(
                    origin_id=APP_ORIGIN_ID, domain_name=self.bucket.bucket_regional_domain_name,
                    origin_access_control_id=access.id,
                ),
                aws.cloudfront.DistributionOriginArgs(
                    origin_id=API_ORIGIN_ID, domain_name=api_domain,
                    custom_origin_config=aws.cloudfront.DistributionOriginCustomOriginConfigArgs(
                        http_port=80, https_port=443, origin_protocol_policy="https-only",
                        origin_ssl_protocols=["TLSv1.2"],
                    ),
                ),
            ],
            default_cache_behavior=aws.cloudfront.DistributionDefaultCacheBehaviorArgs(
                target_origin_id=APP_ORIGIN_ID, viewer_protocol_policy="redirect-to-https",
                allowed_methods=["GET", "HEAD"], cached_methods=["GET", "HEAD"], compress=True,
                cache_policy_id=CACHING_OPTIMIZED, response_headers_policy_id=self.headers_policy.id,
            ),
            ordered_cache_behaviors=[
                aws.cloudfront.DistributionOrderedCacheBehaviorArgs(
                    path_pattern=pattern, target_origin_id=API_ORIGIN_ID, viewer_protocol_policy="https-only",
                    allowed_methods=ALL_METHODS, cached_methods=["GET", "HEAD"], compress=True,
                    cache_policy_id=CACHING_DISABLED, origin_request_policy_id=ALL_VIEWER_EXCEPT_HOST_HEADER,
                    response_headers_policy_id=self.headers_policy.id,
                )
                for pattern in patterns
            ],
            restrictions=aws.cloudfront.DistributionRestrictionsArgs(
                geo_restriction=aws.cloudfront.DistributionRestrictionsGeoRestrictionArgs(restriction_type="none")),
            viewer_certificate=aws.cloudfront.DistributionViewerCertificateArgs(cloudfront_default_certificate=True),
            tags=args.tags,
            opts=child,
        )

        aws.s3.BucketPolicy(
            f"{name}-policy", bucket=self.bucket.id,
            policy=pulumi.Output.all(self.bucket.arn, self.distribution.arn).apply(
                lambda values: json.dumps(bucket_policy(values[0], values[1]))),
            # After the block exists: a policy never lands on a bucket that could make it public.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.public_access_block]),
        )

        self.url = pulumi.Output.concat("https://", self.distribution.domain_name)
        for key, path in files.items():
            aws.s3.BucketObjectv2(
                f"{name}-file-{key.replace('/', '-')}", bucket=self.bucket.id, key=key,
                source=pulumi.FileAsset(str(path)), content_type=site.content_type(path),
                cache_control=CACHE_CONTROL,
                # The asset's content decides updates; the hash also makes a content change visible
                # to the plan classifier (infra/plan.py compares inputs).
                source_hash=hashlib.sha256(path.read_bytes()).hexdigest(),
                opts=child,
            )
        config = pulumi.Output.all(args.auth_domain_url, args.client_id).apply(
            lambda values: json.dumps(site.app_config(
                api_url="",  # the API answers on the app's own origin
                auth=site.hosted_auth(domain_url=values[0], client_id=values[1]),
                max_upload_bytes=args.max_upload_bytes,
                categories=args.categories,
            ), indent=1)
        )
        aws.s3.BucketObjectv2(
            f"{name}-file-config", bucket=self.bucket.id, key=site.CONFIG_FILE, content=config,
            content_type=site.content_type(site.CONFIG_FILE), cache_control=CACHE_CONTROL, opts=child,
        )
        self.register_outputs({"url": self.url, "bucket": self.bucket.bucket,
                               "distribution_id": self.distribution.id})


def bucket_policy(bucket_arn: str, distribution_arn: str) -> Mapping:
    """Only this distribution may read the app's objects (OAC), and only over TLS."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "CloudFrontReadsTheApp", "Effect": "Allow",
                "Principal": {"Service": "cloudfront.amazonaws.com"},
                "Action": "s3:GetObject", "Resource": f"{bucket_arn}/*",
                "Condition": {"StringEquals": {"AWS:SourceArn": distribution_arn}},
            },
            {
                "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ],
    }
