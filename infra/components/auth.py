"""Cognito: users sign in with e-mail; the SPA's app client has no secret (it cannot keep one)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass
class AuthArgs:
    deletion_protection: bool
    tags: dict[str, str]


class Auth(pulumi.ComponentResource):
    def __init__(self, name: str, args: AuthArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("collections:auth:Auth", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.user_pool = aws.cognito.UserPool(
            f"{name}-users",
            username_attributes=["email"],
            auto_verified_attributes=["email"],
            password_policy=aws.cognito.UserPoolPasswordPolicyArgs(
                minimum_length=12, require_lowercase=True, require_uppercase=True, require_numbers=True,
                require_symbols=False, temporary_password_validity_days=3,
            ),
            account_recovery_setting=aws.cognito.UserPoolAccountRecoverySettingArgs(
                recovery_mechanisms=[aws.cognito.UserPoolAccountRecoverySettingRecoveryMechanismArgs(
                    name="verified_email", priority=1)],
            ),
            deletion_protection="ACTIVE" if args.deletion_protection else "INACTIVE",
            tags=args.tags,
            opts=child,
        )
        self.client = aws.cognito.UserPoolClient(
            f"{name}-web",
            user_pool_id=self.user_pool.id,
            generate_secret=False,
            explicit_auth_flows=["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
            prevent_user_existence_errors="ENABLED",
            opts=child,
        )
        self.register_outputs({"user_pool_id": self.user_pool.id, "client_id": self.client.id})
