"""The AI providers' API keys, from `pulumi config set --secret` into Secrets Manager."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass
class ApiKeysArgs:
    anthropic_api_key: pulumi.Output[str]
    voyage_api_key: pulumi.Output[str]
    tags: dict[str, str]


class ApiKeys(pulumi.ComponentResource):
    def __init__(self, name: str, args: ApiKeysArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("collections:secrets:ApiKeys", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.arns: dict[str, pulumi.Output[str]] = {}
        for provider, value in (("anthropic", args.anthropic_api_key), ("voyage", args.voyage_api_key)):
            secret = aws.secretsmanager.Secret(f"{name}-{provider}", description=f"{provider} API key",
                                               tags=args.tags, opts=child)
            # The plain key as SecretString: services.core.secrets.secret_string reads it as is.
            aws.secretsmanager.SecretVersion(f"{name}-{provider}", secret_id=secret.id,
                                             secret_string=pulumi.Output.secret(value), opts=child)
            self.arns[provider] = secret.arn
        self.register_outputs({"arns": self.arns})
