"""Re-embed every ready item whose embedding came from another model than the configured one.

Run after changing COLLECTIONS_EMBEDDING_MODEL (`collections reembed`). Works in batches, each
committed on its own: an interrupted run loses at most one batch, and running it again resumes
where it stopped (the items done already carry the current model). Rows of the batch in work are
locked with SKIP LOCKED, so two runs at once share the work instead of doubling it. The embedder
splits a batch further into requests within Voyage's limits (≤ 1000 texts, token budget).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import func, select, update

from services.core.ai import Embedder, get_embedder
from services.core.database import session_scope
from services.core.item_text import embedding_text
from services.core.models import Item, ItemStatus

log = logging.getLogger(__name__)

DEFAULT_BATCH = 128
MAX_BATCH = 1000  # Voyage's texts-per-request limit: a larger batch buys nothing


@dataclass(frozen=True)
class ReembedReport:
    model: str
    reembedded: int
    batches: int
    remaining: int

    def as_dict(self) -> dict[str, object]:
        return {
            "model": self.model,
            "reembedded": self.reembedded,
            "batches": self.batches,
            "remaining": self.remaining,
        }


def _stale(model: str):
    return (Item.status == ItemStatus.ready) & Item.embedding_model.is_distinct_from(model)


def count_stale(model: str) -> int:
    with session_scope() as session:
        return session.execute(select(func.count()).select_from(Item).where(_stale(model))).scalar_one()


def reembed(
    embedder: Embedder | None = None,
    *,
    batch_size: int = DEFAULT_BATCH,
    only_stale: bool = True,
    limit: int | None = None,
) -> ReembedReport:
    """Re-embed ready items, `batch_size` per transaction, until none is left or `limit` is reached.

    only_stale=False re-embeds every ready item (e.g. after changing how the text is built); it
    walks the items in id order, so it too commits per batch, but a rerun starts from the top.
    """
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH}, not {batch_size}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    embedder = embedder or get_embedder()
    done = batches = 0
    after = None  # keyset position when walking every item
    while limit is None or done < limit:
        size = batch_size if limit is None else min(batch_size, limit - done)
        with session_scope() as session:
            query = select(Item).order_by(Item.id).limit(size).with_for_update(skip_locked=True)
            if only_stale:
                query = query.where(_stale(embedder.model))
            else:
                query = query.where(Item.status == ItemStatus.ready)
                if after is not None:
                    query = query.where(Item.id > after)
            items = session.execute(query).scalars().all()
            if not items:
                break
            vectors = embedder.embed_documents([embedding_text(item) for item in items])
            for item, vector in zip(items, vectors, strict=True):
                session.execute(
                    update(Item)
                    .where(Item.id == item.id)
                    .values(embedding=vector, embedding_model=embedder.model, updated_at=func.now())
                    .execution_options(synchronize_session=False)
                )
        after = items[-1].id
        done += len(items)
        batches += 1
        log.info("re-embedded %d items with %s (batch %d)", len(items), embedder.model, batches)
    report = ReembedReport(embedder.model, done, batches, count_stale(embedder.model))
    log.info("re-embedding finished: %s", report.as_dict())
    return report


def run(*, batch_size: int = DEFAULT_BATCH, only_stale: bool = True, limit: int | None = None) -> dict[str, object]:
    """`collections reembed`: the report as a plain dict."""
    return reembed(batch_size=batch_size, only_stale=only_stale, limit=limit).as_dict()
