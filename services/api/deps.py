"""FastAPI dependencies: settings, a database session, the caller, and the ports the routes use.

They are `async def` on purpose: FastAPI runs a plain `def` dependency in a worker thread, and on
Lambda each of those hops costs more than the work (they are all cheap, non-blocking lookups).
Route bodies are plain functions run in the thread pool through `threaded` (see there: why not a
plain `def` route). Tests swap any dependency with `app.dependency_overrides` (e.g. a fake embedder).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, ParamSpec, TypeVar

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from services.api.signing import UrlSigner
from services.core import events
from services.core.ai import Embedder
from services.core.auth import Principal, bearer_token, get_verifier, principal_from_api_gateway
from services.core.database import get_sessionmaker
from services.core.events import EventPublisher
from services.core.settings import ProgramSettings, get_settings
from services.core.storage import Storage

P = ParamSpec("P")
R = TypeVar("R")


def threaded(route: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Make a blocking route body an `async def` endpoint that runs it in the thread pool.

    Why not a plain `def` route: FastAPI then validates and serialises its response in a *second*
    worker thread, after the body returned but before the session dependency closes and hands its
    connection back. Under load every worker thread can be a request waiting for a connection while
    each connection belongs to a finished request waiting for a thread: nothing moves until the pool
    times out (50 clients on `make dev`: 30 s waits, then 500s). An async endpoint is serialised on
    the event loop, and the session's teardown (async too) needs no thread, so a connection is always
    given back as soon as its route body returns.

    The session is closed in the same worker thread, right after the body: closing ends the open
    transaction with a ROLLBACK, a round trip to PostgreSQL that must not block the event loop (it
    did, in `get_session`'s teardown: under 50 clients a third of the loop's time went to waiting for
    rollbacks while every other request's I/O stood still). Route bodies return built response models,
    never ORM objects, so nothing reads the session afterwards; the teardown's close is then a no-op."""

    def body_then_close(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return route(*args, **kwargs)
        finally:
            for value in kwargs.values():
                if isinstance(value, Session):
                    value.close()

    @functools.wraps(route)
    async def endpoint(*args: P.args, **kwargs: P.kwargs) -> R:
        return await run_in_threadpool(body_then_close, *args, **kwargs)

    # Annotations resolved in the route's own module: FastAPI must not look them up in this one.
    endpoint.__signature__ = inspect.signature(route, eval_str=True)  # type: ignore[attr-defined]
    return endpoint


async def current_settings() -> ProgramSettings:
    return get_settings()


SettingsDep = Annotated[ProgramSettings, Depends(current_settings)]


async def get_session() -> AsyncIterator[Session]:
    """One session per request; routes commit what they change, anything else is rolled back on close.
    (Creating it does no I/O: the connection is checked out by the route's first query. `threaded`
    closes it in the route's thread; closing here again only covers a route that never ran.)"""
    session = get_sessionmaker()()
    try:
        yield session
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]

# Declared for the OpenAPI document (the "Authorize" button in /docs); the checks are ours.
_bearer = HTTPBearer(auto_error=False, description="A Cognito access token.")


async def get_current_user(
    request: Request,
    settings: SettingsDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> Principal:
    # Blocks on the network only to (re)fetch the JWKS: once per container and key rotation.
    authorization = request.headers.get("authorization")
    if settings.auth_mode == "apigateway":
        return principal_from_api_gateway(request.scope.get("aws.event"), authorization, get_verifier(settings))
    return get_verifier(settings).verify(bearer_token(authorization))


CurrentUser = Annotated[Principal, Depends(get_current_user)]

_storage: tuple[ProgramSettings, Storage, UrlSigner] | None = None


def _storage_for(settings: ProgramSettings) -> tuple[ProgramSettings, Storage, UrlSigner]:
    """One Storage (and URL signer) per settings object: built once per container, not per request."""
    global _storage
    if _storage is None or _storage[0] is not settings:
        storage = Storage(settings)
        _storage = (settings, storage, UrlSigner(storage))
    return _storage


async def get_storage(settings: SettingsDep) -> Storage:
    return _storage_for(settings)[1]


async def get_url_signer(settings: SettingsDep) -> UrlSigner:
    return _storage_for(settings)[2]


StorageDep = Annotated[Storage, Depends(get_storage)]
SignerDep = Annotated[UrlSigner, Depends(get_url_signer)]


async def get_publisher() -> EventPublisher:
    return events.get_publisher()


PublisherDep = Annotated[EventPublisher, Depends(get_publisher)]


class LazyEmbedder:
    """The query embedder, built on first use, inside the route body: building it may read the Voyage
    key from Secrets Manager, a blocking call that belongs in the worker thread, and whose failure is
    the search's 503 (caught with the embedding's own), never a reason to skip checking the request."""

    def __init__(self, settings: ProgramSettings):
        self.settings = settings

    @functools.cached_property
    def _embedder(self) -> Embedder:
        from services.core.ai import get_embedder as make_embedder  # one per process; off the cold start

        return make_embedder(self.settings)

    @property
    def model(self) -> str:
        return self._embedder.model

    def embed_query(self, text: str) -> list[float]:
        return self._embedder.embed_query(text)


async def get_embedder(settings: SettingsDep) -> Embedder:
    return LazyEmbedder(settings)  # type: ignore[return-value]  (what search uses of an Embedder)


EmbedderDep = Annotated[Embedder, Depends(get_embedder)]
