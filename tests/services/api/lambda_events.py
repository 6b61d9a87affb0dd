"""API Gateway HTTP API (payload format 2.0) events, as Lambda receives them, for tests and the benchmark."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode


def http_api_event(
    method: str,
    path: str,
    *,
    route_key: str | None = None,
    query: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    body: Any = None,
    claims: dict[str, str] | None = None,
    path_parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    query = query or {}
    raw_query = urlencode(query, doseq=True)
    all_headers = {"host": "api.example.com", "user-agent": "pytest", "x-forwarded-proto": "https", **(headers or {})}
    if body is not None and not isinstance(body, str):
        body = json.dumps(body)
        all_headers.setdefault("content-type", "application/json")
    request_context: dict[str, Any] = {
        "accountId": "123456789012",
        "apiId": "api",
        "domainName": "api.example.com",
        "domainPrefix": "api",
        "http": {
            "method": method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": "203.0.113.9",
            "userAgent": "pytest",
        },
        "requestId": uuid.uuid4().hex,
        "routeKey": route_key or f"{method} {path}",
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
        "timeEpoch": int(time.time() * 1000),
    }
    if claims is not None:
        # API Gateway hands every claim over as a string.
        request_context["authorizer"] = {"jwt": {"claims": {k: str(v) for k, v in claims.items()}, "scopes": None}}
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key or f"{method} {path}",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": all_headers,
        "requestContext": request_context,
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = {
            k: ",".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in query.items()
        }
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body is not None:
        event["body"] = body
    return event


def access_claims(sub: str, client_id: str) -> dict[str, str]:
    now = int(time.time())
    return {
        "sub": sub,
        "client_id": client_id,
        "token_use": "access",
        "username": sub,
        "iss": "https://cognito-idp.us-east-1.amazonaws.com/pool",
        "exp": str(now + 3600),
        "iat": str(now),
        "scope": "aws.cognito.signin.user.admin",
    }


class LambdaContext:
    function_name = "collections-test-api-blue"
    function_version = "1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:collections-test-api-blue:live"
    memory_limit_in_mb = 1024
    aws_request_id = "req"
    log_group_name = "/aws/lambda/collections-test-api-blue"
    log_stream_name = "stream"

    def get_remaining_time_in_millis(self) -> int:
        return 15_000
