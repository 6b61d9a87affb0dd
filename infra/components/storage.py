"""The uploads/thumbnails bucket: private, encrypted, TLS-only, CORS for browsers' presigned POSTs,
and EventBridge notifications on (the image processor's trigger)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from services.web.site import bucket_cors_rules


@dataclass
class StorageArgs:
    cors_origins: pulumi.Input[Sequence[str]]  # the web app's origin and the stack's api.corsOrigins
    force_destroy: bool
    tags: dict[str, str]


class Storage(pulumi.ComponentResource):
    def __init__(self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("collections:storage:Storage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.bucket = aws.s3.Bucket(f"{name}-bucket", force_destroy=args.force_destroy, tags=args.tags, opts=child)
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership", bucket=self.bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"), opts=child,
        )
        aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access", bucket=self.bucket.id, block_public_acls=True, block_public_policy=True,
            ignore_public_acls=True, restrict_public_buckets=True, opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption", bucket=self.bucket.id,
            rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.
                BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="AES256"),
                bucket_key_enabled=True,
            )],
            opts=child,
        )
        # Browsers POST originals straight to S3 (presigned POST) and GET thumbnails (presigned GET):
        # the rules moto's bucket gets under `make dev` too (services.web.site.bucket_cors_rules).
        aws.s3.BucketCorsConfiguration(
            f"{name}-cors", bucket=self.bucket.id,
            cors_rules=pulumi.Output.from_input(args.cors_origins).apply(lambda origins: [
                aws.s3.BucketCorsConfigurationCorsRuleArgs(
                    allowed_methods=rule["AllowedMethods"], allowed_origins=rule["AllowedOrigins"],
                    allowed_headers=rule["AllowedHeaders"], expose_headers=rule["ExposeHeaders"],
                    max_age_seconds=rule["MaxAgeSeconds"],
                )
                for rule in bucket_cors_rules(origins)
            ]),
            opts=child,
        )
        aws.s3.BucketPolicy(
            f"{name}-tls-only", bucket=self.bucket.id,
            policy=self.bucket.arn.apply(lambda arn: json.dumps({
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                    "Resource": [arn, f"{arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }],
            })),
            opts=child,
        )
        # "Object Created" events go to the default bus, where the image processor's rule waits.
        aws.s3.BucketNotification(f"{name}-eventbridge", bucket=self.bucket.id, eventbridge=True, opts=child)
        self.register_outputs({"bucket": self.bucket.bucket, "bucket_arn": self.bucket.arn})
