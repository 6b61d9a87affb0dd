"""Embedder, the `embed` stage's work: an analysed item's text → Voyage (or the local embedder) → `ready`.

The text embedded is services/core/item_text.py's: the api (an edit's text hash), reembed.py and
this stage use the same text, so a re-embedding gives what a fresh run would.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from sqlalchemy import Connection, Row, select, update

from services.core import pipeline_store as store
from services.core.ai import Embedder, ModelOutputRejected, get_embedder
from services.core.contracts import EventBridgeEvent, ItemEdited
from services.core.database import connection_scope
from services.core.events import EventPublisher
from services.core.item_text import embedding_text, text_sha256
from services.core.stage_runner import Claim, Done, Failure, StageWork
from services.core.tables import ItemStatus, items

log = logging.getLogger(__name__)


class ItemEmbedder(StageWork):
    """The `embed` stage's work, and the re-embedding of a ready item after a user's edit (ItemEdited)."""

    stage_name = "embed"

    def __init__(self, embedder: Embedder | None = None, publisher: EventPublisher | None = None):
        super().__init__(publisher)
        self.embedder = embedder or get_embedder()

    def work(self, claim: Claim) -> Done | Failure:
        try:
            (vector,) = self.embedder.embed_documents([embedding_text(claim.item)])
        except ModelOutputRejected as error:
            return Failure(str(error))
        log.info("embedded item %s with %s", claim.item.id, self.embedder.model)
        values = {"embedding": vector, "embedding_model": self.embedder.model, "ready_at": datetime.now(UTC)}
        return Done(values, extra={"model": self.embedder.model})

    def other_event(self, envelope: EventBridgeEvent) -> store.Outcome:
        detail = envelope.pipeline_detail()
        if not isinstance(detail, ItemEdited):
            return super().other_event(envelope)
        return self.item_edited(detail)

    def item_edited(self, event: ItemEdited) -> store.Outcome:
        """Embed a ready item's text again after a user's edit. The item stays ready, with its old
        vector, until the new one is written; nothing else about it changes."""
        with connection_scope() as connection:
            item = store.get_item(connection, event.item_id)
            if item is None or item.owner_id != event.owner_id:
                return store.Outcome(event.item_id, "skipped", "no such item for this owner")
            if item.status == ItemStatus.analyzed:
                # Its first embedding is under way and may have read the text before the edit.
                raise store.NotReadyYet(f"item {item.id} is analyzed; re-embed it once it is ready")
            if item.status != ItemStatus.ready:
                return store.Outcome(item.id, "skipped", f"item is {item.status.value}; its embedding is still to come")
            item = self._edit_visible(connection, item, event.text_sha256)
            if item is None:
                return store.Outcome(event.item_id, "skipped", "the item's text is not the edited one (superseded)")
            text = embedding_text(item)
        # No transaction (or connection) held while the model answers.
        try:
            (vector,) = self.embedder.embed_documents([text])
        except ModelOutputRejected as error:
            # The old vector still serves search; the edit itself is kept.
            log.warning("item %s: the edited text could not be embedded: %s", item.id, error)
            return store.Outcome(item.id, "skipped", "the edited text could not be embedded")
        with connection_scope() as connection:
            # Write only if the text is still the one embedded (row lock: a concurrent edit waits).
            current = connection.execute(select(items).where(items.c.id == item.id).with_for_update()).first()
            if current is None or current.status != ItemStatus.ready or text_sha256(current) != event.text_sha256:
                return store.Outcome(item.id, "skipped", "the item changed while it was embedded")
            connection.execute(
                update(items)
                .where(items.c.id == item.id)
                .values(embedding=vector, embedding_model=self.embedder.model)
            )
        log.info("re-embedded item %s after an edit", item.id)
        return store.Outcome(item.id, "ready", extra={"model": self.embedder.model, "reembedded": True})

    def _edit_visible(self, connection: Connection, item: Row, expected: str) -> Row | None:
        """The API publishes before it commits: give the edit's commit READY_WAIT_S to show. The item as
        re-read once its text is the edited one; None if it never was (or the item went away)."""
        deadline = time.monotonic() + store.READY_WAIT_S
        while text_sha256(item) != expected:
            if time.monotonic() >= deadline:
                return None
            time.sleep(store.READY_POLL_S)
            item = store.get_item(connection, item.id)
            if item is None:
                return None
        return item
