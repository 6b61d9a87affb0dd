"""The SQL behind the API's reads: the caller's visible items, filters, keyset cursors, vector search.

Ownership is the first filter of every query; deleted items are invisible everywhere.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Select, func, or_, select, tuple_
from sqlalchemy.orm import Session, defer

from services.core.models import Item, ItemStatus

log = logging.getLogger(__name__)

# Never loaded for lists and search hits: the 4 KB vector and the raw analysis.
LIGHT = (defer(Item.embedding), defer(Item.analysis))
# Up to this many candidate items (the owner's, after filters), search computes every distance
# instead of scanning the index (see nearest()); ~2,000 1024-d vectors take a few milliseconds.
EXACT_SEARCH_MAX_CANDIDATES = 2000
# A filter on what an item shows (category, tags, text) keeps exact search up to 1.5 times as many
# candidates. Such a filter comes from the same analysis as the embedding, so its matches crowd in some
# regions of the vector space and are rare in others: an HNSW scan from a query outside them walks far
# before it has k matches (pgvector's iterative scan, up to hnsw.max_scan_tuples), and its recall
# drops. Measured on bench_api's data (100,000 items, a user's 9,000, categories tied to clusters;
# ranges of p50/p95 SQL time over 10 runs on a shared machine, recall@10 of HNSW with ef_search 40):
# 2,267 candidates: exact 8-20/12-51 ms, HNSW 18-60/41-167 ms with recall 0.75-0.78;
# 3,359 candidates: exact 13-31/17-47 ms, HNSW 7-16/28-58 ms with recall 0.84-0.86.
# An owner or date filter has no such bias: the owner's items are spread over the whole space.
CONTENT_FILTER_EXACT_FACTOR = 1.5
# What an HNSW search needs from its session: the database role's defaults, which migration 0003 sets
# (tests/services/api/test_search_session.py checks that the two agree).
HNSW_SESSION = {"hnsw.iterative_scan": "relaxed_order", "hnsw.ef_search": "40"}


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True)
class ItemFilters:
    status: ItemStatus | None = None
    category: str | None = None
    tags: tuple[str, ...] = ()
    text: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def visible_items(owner_id: str) -> Select:
    return select(Item).where(Item.owner_id == owner_id, Item.status != ItemStatus.deleted)


def get_visible(session: Session, owner_id: str, item_id: uuid.UUID, *, for_update: bool = False) -> Item | None:
    query = visible_items(owner_id).where(Item.id == item_id)
    if for_update:
        query = query.with_for_update()
    return session.scalar(query)


def apply_filters(query: Select, filters: ItemFilters) -> Select:
    if filters.status is not None:
        query = query.where(Item.status == filters.status)
    if filters.category is not None:
        query = query.where(Item.category == filters.category)
    if filters.tags:
        query = query.where(Item.tags.contains(list(filters.tags)))  # @> : every tag present (GIN index)
    if filters.text:
        pattern = _like_pattern(filters.text)
        query = query.where(
            or_(
                Item.title.ilike(pattern, escape="\\"),
                Item.description.ilike(pattern, escape="\\"),
                func.array_to_string(Item.tags, " ").ilike(pattern, escape="\\"),
            )
        )
    if filters.created_after is not None:
        query = query.where(Item.created_at >= filters.created_after)
    if filters.created_before is not None:
        query = query.where(Item.created_at < filters.created_before)
    return query


# --- keyset pagination ----------------------------------------------------------------------
def encode_cursor(item: Item) -> str:
    raw = json.dumps([item.created_at.isoformat(), str(item.id)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, item_id = json.loads(raw)
        if not isinstance(created, str) or not isinstance(item_id, str):
            raise TypeError("a cursor holds two strings")  # uuid.UUID(5) would raise AttributeError
        created_at = datetime.fromisoformat(created)
        if created_at.tzinfo is None:
            raise ValueError("naive timestamp")
        return created_at, uuid.UUID(item_id)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor("the cursor is invalid; pass next_cursor from a previous page unchanged") from None


def list_page(
    session: Session, owner_id: str, filters: ItemFilters, limit: int, cursor: str | None
) -> tuple[list[Item], str | None]:
    """One page, newest first (created_at desc, id desc), and the cursor of the next page."""
    query = apply_filters(visible_items(owner_id), filters).options(*LIGHT)
    if cursor:
        created_at, item_id = decode_cursor(cursor)
        query = query.where(tuple_(Item.created_at, Item.id) < tuple_(created_at, item_id))
    query = query.order_by(Item.created_at.desc(), Item.id.desc()).limit(limit + 1)
    items = list(session.scalars(query))
    if len(items) > limit:
        return items[:limit], encode_cursor(items[limit - 1])
    return items, None


# --- vector search --------------------------------------------------------------------------
def exact_search_max_candidates(filters: ItemFilters) -> int:
    """Up to how many candidates a search with these filters computes every distance."""
    if filters.category is not None or filters.tags or filters.text:
        return int(EXACT_SEARCH_MAX_CANDIDATES * CONTENT_FILTER_EXACT_FACTOR)
    return EXACT_SEARCH_MAX_CANDIDATES


def _candidates(
    session: Session, owner_id: str, filters: ItemFilters, exclude: uuid.UUID | None = None
) -> tuple[int, str | None]:
    """The items a search could return (the owner's ready items that pass the filters), counted up
    to exact_search_max_candidates(filters) + 1, and, in the same round trip, the session's
    hnsw.iterative_scan (see _ensure_hnsw_session). Without filters, or with a category, an
    index-only scan of ix_items_owner_ready_category; other filters read the owner's rows, still
    bounded by the limit."""
    bounded = apply_filters(
        select(Item.id).where(Item.owner_id == owner_id, Item.status == ItemStatus.ready, Item.embedding.is_not(None)),
        filters,
    )
    if exclude is not None:
        bounded = bounded.where(Item.id != exclude)
    bounded = bounded.limit(max(exact_search_max_candidates(filters), 0) + 1).subquery()
    row = session.execute(
        select(func.count(), func.current_setting("hnsw.iterative_scan", True)).select_from(bounded)
    ).one()
    return row[0], row[1]


def candidate_count(session: Session, owner_id: str, filters: ItemFilters, exclude: uuid.UUID | None = None) -> int:
    return _candidates(session, owner_id, filters, exclude)[0]


def _ensure_hnsw_session(session: Session, iterative_scan: str | None) -> None:
    """Normally nothing: the settings are the role's defaults. A database connection opened before
    migration 0003 set them lacks them, and a pooler (RDS Proxy) keeps such connections until it
    replaces them; without iterative scans the owner filter would cut the k hits short. Then this
    transaction sets them, which pins this client session behind RDS Proxy: a price paid only on a
    stale connection, and logged."""
    if iterative_scan == HNSW_SESSION["hnsw.iterative_scan"]:
        return
    log.warning("this database connection lacks the role's HNSW defaults (hnsw.iterative_scan=%s); "
                "setting them for this transaction", iterative_scan)
    session.execute(select(*(func.set_config(name, value, True) for name, value in HNSW_SESSION.items())))


def search_plan(session: Session, owner_id: str, filters: ItemFilters, exclude: uuid.UUID | None = None) -> str:
    """"exact" when the candidates are few enough to compute every distance, else "hnsw"."""
    exact = candidate_count(session, owner_id, filters, exclude) <= exact_search_max_candidates(filters)
    return "exact" if exact else "hnsw"


def nearest(
    session: Session,
    owner_id: str,
    vector: list[float],
    k: int,
    filters: ItemFilters,
    exclude: uuid.UUID | None = None,
) -> list[tuple[Item, float]]:
    """The caller's ready items closest to `vector` by cosine distance, nearest first.

    Two plans, chosen by how many items could match (the owner's, after the filters). The HNSW
    index is shared by every user and knows nothing of filters: for a small candidate set (a small
    collection, or a selective filter such as a rare category) an index scan walks mostly vectors
    it must discard, and may stop (hnsw.max_scan_tuples) before it has found k ("With approximate
    indexes, queries with filtering can return less results since filtering is applied after the
    index is scanned", pgvector README, "Iterative Index Scans"). Exact search over those few
    candidates is then both faster and complete, and needs no session settings. Above
    exact_search_max_candidates(filters), the index scan is the fast one.
    Measured in tests/bench/bench_api.py (1% category filter of a 10,000-item collection).
    """
    candidates, iterative_scan = _candidates(session, owner_id, filters, exclude)
    exact = candidates <= exact_search_max_candidates(filters)
    distance = Item.embedding.cosine_distance(vector)
    if exact:
        # `+ 0`: the HNSW index only serves ORDER BY embedding <=> constant, so this computes them all.
        # Selected once and ordered by its label: ordering by a second expression read every TOASTed
        # vector twice (EXPLAIN BUFFERS over ~1,100 candidates: 10,800 buffers against 5,900; 7-10 ms
        # against 4-5 ms).
        distance = distance + 0
    else:
        # hnsw.iterative_scan = relaxed_order (the owner filter still yields k rows) and
        # hnsw.ef_search are the database role's defaults, set by migration 0003: a SET/SET LOCAL/
        # set_config here would pin the API's session to one database connection behind RDS Proxy
        # (RDS User Guide, "Avoiding pinning an RDS Proxy": "Using SET commands"), so only a stale
        # connection gets them set (_ensure_hnsw_session).
        _ensure_hnsw_session(session, iterative_scan)
    labeled = distance.label("distance")
    query = apply_filters(select(Item, labeled), filters).where(
        Item.owner_id == owner_id, Item.status == ItemStatus.ready, Item.embedding.is_not(None)
    )
    if exclude is not None:
        query = query.where(Item.id != exclude)
    query = query.order_by(labeled, Item.id) if exact else query.order_by(labeled)
    query = query.options(*LIGHT).limit(k)
    hits = [(item, float(d)) for item, d in session.execute(query)]
    # relaxed_order may return neighbours slightly out of order: sort the k we have exactly.
    hits.sort(key=lambda hit: hit[1])
    return hits


def embedding_of(session: Session, owner_id: str, item_id: uuid.UUID) -> tuple[Item | None, list[float] | None]:
    row = session.execute(
        visible_items(owner_id).add_columns(Item.embedding).where(Item.id == item_id).options(*LIGHT)
    ).first()
    if row is None:
        return None, None
    item, embedding = row
    return item, (None if embedding is None else list(embedding))


def as_utc(value: datetime | None) -> datetime | None:
    """Naive datetimes from query strings are taken as UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
