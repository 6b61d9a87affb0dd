"""Re-embedding after a model change: batches committed one by one, so an interrupted run resumes."""

from __future__ import annotations

import pytest

from services.core.ai.local import LocalEmbedder
from services.core.models import ItemStatus
from tests.services.pipeline.conftest import load_item, make_item


class NewModel(LocalEmbedder):
    """The local embedder under another model name; can be told to break after some calls."""

    model = "voyage-new"

    def __init__(self, fail_after_calls: int | None = None):
        super().__init__(1024)
        self.calls: list[int] = []
        self.fail_after_calls = fail_after_calls

    def embed_documents(self, texts):
        if self.fail_after_calls is not None and len(self.calls) >= self.fail_after_calls:
            raise ConnectionError("Voyage went away")
        self.calls.append(len(texts))
        return super().embed_documents(texts)


@pytest.fixture(scope="module")
def seeded(env):
    old = [
        make_item("reembed-owner", f"{i}.jpg", status=ItemStatus.ready, title=f"item {i}", embedding_model="voyage-old")
        for i in range(7)
    ]
    current = make_item("reembed-owner", "current.jpg", status=ItemStatus.ready, embedding_model="voyage-new")
    not_ready = make_item("reembed-owner", "analyzed.jpg", status=ItemStatus.analyzed, embedding_model=None)
    return old, current, not_ready


def test_an_interrupted_run_keeps_its_finished_batches_and_a_rerun_resumes(seeded):
    from services.embedder.reembed import count_stale, reembed

    old, current, not_ready = seeded
    assert count_stale("voyage-new") == 7

    broken = NewModel(fail_after_calls=2)
    with pytest.raises(ConnectionError):
        reembed(broken, batch_size=3)
    assert broken.calls == [3, 3]
    assert count_stale("voyage-new") == 1  # two batches of three were committed

    report = reembed(NewModel(), batch_size=3)
    assert (report.reembedded, report.batches, report.remaining) == (1, 1, 0)

    for item in old:
        stored = load_item(item.id)
        assert stored.embedding_model == "voyage-new"
        assert stored.embedding is not None
    assert load_item(current.id).embedding is None  # already current: untouched
    assert load_item(not_ready.id).embedding_model is None  # the embedder's job, not reembed's


def test_all_reembeds_every_ready_item_and_limit_stops_early(seeded):
    from services.embedder.reembed import reembed

    model = NewModel()
    assert reembed(model, batch_size=5, only_stale=False, limit=4).reembedded == 4
    assert model.calls == [4]
    everything = reembed(NewModel(), batch_size=5, only_stale=False)
    assert (everything.reembedded, everything.batches) == (8, 2)


def test_run_returns_a_plain_report(seeded, monkeypatch):
    from services.embedder import reembed

    monkeypatch.setattr(reembed, "get_embedder", lambda: NewModel())
    assert reembed.run(batch_size=10) == {"model": "voyage-new", "reembedded": 0, "batches": 0, "remaining": 0}


@pytest.mark.parametrize("batch_size", [0, 1001])
def test_batch_size_outside_voyages_limits_is_refused(env, batch_size):
    from services.embedder.reembed import reembed

    with pytest.raises(ValueError, match="batch_size must be between 1 and 1000"):
        reembed(NewModel(), batch_size=batch_size)
