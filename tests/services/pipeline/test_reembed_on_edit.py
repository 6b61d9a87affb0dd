"""ItemEdited: the embedder embeds a ready item's edited text again, keeps it ready, and never
writes a vector for text that is no longer the item's."""

from __future__ import annotations

import pytest

from services.core.contracts import ItemEdited
from services.core.models import ItemStatus
from services.core.pipeline_store import NotReadyYet
from tests.services.pipeline.conftest import load_item, make_item


class CountingEmbedder:
    model, dimension = "counting", 1024

    def __init__(self, on_embed=None):
        self.texts: list[str] = []
        self.on_embed = on_embed

    def embed_documents(self, texts):
        self.texts.extend(texts)
        if self.on_embed:
            self.on_embed()
        return [[1.0 / (1 + len(self.texts))] + [0.0] * 1023 for _ in texts]


@pytest.fixture
def reembed(env, publisher):
    from services.embedder.logic import ItemEmbedder

    return lambda embedder: ItemEmbedder(embedder=embedder, publisher=publisher)


def _ready(owner, **values):
    return make_item(
        owner, status=ItemStatus.ready, title="Sun", tags=["sky"], embedding=[1.0] + [0.0] * 1023,
        embedding_model="old", **values,
    )  # fmt: skip


def _edit(item_id, **changes):
    from services.core.database import session_scope
    from services.core.models import Item

    with session_scope() as session:
        item = session.get(Item, item_id)
        for name, value in changes.items():
            setattr(item, name, value)


def _event(item) -> ItemEdited:
    from services.core.item_text import text_sha256

    return ItemEdited(item_id=item.id, owner_id=item.owner_id, text_sha256=text_sha256(item))


def test_the_edited_text_is_embedded_and_the_item_stays_ready(reembed, owner):
    item = _ready(owner)
    _edit(item.id, tags=["sky", "holiday"])
    embedder = CountingEmbedder()
    outcome = reembed(embedder).item_edited(_event(load_item(item.id)))
    assert outcome.result == "ready"
    assert "holiday" in embedder.texts[0]
    after = load_item(item.id)
    assert after.status == ItemStatus.ready and after.embedding_model == "counting"
    assert list(after.embedding)[0] != 1.0


def test_a_superseded_edit_embeds_nothing(reembed, owner, monkeypatch):
    from services.core import pipeline_store

    monkeypatch.setattr(pipeline_store, "READY_WAIT_S", 0.05)
    item = _ready(owner)
    _edit(item.id, tags=["first"])
    stale = _event(load_item(item.id))
    _edit(item.id, tags=["second"])  # a newer edit (with its own event) came first
    embedder = CountingEmbedder()
    assert reembed(embedder).item_edited(stale).result == "skipped"
    assert embedder.texts == [] and load_item(item.id).embedding_model == "old"


def test_an_edit_during_the_model_call_keeps_the_old_vector(reembed, owner):
    item = _ready(owner)
    _edit(item.id, tags=["first"])
    event = _event(load_item(item.id))
    embedder = CountingEmbedder(on_embed=lambda: _edit(item.id, tags=["changed meanwhile"]))
    assert reembed(embedder).item_edited(event).result == "skipped"
    assert load_item(item.id).embedding_model == "old"


def test_an_item_still_being_embedded_is_retried_later(reembed, owner):
    item = make_item(owner, status=ItemStatus.analyzed, title="Sun")
    with pytest.raises(NotReadyYet):
        reembed(CountingEmbedder()).item_edited(_event(item))


def test_another_owners_item_is_skipped(reembed, owner):
    item = _ready(owner)
    event = _event(item).model_copy(update={"owner_id": "someone-else"})
    assert reembed(CountingEmbedder()).item_edited(event).result == "skipped"
