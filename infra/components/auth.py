"""Cognito: users sign in with e-mail; the SPA's app client has no secret (it cannot keep one).

With the web app, the pool gets a hosted UI domain and the client the authorization code flow
(PKCE is the browser's part) with the app's URL as its only callback and sign-out URL.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass
class AuthArgs:
    deletion_protection: bool
    tags: dict[str, str]
    region: str = ""
    app_url: pulumi.Input[str] | None = None  # https://… of the web app (callback and sign-out URL)


def domain_prefix(name: str, user_pool_id: str) -> str:
    """A hosted UI prefix unique per pool. Prefixes are global per region and must not contain
    "aws", "amazon" or "cognito": a hex digest of the pool id cannot spell any of them."""
    return f"{name}-{hashlib.sha256(user_pool_id.encode()).hexdigest()[:10]}"


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
        hosted_ui: dict = {}
        self.domain_url: pulumi.Output[str] | None = None
        if args.app_url is not None:
            domain = aws.cognito.UserPoolDomain(
                f"{name}-domain", user_pool_id=self.user_pool.id,
                domain=self.user_pool.id.apply(lambda pool_id: domain_prefix(name, pool_id)), opts=child,
            )
            self.domain_url = pulumi.Output.concat("https://", domain.domain, ".auth.", args.region,
                                                   ".amazoncognito.com")
            app_root = pulumi.Output.concat(args.app_url, "/")  # the app's redirect_uri, exactly
            hosted_ui = dict(
                allowed_oauth_flows_user_pool_client=True,
                allowed_oauth_flows=["code"],
                allowed_oauth_scopes=["openid", "email"],
                supported_identity_providers=["COGNITO"],
                callback_urls=[app_root],
                logout_urls=[app_root],
            )
        self.client = aws.cognito.UserPoolClient(
            f"{name}-web",
            user_pool_id=self.user_pool.id,
            generate_secret=False,  # a browser cannot keep a secret; the code flow uses PKCE instead
            explicit_auth_flows=["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
            prevent_user_existence_errors="ENABLED",
            **hosted_ui,
            opts=child,
        )
        self.register_outputs({"user_pool_id": self.user_pool.id, "client_id": self.client.id})
