"""API fixtures: a migrated database, moto (S3, EventBridge, Cognito), two real users with real
moto-issued access tokens, an app and a client, and helpers to put items straight into the database."""

from __future__ import annotations

import gzip
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient

from tests.conftest import reset_caches


@dataclass
class User:
    email: str
    sub: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class CognitoEnv:
    user_pool_id: str
    client_id: str
    issuer: str
    jwks_url: str
    alice: User
    bob: User


@pytest.fixture(scope="module")
def cognito(db_url, aws, monkeypatch_module) -> Iterator[CognitoEnv]:
    """A user pool on moto with two users; the API verifies their tokens against moto's JWKS."""
    from services.core.settings import get_settings
    from services.local.aws import access_token, ensure_cognito, ensure_user, jwks_url

    settings = get_settings()
    app = ensure_cognito(settings, pool_name=f"collections-test-{uuid.uuid4().hex[:8]}")
    users = {}
    for name in ("alice", "bob"):
        email = f"{name}@example.com"
        sub = ensure_user(settings, app, email)
        users[name] = User(email=email, sub=sub, token=access_token(settings, app, email))
    monkeypatch_module.setenv("COLLECTIONS_AUTH_MODE", "jwks")
    monkeypatch_module.setenv("COLLECTIONS_COGNITO_USER_POOL_ID", app.user_pool_id)
    monkeypatch_module.setenv("COLLECTIONS_COGNITO_CLIENT_ID", app.client_id)
    monkeypatch_module.setenv("COLLECTIONS_COGNITO_JWKS_URL", jwks_url(settings, app))
    reset_caches()
    settings = get_settings()
    yield CognitoEnv(
        user_pool_id=app.user_pool_id,
        client_id=app.client_id,
        issuer=settings.issuer,
        jwks_url=settings.jwks_url,
        alice=users["alice"],
        bob=users["bob"],
    )
    reset_caches()


@pytest.fixture(scope="module")
def app(cognito):
    from services.api.app import create_app

    return create_app()


@pytest.fixture(scope="module")
def client(app) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def alice(cognito) -> User:
    return cognito.alice


@pytest.fixture(scope="module")
def bob(cognito) -> User:
    return cognito.bob


# --- forging tokens with moto's own signing key (real RS256) --------------------------------
def moto_private_jwk() -> dict[str, Any]:
    data = resources.files("moto.cognitoidp").joinpath("resources/jwks-private.json.gz").read_bytes()
    return json.loads(gzip.decompress(data))


@pytest.fixture(scope="module")
def sign(cognito):
    """sign(**overrides) → an access token signed like moto signs (kid "dummy"), claims overridable;
    a claim set to None is left out."""
    key = jwt.PyJWK.from_dict(moto_private_jwk()).key

    def _sign(headers: dict | None = None, signing_key: Any = None, **overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": cognito.issuer,
            "sub": cognito.alice.sub,
            "client_id": cognito.client_id,
            "token_use": "access",
            "iat": now,
            "auth_time": now,
            "exp": now + 3600,
            "jti": str(uuid.uuid4()),
            "username": cognito.alice.sub,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, signing_key or key, algorithm="RS256", headers={"kid": "dummy", **(headers or {})})

    return _sign


# --- items straight into the database ------------------------------------------------------
def unit(vector: list[float]) -> list[float]:
    norm = sum(v * v for v in vector) ** 0.5
    return [v / norm for v in vector]


def axis_vector(*weights: float, dimension: int | None = None) -> list[float]:
    """A unit vector whose first coordinates are `weights` (the rest zero): distances are easy to reason about."""
    from services.core.settings import get_settings

    dimension = dimension or get_settings().embedding_dimension
    return unit([*weights, *([0.0] * (dimension - len(weights)))])


@pytest.fixture(scope="module")
def make_item(db_url):
    from services.core.database import session_scope
    from services.core.models import Item, ItemStatus
    from services.core.storage import thumbnail_key, upload_key

    def _make(owner: str, status: str = "ready", embedding: list[float] | None = None, **fields: Any) -> uuid.UUID:
        item_id = fields.pop("id", None) or uuid.uuid4()
        status = ItemStatus(status)
        defaults: dict[str, Any] = {
            "filename": "photo.jpg",
            "content_type": "image/jpeg",
            "original_key": upload_key(owner, item_id, "photo.jpg"),
        }
        if status in (ItemStatus.processed, ItemStatus.analyzed, ItemStatus.ready):
            defaults["thumbnail_keys"] = {str(s): thumbnail_key(owner, item_id, s) for s in (256, 1024)}
            defaults["list_thumbnail_key"] = defaults["thumbnail_keys"]["256"]
            defaults["analysis_thumbnail_key"] = defaults["thumbnail_keys"]["1024"]
            defaults["sha256"] = "ab" * 32
        if status in (ItemStatus.analyzed, ItemStatus.ready):
            defaults["analysis_model"] = "local-vision-v1"
            defaults.setdefault("title", "an item")
        if status is ItemStatus.ready:
            defaults["embedding_model"] = "test-vectors"
            if embedding is None:
                embedding = axis_vector(1.0)
        defaults.update(fields)
        with session_scope() as session:
            session.add(Item(id=item_id, owner_id=owner, status=status, embedding=embedding, **defaults))
        return item_id

    return _make
