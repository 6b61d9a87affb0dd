"""The HTTP API: API Gateway v2 in front of the api service's active `live` alias.

Routes come from the catalog (API_ROUTES); `authorized=False` routes skip the Cognito JWT
authorizer. The integration targets the alias's invoke ARN, so a slot flip is an in-place update of
`integration_uri`, and the permission it needs is created (per slot) before the integration moves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.lambda_service import LambdaService
from infra.config import ALIAS_NAME, ApiConfig
from services import catalog

ACCESS_LOG_FORMAT = json.dumps({
    "requestId": "$context.requestId", "ip": "$context.identity.sourceIp", "method": "$context.httpMethod",
    "route": "$context.routeKey", "status": "$context.status", "latencyMs": "$context.responseLatency",
    "integrationLatencyMs": "$context.integrationLatency", "integrationError": "$context.integrationErrorMessage",
    "sub": "$context.authorizer.claims.sub", "time": "$context.requestTime",
})


@dataclass
class HttpApiArgs:
    service: LambdaService
    routes: tuple[catalog.Route, ...]
    config: ApiConfig
    user_pool_id: pulumi.Input[str]
    client_id: pulumi.Input[str]
    region: str
    log_retention_days: int
    tags: dict[str, str]


class HttpApi(pulumi.ComponentResource):
    def __init__(self, name: str, args: HttpApiArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("collections:http:HttpApi", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        service = args.service
        self.api = aws.apigatewayv2.Api(
            f"{name}-api", protocol_type="HTTP",
            cors_configuration=aws.apigatewayv2.ApiCorsConfigurationArgs(
                allow_origins=list(args.config.cors_origins),
                allow_methods=sorted({r.method for r in args.routes} | {"OPTIONS"}),
                allow_headers=["authorization", "content-type"],
                max_age=3600,
            ),
            tags=args.tags, opts=child,
        )
        self.authorizer = aws.apigatewayv2.Authorizer(
            f"{name}-cognito", api_id=self.api.id, authorizer_type="JWT", name="cognito",
            identity_sources=["$request.header.Authorization"],
            jwt_configuration=aws.apigatewayv2.AuthorizerJwtConfigurationArgs(
                audiences=[args.client_id],
                issuer=pulumi.Output.concat("https://cognito-idp.", args.region, ".amazonaws.com/",
                                            args.user_pool_id),
            ),
            opts=child,
        )
        # Named by slot: a flip creates the new slot's permission and deletes the old one after
        # every update (Pulumi deletes last), so the alias is never called without a grant.
        self.permission = aws.lambda_.Permission(
            f"{name}-invoke-{service.active_slot}",
            action="lambda:InvokeFunction", principal="apigateway.amazonaws.com",
            function=service.function_name, qualifier=ALIAS_NAME,
            source_arn=self.api.execution_arn.apply(lambda arn: f"{arn}/*/*"),
            opts=child,
        )
        self.integration = aws.apigatewayv2.Integration(
            f"{name}-lambda", api_id=self.api.id, integration_type="AWS_PROXY", integration_method="POST",
            integration_uri=service.invoke_arn, payload_format_version="2.0",
            timeout_milliseconds=min(30_000, service.service.timeout_s * 1000),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.permission]),
        )
        target = self.integration.id.apply(lambda integration_id: f"integrations/{integration_id}")
        self.routes: dict[str, aws.apigatewayv2.Route] = {}
        for route in args.routes:
            self.routes[route.route_key] = aws.apigatewayv2.Route(
                f"{name}-{route.method.lower()}{route.path.replace('/', '-').replace('{', '').replace('}', '')}",
                api_id=self.api.id, route_key=route.route_key, target=target,
                authorization_type="JWT" if route.authorized else "NONE",
                authorizer_id=self.authorizer.id if route.authorized else None,
                opts=child,
            )
        access_logs = aws.cloudwatch.LogGroup(f"{name}-access", retention_in_days=args.log_retention_days,
                                              tags=args.tags, opts=child)
        self.stage = aws.apigatewayv2.Stage(
            f"{name}-default", api_id=self.api.id, name="$default", auto_deploy=True,
            access_log_settings=aws.apigatewayv2.StageAccessLogSettingsArgs(
                destination_arn=access_logs.arn, format=ACCESS_LOG_FORMAT),
            default_route_settings=aws.apigatewayv2.StageDefaultRouteSettingsArgs(
                throttling_rate_limit=args.config.throttle_rate_limit,
                throttling_burst_limit=args.config.throttle_burst_limit,
                detailed_metrics_enabled=True,
            ),
            tags=args.tags, opts=pulumi.ResourceOptions(parent=self, depends_on=list(self.routes.values())),
        )
        self.url = self.api.api_endpoint
        self.register_outputs({"url": self.url, "api_id": self.api.id})
