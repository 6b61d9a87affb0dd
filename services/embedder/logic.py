"""Embedder: an analysed item's text → Voyage (or the local embedder) → items.embedding, `ready`.

The text embedded is the item's title, description, category, tags, colours and visible text;
reembed.py uses the same text, so a re-embedding gives what a fresh run would.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from services.core import pipeline_store as store
from services.core.ai import Embedder, ModelOutputRejected, get_embedder
from services.core.contracts import ImageAnalyzed, ImageReady, ItemFailed
from services.core.database import session_scope
from services.core.events import EventPublisher, get_publisher
from services.core.models import Item, ItemStatus, Stage

log = logging.getLogger(__name__)


def embedding_text(item: Item) -> str:
    """What the vector stands for: every descriptive field, labelled, one per line."""
    lines = [
        item.title or "",
        item.description or "",
        f"Category: {item.category}" if item.category else "",
        f"Tags: {', '.join(item.tags)}" if item.tags else "",
        f"Colours: {', '.join(item.colors)}" if item.colors else "",
        f"Text in the image: {item.visible_text}" if item.visible_text else "",
    ]
    text = "\n".join(line for line in lines if line)
    return text or item.filename  # never empty: an item always has a filename


class ItemEmbedder:
    def __init__(self, embedder: Embedder | None = None, publisher: EventPublisher | None = None):
        self.embedder = embedder or get_embedder()
        self.publisher = publisher or get_publisher()

    def image_analyzed(self, event: ImageAnalyzed) -> store.Outcome:
        with session_scope() as session:
            item = store.claim(session, Stage.embed, event.item_id, event.owner_id, ItemStatus.analyzed)
            if isinstance(item, store.Outcome):
                return item
            try:
                (vector,) = self.embedder.embed_documents([embedding_text(item)])
            except ModelOutputRejected as error:
                return self._fail(session, item, str(error))
            values = {
                "status": ItemStatus.ready,
                "embedding": vector,
                "embedding_model": self.embedder.model,
                "ready_at": datetime.now(UTC),
            }
            if not store.advance(session, item.id, ItemStatus.analyzed, values):
                return store.Outcome(item.id, "skipped", "the item changed while it was embedded")
            self.publisher.publish(
                [ImageReady(item_id=item.id, owner_id=item.owner_id, embedding_model=self.embedder.model)]
            )
            log.info("embedded item %s with %s", item.id, self.embedder.model)
            return store.Outcome(item.id, "ready", extra={"model": self.embedder.model})

    def _fail(self, session, item: Item, reason: str) -> store.Outcome:
        if not store.fail(session, item.id, ItemStatus.analyzed, Stage.embed, reason):
            return store.Outcome(item.id, "skipped", "the item changed while it was embedded")
        self.publisher.publish([ItemFailed(item_id=item.id, owner_id=item.owner_id, stage="embed", reason=reason)])
        log.warning("item %s failed embedding: %s", item.id, reason)
        return store.Outcome(item.id, "failed", reason)
