"""Cognito access tokens: real RS256 tokens from moto, forged ones signed with moto's own key, and
every way a token can be wrong → 401 with a clear message."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import boto3
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.core import auth
from services.core.auth import AuthError, JwksCache, TokenVerifier, bearer_token, principal_from_authorizer


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _segments(token: str) -> tuple[dict, dict, str]:
    header, payload, signature = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(header))),
        json.loads(base64.urlsafe_b64decode(pad(payload))),
        signature,
    )


def _assert_401(response, fragment: str) -> None:
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["code"] == "unauthorized"
    assert fragment in error["message"]
    assert response.headers["www-authenticate"] == "Bearer"


def test_moto_access_token_is_accepted(client, alice):
    response = client.get("/items", headers=alice.headers)
    assert response.status_code == 200, response.text


def test_forged_token_with_the_pool_key_and_right_claims_is_accepted(client, sign):
    # The control for every forgery below: same key and claims, only one thing changed in each.
    response = client.get("/items", headers={"Authorization": f"Bearer {sign()}"})
    assert response.status_code == 200, response.text


def test_missing_token(client):
    _assert_401(client.get("/items"), "missing bearer token")


@pytest.mark.parametrize(
    "header, message",
    [
        ("Bearer not-a-jwt", "malformed"),
        ("Bearer a.b.c", "malformed"),
        ("Basic YWxpY2U6cGFzc3dvcmQ=", "must be 'Bearer"),
        ("Bearer ", "must be 'Bearer"),
    ],
)
def test_garbled_authorization_header(client, header, message):
    _assert_401(client.get("/items", headers={"Authorization": header}), message)


def test_expired_token(client, sign):
    now = int(time.time())
    _assert_401(
        client.get("/items", headers={"Authorization": f"Bearer {sign(exp=now - 120, iat=now - 3720)}"}), "expired"
    )


def test_wrong_issuer(client, sign, cognito):
    other = cognito.issuer.rsplit("/", 1)[0] + "/us-east-1_someoneelse"
    _assert_401(client.get("/items", headers={"Authorization": f"Bearer {sign(iss=other)}"}), "another user pool")


def test_wrong_client_id(client, sign):
    _assert_401(
        client.get("/items", headers={"Authorization": f"Bearer {sign(client_id='another-client')}"}),
        "another app client",
    )


def test_token_without_exp_is_refused(client, sign):
    _assert_401(client.get("/items", headers={"Authorization": f"Bearer {sign(exp=None)}"}), "'exp'")


def test_malformed_sub_is_refused(client, sign):
    _assert_401(client.get("/items", headers={"Authorization": f"Bearer {sign(sub='../../other')}"}), "sub")


def test_id_token_instead_of_access_token(client, cognito, aws):
    idp = boto3.client("cognito-idp", region_name="us-east-1", endpoint_url=aws)
    result = idp.admin_initiate_auth(
        UserPoolId=cognito.user_pool_id,
        ClientId=cognito.client_id,
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": cognito.alice.email, "PASSWORD": "Collections-demo-1"},
    )
    id_token = result["AuthenticationResult"]["IdToken"]
    assert _segments(id_token)[1]["token_use"] == "id"  # a genuine, validly signed id token
    _assert_401(client.get("/items", headers={"Authorization": f"Bearer {id_token}"}), "access token is required")


def test_alg_none_is_refused(client, alice):
    header, payload, _ = _segments(alice.token)
    unsigned = f"{_b64(json.dumps({**header, 'alg': 'none'}).encode())}.{_b64(json.dumps(payload).encode())}."
    _assert_401(client.get("/items", headers={"Authorization": f"Bearer {unsigned}"}), "algorithm")


def test_hs256_signed_with_the_public_key_is_refused(client, alice, cognito):
    # The classic key-confusion attack: HMAC keyed with the (public) RSA key the server trusts.
    public_jwk = next(k for k in json.load(__import__("urllib.request").request.urlopen(cognito.jwks_url))["keys"])
    public_pem = jwt.PyJWK.from_dict(public_jwk).key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header, payload, _ = _segments(alice.token)
    signing_input = f"{_b64(json.dumps({**header, 'alg': 'HS256'}).encode())}.{_b64(json.dumps(payload).encode())}"
    signature = _b64(hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest())
    _assert_401(client.get("/items", headers={"Authorization": f"Bearer {signing_input}.{signature}"}), "algorithm")


def test_unknown_kid_is_refused(client, sign):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = sign(headers={"kid": "not-in-the-jwks"}, signing_key=stranger)
    _assert_401(client.get("/items", headers={"Authorization": f"Bearer {token}"}), "unknown key")


def test_known_kid_but_another_key_is_refused(client, sign):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _assert_401(client.get("/items", headers={"Authorization": f"Bearer {sign(signing_key=stranger)}"}), "signature")


def test_tampered_payload_is_refused(client, alice, bob):
    header, payload, signature = alice.token.split(".")
    claims = _segments(alice.token)[1]
    forged = f"{header}.{_b64(json.dumps({**claims, 'sub': bob.sub}).encode())}.{signature}"
    _assert_401(client.get("/items", headers={"Authorization": f"Bearer {forged}"}), "signature")


def test_health_needs_no_token(client):
    response = client.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok", "database": "ok"}


# --- the JWKS cache ---------------------------------------------------------------------------
def _jwks(*keys: tuple[str, rsa.RSAPrivateKey]) -> dict:
    documents = []
    for kid, key in keys:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        documents.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
    return {"keys": documents}


class FakeJwks:
    """Serves a JWKS document that the test rotates, counting fetches; a clock the test moves."""

    def __init__(self, document: dict):
        self.document = document
        self.fetches = 0
        self.now = 1000.0

    def fetch(self, url: str) -> dict:
        self.fetches += 1
        return self.document


@pytest.fixture(scope="module")
def keys():
    return {kid: rsa.generate_private_key(public_exponent=65537, key_size=2048) for kid in ("k1", "k2")}


def _token(key, kid: str, **claims) -> str:
    now = int(time.time())
    body = {
        "iss": "https://issuer",
        "sub": "user-1",
        "client_id": "web",
        "token_use": "access",
        "exp": now + 60,
        "jti": uuid.uuid4().hex,  # each call a different token (the verified-token cache keys on the text)
        **claims,
    }
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid})


def _verifier(fake: FakeJwks, ttl_s: float = 3600, min_refetch_s: float = 30) -> TokenVerifier:
    cache = JwksCache("http://jwks", ttl_s, min_refetch_s=min_refetch_s, fetch=fake.fetch, clock=lambda: fake.now)
    return TokenVerifier("https://issuer", "web", cache)


def test_jwks_is_fetched_once_and_cached(keys):
    fake = FakeJwks(_jwks(("k1", keys["k1"])))
    verifier = _verifier(fake)
    for _ in range(5):
        assert verifier.verify(_token(keys["k1"], "k1")).sub == "user-1"
    assert fake.fetches == 1


def test_rotated_key_is_picked_up_on_unknown_kid(keys):
    fake = FakeJwks(_jwks(("k1", keys["k1"])))
    verifier = _verifier(fake)
    verifier.verify(_token(keys["k1"], "k1"))
    fake.document = _jwks(("k1", keys["k1"]), ("k2", keys["k2"]))  # the pool rotates in a new key
    fake.now += 31
    assert verifier.verify(_token(keys["k2"], "k2")).sub == "user-1"
    assert fake.fetches == 2


def test_unknown_kids_do_not_hammer_the_jwks_endpoint(keys):
    fake = FakeJwks(_jwks(("k1", keys["k1"])))
    verifier = _verifier(fake, min_refetch_s=30)
    verifier.verify(_token(keys["k1"], "k1"))
    for attempt in range(20):
        with pytest.raises(AuthError, match="unknown key"):
            verifier.verify(_token(keys["k2"], f"made-up-{attempt}"))
    assert fake.fetches == 1  # all within the refetch interval
    fake.now += 31
    with pytest.raises(AuthError, match="unknown key"):
        verifier.verify(_token(keys["k2"], "made-up-later"))
    assert fake.fetches == 2


def test_jwks_is_refreshed_after_its_ttl(keys):
    fake = FakeJwks(_jwks(("k1", keys["k1"])))
    verifier = _verifier(fake, ttl_s=60)
    verifier.verify(_token(keys["k1"], "k1"))
    fake.now += 61
    verifier.verify(_token(keys["k1"], "k1"))
    assert fake.fetches == 2


def test_unreachable_jwks_is_a_401_not_a_crash(keys):
    def broken(url: str) -> dict:
        raise OSError("connection refused")

    verifier = TokenVerifier("https://issuer", "web", JwksCache("http://jwks", 3600, fetch=broken))
    with pytest.raises(AuthError, match="could not be loaded"):
        verifier.verify(_token(keys["k1"], "k1"))


# --- the verified-token cache ----------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _counting_verifier(fake: FakeJwks, clock: Clock, client_id: str = "web") -> tuple[TokenVerifier, list[str]]:
    verifier = TokenVerifier("https://issuer", client_id, JwksCache("http://jwks", 3600, fetch=fake.fetch), clock=clock)
    checked: list[str] = []
    full_check = verifier._verify

    def counting(token: str):
        checked.append(token)
        return full_check(token)

    verifier._verify = counting  # type: ignore[method-assign]
    return verifier, checked


def test_a_verified_token_is_checked_in_full_once_within_the_cache_time(keys):
    clock = Clock()
    verifier, checked = _counting_verifier(FakeJwks(_jwks(("k1", keys["k1"]))), clock)
    token = _token(keys["k1"], "k1")
    assert {verifier.verify(token).sub for _ in range(5)} == {"user-1"}
    assert len(checked) == 1
    clock.now += auth.VERIFIED_TOKEN_CACHE_S + 1
    assert verifier.verify(token).sub == "user-1"
    assert len(checked) == 2


def test_a_cached_token_is_checked_again_once_its_exp_passes(keys):
    clock = Clock()
    verifier, checked = _counting_verifier(FakeJwks(_jwks(("k1", keys["k1"]))), clock)
    token = _token(keys["k1"], "k1", exp=int(clock.now) + 5)  # expires before the cache time would end
    verifier.verify(token)
    clock.now += 6
    verifier.verify(token)  # still inside PyJWT's leeway, but checked again: the cache stops at exp
    assert len(checked) == 2


def test_a_refused_token_is_never_remembered(keys):
    clock = Clock()
    verifier, checked = _counting_verifier(FakeJwks(_jwks(("k1", keys["k1"]))), clock)
    token = _token(keys["k1"], "k1", client_id="other-app")
    for _ in range(3):
        with pytest.raises(AuthError, match="another app client"):
            verifier.verify(token)
    assert len(checked) == 3


def test_the_cache_is_bounded_and_forgets_the_least_recently_used(keys, monkeypatch):
    monkeypatch.setattr(auth, "VERIFIED_TOKEN_CACHE_SIZE", 2)
    clock = Clock()
    verifier, checked = _counting_verifier(FakeJwks(_jwks(("k1", keys["k1"]))), clock)
    first, second, third = (_token(keys["k1"], "k1") for _ in range(3))
    for token in (first, second, first, third):  # third pushes out second, the least recently used
        verifier.verify(token)
    assert len(checked) == 3
    verifier.verify(first)
    assert len(checked) == 3
    verifier.verify(second)
    assert len(checked) == 4


@pytest.mark.parametrize("suffix", ["!", "!!!!", "==", "\n", " "])
def test_a_token_has_one_spelling(keys, suffix):
    """Characters outside base64url, or padding, are refused before the cache is asked: otherwise one
    valid token could be sent in many spellings, each taking a place in the cache."""
    clock = Clock()
    verifier, checked = _counting_verifier(FakeJwks(_jwks(("k1", keys["k1"]))), clock)
    token = _token(keys["k1"], "k1")
    verifier.verify(token)
    with pytest.raises(AuthError, match="malformed"):
        verifier.verify(token + suffix)
    assert len(checked) == 1


def test_a_token_inside_the_leeway_after_exp_is_accepted_but_not_remembered(keys):
    clock = Clock()
    verifier, checked = _counting_verifier(FakeJwks(_jwks(("k1", keys["k1"]))), clock)
    token = _token(keys["k1"], "k1", exp=int(clock.now) - 5)  # expired 5 s ago; PyJWT's leeway is 30 s
    verifier.verify(token)
    verifier.verify(token)
    assert len(checked) == 2


def test_a_remembered_principals_claims_are_read_only(keys):
    verifier, _ = _counting_verifier(FakeJwks(_jwks(("k1", keys["k1"]))), Clock())
    token = _token(keys["k1"], "k1")
    with pytest.raises(TypeError):
        verifier.verify(token).claims["sub"] = "someone-else"  # type: ignore[index]
    assert verifier.verify(token).claims["sub"] == "user-1"


def test_a_cached_token_is_another_token_only_if_byte_identical(keys):
    clock = Clock()
    verifier, _ = _counting_verifier(FakeJwks(_jwks(("k1", keys["k1"]))), clock)
    token = _token(keys["k1"], "k1")
    verifier.verify(token)
    header, payload, signature = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged["sub"] = "someone-else"
    tampered = ".".join(
        [header, base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode(), signature]
    )
    with pytest.raises(AuthError, match="signature is invalid"):
        verifier.verify(tampered)


# --- API Gateway authorizer claims ------------------------------------------------------------
def _event(claims: dict | None) -> dict:
    authorizer = {"jwt": {"claims": claims, "scopes": None}} if claims is not None else {}
    return {"version": "2.0", "requestContext": {"authorizer": authorizer}}


def test_authorizer_claims_name_the_caller():
    claims = {"sub": "abc-123", "client_id": "web", "token_use": "access", "username": "abc-123"}
    principal = principal_from_authorizer(_event(claims), "web")
    assert principal.sub == "abc-123" and principal.username == "abc-123"


@pytest.mark.parametrize(
    "claims, message",
    [
        (None, "no authorizer claims"),
        ({"sub": "abc", "client_id": "web", "token_use": "id"}, "access token is required"),
        ({"sub": "abc", "client_id": "other", "token_use": "access"}, "another app client"),
        ({"client_id": "web", "token_use": "access"}, "sub"),
    ],
)
def test_authorizer_claims_are_still_checked(claims, message):
    with pytest.raises(AuthError, match=message):
        principal_from_authorizer(_event(claims), "web")


@pytest.mark.parametrize("header", [None, "", "Token abc", "Bearer"])
def test_bearer_token_requires_the_bearer_scheme(header):
    with pytest.raises(AuthError):
        bearer_token(header)
