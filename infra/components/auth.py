"""Cognito: users sign in with e-mail; the SPA's app client has no secret (it cannot keep one).

With the web app, the pool gets a hosted UI domain and the client the authorization code flow
(PKCE is the browser's part) with the app's URL as its only callback and sign-out URL.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass
class AuthArgs:
    deletion_protection: bool
    tags: dict[str, str]
    region: str = ""
    app_url: pulumi.Input[str] | None = None  # https://… of the web app (callback and sign-out URL)


# Cognito's rules for a prefix domain (API reference, CreateUserPoolDomain "Domain": pattern
# ^[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?$, 1-63 characters; developer guide "Using the Amazon Cognito
# domain": the prefix cannot contain the reserved words aws, amazon or cognito).
DOMAIN_PREFIX_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?")
RESERVED_IN_DOMAIN_PREFIX = ("aws", "amazon", "cognito")


class InvalidDomainPrefix(ValueError):
    pass


def domain_prefix(name: str, user_pool_id: str) -> str:
    """A hosted UI prefix unique per pool. Prefixes are global per region; a hex digest of the pool id
    cannot spell a reserved word, but the stack's name can break Cognito's rules: refuse it at preview
    time instead of failing the deployment (an unknown case is an error)."""
    prefix = f"{name}-{hashlib.sha256(user_pool_id.encode()).hexdigest()[:10]}"
    if not DOMAIN_PREFIX_PATTERN.fullmatch(prefix):
        raise InvalidDomainPrefix(
            f"Cognito domain prefix {prefix!r} must be 1-63 lowercase letters, digits and inner hyphens; "
            f"rename the stack so {name!r} fits"
        )
    reserved = [word for word in RESERVED_IN_DOMAIN_PREFIX if word in prefix]
    if reserved:
        raise InvalidDomainPrefix(f"Cognito domain prefix {prefix!r} contains the reserved word {reserved[0]!r}")
    return prefix


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
            domain_prefix(name, "")  # the rules hinge on the name alone: fail at preview, not at `up`
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
                # Sign-out revokes the refresh token at /oauth2/revoke: on by default for new clients
                # (Cognito guide, "Ending user sessions with token revocation"); said here, not assumed.
                enable_token_revocation=True,
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
