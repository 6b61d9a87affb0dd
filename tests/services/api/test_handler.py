"""The Lambda handler: payload 2.0 events through Mangum give the same answers as the ASGI app,
with the caller taken from API Gateway's JWT authorizer claims (auth_mode=apigateway)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from services.core.settings import get_settings
from tests.services.api.conftest import axis_vector
from tests.services.api.lambda_events import LambdaContext, access_claims, http_api_event


@pytest.fixture
def apigateway_mode(monkeypatch, cognito):
    monkeypatch.setenv("COLLECTIONS_AUTH_MODE", "apigateway")
    get_settings.cache_clear()
    yield
    monkeypatch.setenv("COLLECTIONS_AUTH_MODE", "jwks")
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def lambda_handler(cognito):
    from services.api.handler import handler

    return handler


@pytest.fixture(scope="module")
def items_of_alice(alice, make_item):
    return [
        make_item(alice.sub, embedding=axis_vector(1.0, 0.1 * n), category="c" if n % 2 else "d", title=f"t{n}")
        for n in range(5)
    ]


def _invoke(handler, event) -> tuple[int, dict | None, dict]:
    response = handler(event, LambdaContext())
    body = json.loads(response["body"]) if response.get("body") else None
    return response["statusCode"], body, response.get("headers") or {}


@pytest.mark.parametrize(
    "method, path, query, body",
    [
        ("GET", "/items", {"limit": 2}, None),
        ("GET", "/items", {"category": "c", "tag": ["x", "y"]}, None),
        ("GET", "/search", {"q": "t1", "k": 3}, None),
        ("GET", "/search", {"q": "t1", "k": 3, "category": "d"}, None),
        ("GET", "/items/not-a-uuid", None, None),
        ("GET", "/items", {"limit": 1000}, None),
        ("PATCH", "/items/{first}", None, {"unknown": 1}),
    ],
)
def test_handler_answers_like_the_asgi_app(
    client, alice, cognito, items_of_alice, lambda_handler, monkeypatch, method, path, query, body
):
    path = path.replace("{first}", str(items_of_alice[0]))
    # The ASGI app verifies Alice's real token (jwks mode)...
    direct = client.request(method, path, params=query, json=body, headers=alice.headers)
    # ...the Lambda handler trusts API Gateway's claims for her (apigateway mode).
    monkeypatch.setenv("COLLECTIONS_AUTH_MODE", "apigateway")
    get_settings.cache_clear()
    try:
        event = http_api_event(
            method,
            path,
            query=query,
            body=body,
            claims=access_claims(alice.sub, cognito.client_id),
            headers=alice.headers,
        )
        status, lambda_body, headers = _invoke(lambda_handler, event)
    finally:
        monkeypatch.setenv("COLLECTIONS_AUTH_MODE", "jwks")
        get_settings.cache_clear()
    assert status == direct.status_code
    assert headers["content-type"] == "application/json"
    assert _without_signatures(lambda_body) == _without_signatures(direct.json())


def _without_signatures(body):
    """Presigned URLs differ by their signing second; everything else must match."""
    if isinstance(body, dict):
        return {
            k: (v.split("?")[0] if k.endswith("_url") and isinstance(v, str) else _without_signatures(v))
            for k, v in body.items()
        }
    if isinstance(body, list):
        return [_without_signatures(v) for v in body]
    return body


def test_handler_lists_only_the_claimed_users_items(
    alice, bob, cognito, items_of_alice, lambda_handler, apigateway_mode
):
    as_alice = _invoke(
        lambda_handler,
        http_api_event(
            "GET",
            "/items",
            query={"limit": 100},
            claims=access_claims(alice.sub, cognito.client_id),
            headers=alice.headers,
        ),
    )
    as_bob = _invoke(
        lambda_handler,
        http_api_event(
            "GET", "/items", query={"limit": 100}, claims=access_claims(bob.sub, cognito.client_id), headers=bob.headers
        ),
    )
    ids = {str(i) for i in items_of_alice}
    assert ids <= {i["id"] for i in as_alice[1]["items"]}
    assert not ids & {i["id"] for i in as_bob[1]["items"]}


def test_handler_posts_json_bodies(alice, cognito, lambda_handler, apigateway_mode):
    event = http_api_event(
        "POST",
        "/uploads",
        body={"filename": "a.png", "content_type": "image/png"},
        claims=access_claims(alice.sub, cognito.client_id),
        headers=alice.headers,
    )
    status, body, _ = _invoke(lambda_handler, event)
    assert status == 201 and body["upload"]["key"].startswith(f"uploads/{alice.sub}/")


@pytest.mark.parametrize(
    "claims, message",
    [
        (None, "no authorizer claims"),
        ({"token_use": "id"}, "access token is required"),
        ({"client_id": "someone-elses-client"}, "another app client"),
    ],
)
def test_handler_checks_authorizer_claims(alice, cognito, lambda_handler, apigateway_mode, claims, message):
    full = None if claims is None else {**access_claims(alice.sub, cognito.client_id), **claims}
    status, body, headers = _invoke(lambda_handler, http_api_event("GET", "/items", claims=full, headers=alice.headers))
    assert status == 401 and message in body["error"]["message"]


# --- an invoker writing claims into the event cannot become another user --------------------------
def test_claims_for_another_user_with_ones_own_token_are_refused(alice, bob, cognito, lambda_handler, apigateway_mode):
    event = http_api_event("GET", "/items", claims=access_claims(bob.sub, cognito.client_id), headers=alice.headers)
    status, body, _ = _invoke(lambda_handler, event)
    assert status == 401 and "name different users" in body["error"]["message"]


def test_claims_without_the_forwarded_token_are_refused(bob, cognito, lambda_handler, apigateway_mode):
    status, body, _ = _invoke(
        lambda_handler, http_api_event("GET", "/items", claims=access_claims(bob.sub, cognito.client_id))
    )
    assert status == 401 and "missing bearer token" in body["error"]["message"]


def test_claims_with_a_self_signed_token_are_refused(bob, cognito, sign, lambda_handler, apigateway_mode):
    from cryptography.hazmat.primitives.asymmetric import rsa

    own_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = sign(signing_key=own_key, sub=bob.sub, username=bob.sub)  # right claims, wrong signer
    event = http_api_event(
        "GET", "/items", claims=access_claims(bob.sub, cognito.client_id), headers={"Authorization": f"Bearer {forged}"}
    )
    status, body, _ = _invoke(lambda_handler, event)
    assert status == 401 and "signature is invalid" in body["error"]["message"]


def _unsigned_variant(token: str, alg: str, secret: bytes | None) -> str:
    """The same header (but `alg`) and claims, signed with HMAC over `secret`, or not at all (none)."""
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header_b64, payload_b64, _ = token.split(".")
    header = json.loads(base64.urlsafe_b64decode(header_b64 + "=="))
    signing_input = f"{b64(json.dumps({**header, 'alg': alg}).encode())}.{payload_b64}"
    signature = b"" if secret is None else hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def _public_pem() -> bytes:
    import jwt
    from cryptography.hazmat.primitives import serialization

    from tests.services.api.conftest import moto_private_jwk

    public = jwt.PyJWK.from_dict(moto_private_jwk()).key.public_key()
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize(
    "variant, message",
    [
        ("expired", "expired"),
        ("id token", "access token is required"),
        ("another client", "another app client"),
        ("another pool", "another user pool"),
        ("alg none", "algorithm must be one of RS256"),
        ("HS256 keyed with the public key", "algorithm must be one of RS256"),
    ],
)
def test_claims_with_a_token_of_the_same_user_that_fails_verification_are_refused(
    bob, cognito, sign, lambda_handler, apigateway_mode, variant, message
):
    """Whoever writes the authorizer's claims into an event (any principal that may invoke the
    function) and holds some token naming that user still needs one that verifies in full."""
    import time

    now = int(time.time())
    own = sign(sub=bob.sub, username=bob.sub)
    token = {
        "expired": lambda: sign(sub=bob.sub, iat=now - 7200, auth_time=now - 7200, exp=now - 3600),
        "id token": lambda: sign(sub=bob.sub, token_use="id", client_id=None, aud=cognito.client_id),
        "another client": lambda: sign(sub=bob.sub, client_id="someone-elses-client"),
        "another pool": lambda: sign(sub=bob.sub, iss=cognito.issuer + "x"),
        "alg none": lambda: _unsigned_variant(own, "none", None),
        "HS256 keyed with the public key": lambda: _unsigned_variant(own, "HS256", _public_pem()),
    }[variant]()
    event = http_api_event(
        "GET", "/items", claims=access_claims(bob.sub, cognito.client_id), headers={"Authorization": f"Bearer {token}"}
    )
    status, body, _ = _invoke(lambda_handler, event)
    assert status == 401 and message in body["error"]["message"], body


def test_health_and_docs_through_the_handler(lambda_handler, apigateway_mode):
    assert _invoke(lambda_handler, http_api_event("GET", "/health"))[:2] == (200, {"status": "ok", "database": "ok"})
    status, document, _ = _invoke(lambda_handler, http_api_event("GET", "/openapi.json"))
    assert status == 200 and "/search" in document["paths"]
    docs = lambda_handler(http_api_event("GET", "/docs"), LambdaContext())
    assert docs["statusCode"] == 200 and "swagger" in docs["body"].lower()


def test_delete_through_the_handler_is_204_without_body(alice, cognito, make_item, lambda_handler, apigateway_mode):
    item_id = make_item(alice.sub)
    response = lambda_handler(
        http_api_event(
            "DELETE", f"/items/{item_id}", claims=access_claims(alice.sub, cognito.client_id), headers=alice.headers
        ),
        LambdaContext(),
    )
    assert response["statusCode"] == 204 and not response.get("body")


def test_cold_import_stays_light():
    # Powertools imports the botocore package itself (0.5 ms) to register its user agent; what must not
    # load at init is botocore's session and client machinery (boto3 is the first S3 route's).
    code = (
        "import sys, services.api.handler; "
        "print(sorted(m for m in ('anthropic', 'voyageai', 'PIL', 'boto3', 'botocore.session', 'botocore.client',"
        " 'jwt') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_unknown_item_through_handler_is_404(alice, cognito, lambda_handler, apigateway_mode):
    event = http_api_event(
        "GET", f"/items/{uuid.uuid4()}", claims=access_claims(alice.sub, cognito.client_id), headers=alice.headers
    )
    assert _invoke(lambda_handler, event)[0] == 404
