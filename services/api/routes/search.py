"""Semantic search over the caller's ready items, and an item's nearest neighbours (cosine distance)."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends

from services.api import limits
from services.api.deps import CurrentUser, EmbedderDep, SessionDep, SettingsDep, SignerDep, threaded
from services.api.errors import AUTHENTICATED, ApiError, error_responses, not_found, search_unavailable
from services.api.params import CommonFilters, K, search_query
from services.api.presenters import search_hit
from services.api.queries import embedding_of, nearest
from services.api.schemas import SearchResults
from services.core.ai import EmbedderUnavailable
from services.core.models import ItemStatus

log = logging.getLogger(__name__)
router = APIRouter(tags=["search"])


@router.get("/search", response_model=SearchResults, responses=error_responses(*AUTHENTICATED, 400, 429))
@threaded
def search(
    q: Annotated[str, Depends(search_query)],
    k: K,
    filters: CommonFilters,
    user: CurrentUser,
    session: SessionDep,
    signer: SignerDep,
    embedder: EmbedderDep,
    settings: SettingsDep,
) -> SearchResults:
    limits.check_search(session, user.sub, settings)
    # Counted now, and the connection handed back while the query is embedded.
    session.commit()
    try:
        vector = embedder.embed_query(q)
    except EmbedderUnavailable as error:
        log.warning("search unavailable: the query could not be embedded: %s", error)
        raise search_unavailable(error.retry_after_s or 5) from None
    except Exception:
        # Anything else from the provider (a refused key, an answer we cannot read) is not the caller's
        # fault and not our bug: the same 503 for them, the provider's text in one log record for us.
        log.exception("search unavailable: the query embedder failed")
        raise search_unavailable() from None
    hits = nearest(session, user.sub, vector, k, filters)
    return SearchResults(items=[search_hit(item, d, signer) for item, d in hits], model=embedder.model)


@router.get(
    "/items/{item_id}/similar",
    response_model=SearchResults,
    responses=error_responses(*AUTHENTICATED, 400, 404, 409, s409="The item has no embedding yet"),
)
@threaded
def similar(
    item_id: uuid.UUID,
    k: K,
    filters: CommonFilters,
    user: CurrentUser,
    session: SessionDep,
    signer: SignerDep,
) -> SearchResults:
    item, vector = embedding_of(session, user.sub, item_id)
    if item is None:
        raise not_found()
    if item.status is not ItemStatus.ready or vector is None:
        raise ApiError(409, "conflict", f"item {item_id} is {item.status.value}; only ready items have neighbours")
    hits = nearest(session, user.sub, vector, k, filters, exclude=item_id)
    return SearchResults(items=[search_hit(i, d, signer) for i, d in hits], model=item.embedding_model or "")
