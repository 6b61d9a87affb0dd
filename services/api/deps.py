"""FastAPI dependencies: settings, a database session, the caller, and the ports the routes use.

Tests swap any of them with `app.dependency_overrides` (e.g. a fake embedder).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from services.core.ai import Embedder
from services.core.auth import Principal, bearer_token, get_verifier, principal_from_authorizer
from services.core.database import get_sessionmaker
from services.core.events import EventPublisher, get_publisher
from services.core.settings import Settings, get_settings
from services.core.storage import Storage

SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_session() -> Iterator[Session]:
    """One session per request; routes commit what they change, anything else is rolled back on close."""
    session = get_sessionmaker()()
    try:
        yield session
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]

# Declared for the OpenAPI document (the "Authorize" button in /docs); the checks are ours.
_bearer = HTTPBearer(auto_error=False, description="A Cognito access token.")


def get_current_user(
    request: Request,
    settings: SettingsDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> Principal:
    if settings.auth_mode == "apigateway":
        return principal_from_authorizer(request.scope.get("aws.event"), settings.cognito_client_id)
    return get_verifier(settings).verify(bearer_token(request.headers.get("authorization")))


CurrentUser = Annotated[Principal, Depends(get_current_user)]

_storage: tuple[Settings, Storage] | None = None


def get_storage(settings: SettingsDep) -> Storage:
    """One Storage per settings object (the boto3 client behind it is cached anyway)."""
    global _storage
    if _storage is None or _storage[0] is not settings:
        _storage = (settings, Storage(settings))
    return _storage[1]


StorageDep = Annotated[Storage, Depends(get_storage)]
PublisherDep = Annotated[EventPublisher, Depends(get_publisher)]

_embedder: tuple[Settings, Embedder] | None = None


def get_embedder(settings: SettingsDep) -> Embedder:
    """The query embedder, built on first use: Voyage's SDK is imported lazily, off the cold start."""
    global _embedder
    if _embedder is None or _embedder[0] is not settings:
        from services.core.ai import get_embedder as make_embedder

        _embedder = (settings, make_embedder(settings))
    return _embedder[1]


EmbedderDep = Annotated[Embedder, Depends(get_embedder)]
