"""moto's AWS server on 127.0.0.1 and the resources the Pulumi program makes on AWS, made on moto.

The same boto3 code reaches it through AWS_ENDPOINT_URL. Used by `make dev` and the tests.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.core.settings import Settings

# moto accepts any credentials; setting them keeps boto3 from looking for real ones.
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}
DEMO_PASSWORD = "Collections-demo-1"


@dataclass
class MotoServer:
    endpoint_url: str
    _server: Any

    def stop(self) -> None:
        self._server.stop()


def start_moto(port: int = 0) -> MotoServer:
    """moto's server in a background thread (port 0: any free port)."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    for key, value in FAKE_CREDENTIALS.items():
        os.environ.setdefault(key, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound = server.get_host_and_port()
    return MotoServer(endpoint_url=f"http://{host}:{bound}", _server=server)


def _boto(service: str, settings: Settings) -> Any:
    import boto3

    return boto3.client(service, region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url)


def ensure_bucket(settings: Settings, cors_origins: Sequence[str] = ("*",)) -> None:
    """The bucket as on AWS: EventBridge notifications on (S3 'Object Created' reaches the default
    bus) and CORS for browser uploads through presigned POST: the rules the Pulumi program sets
    (services.web.site.bucket_cors_rules), for the web app's origin under `make dev`."""
    from services.web.site import bucket_cors_rules

    s3 = _boto("s3", settings)
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if settings.bucket not in existing:
        kwargs: dict[str, Any] = {"Bucket": settings.bucket}
        if settings.aws_region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": settings.aws_region}
        s3.create_bucket(**kwargs)
    s3.put_bucket_notification_configuration(
        Bucket=settings.bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    s3.put_bucket_cors(Bucket=settings.bucket, CORSConfiguration={"CORSRules": bucket_cors_rules(cors_origins)})


def ensure_event_bus(settings: Settings) -> str:
    events = _boto("events", settings)
    try:
        return events.describe_event_bus(Name=settings.event_bus)["Arn"]
    except events.exceptions.ResourceNotFoundException:
        return events.create_event_bus(Name=settings.event_bus)["EventBusArn"]


@dataclass(frozen=True)
class CognitoApp:
    user_pool_id: str
    client_id: str


def ensure_cognito(settings: Settings, pool_name: str = "collections-local") -> CognitoApp:
    """A user pool with email sign-in and an app client without secret, found by name if present."""
    idp = _boto("cognito-idp", settings)
    pool_id = next(
        (p["Id"] for p in idp.list_user_pools(MaxResults=60)["UserPools"] if p["Name"] == pool_name), None
    )
    if pool_id is None:
        pool_id = idp.create_user_pool(
            PoolName=pool_name,
            UsernameAttributes=["email"],
            AutoVerifiedAttributes=["email"],
            Policies={"PasswordPolicy": {"MinimumLength": 12, "RequireNumbers": True}},
        )["UserPool"]["Id"]
    clients = idp.list_user_pool_clients(UserPoolId=pool_id, MaxResults=60)["UserPoolClients"]
    client_id = next((c["ClientId"] for c in clients if c["ClientName"] == "collections-web"), None)
    if client_id is None:
        client_id = idp.create_user_pool_client(
            UserPoolId=pool_id,
            ClientName="collections-web",
            GenerateSecret=False,
            ExplicitAuthFlows=[
                "ALLOW_ADMIN_USER_PASSWORD_AUTH",
                "ALLOW_USER_PASSWORD_AUTH",
                "ALLOW_REFRESH_TOKEN_AUTH",
            ],
        )["UserPoolClient"]["ClientId"]
    return CognitoApp(user_pool_id=pool_id, client_id=client_id)


def ensure_user(settings: Settings, app: CognitoApp, username: str, password: str = DEMO_PASSWORD) -> str:
    """Create the user (confirmed, permanent password) if missing; returns its `sub`."""
    idp = _boto("cognito-idp", settings)
    try:
        user = idp.admin_get_user(UserPoolId=app.user_pool_id, Username=username)
    except idp.exceptions.UserNotFoundException:
        idp.admin_create_user(
            UserPoolId=app.user_pool_id,
            Username=username,
            UserAttributes=[{"Name": "email", "Value": username}, {"Name": "email_verified", "Value": "true"}],
            MessageAction="SUPPRESS",
        )
        idp.admin_set_user_password(UserPoolId=app.user_pool_id, Username=username, Password=password, Permanent=True)
        user = idp.admin_get_user(UserPoolId=app.user_pool_id, Username=username)
    attributes = {a["Name"]: a["Value"] for a in user.get("UserAttributes", [])}
    return attributes["sub"]


def access_token(settings: Settings, app: CognitoApp, username: str, password: str = DEMO_PASSWORD) -> str:
    """A fresh Cognito access token for the user, issued by moto (RS256, its JWKS)."""
    idp = _boto("cognito-idp", settings)
    result = idp.admin_initiate_auth(
        UserPoolId=app.user_pool_id,
        ClientId=app.client_id,
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": password},
    )
    return result["AuthenticationResult"]["AccessToken"]


def jwks_url(settings: Settings, app: CognitoApp) -> str:
    """Where moto serves the pool's JWKS (on AWS it is {issuer}/.well-known/jwks.json)."""
    return f"{settings.aws_endpoint_url}/{app.user_pool_id}/.well-known/jwks.json"
