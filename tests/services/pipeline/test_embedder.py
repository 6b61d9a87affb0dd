"""Embedder: our Voyage client and the real voyageai SDK against a fake /v1/embeddings on 127.0.0.1
(base64 float32 answers, as the SDK asks for): same wire protocol, request limits, transient vs
permanent failures, idempotency."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import voyageai

from services.core.ai.local import LocalEmbedder
from services.core.ai.voyage import (
    MAX_TEXTS_PER_REQUEST,
    EmbeddingDimensionMismatch,
    VoyageEmbedder,
    VoyageUnavailable,
    estimate_tokens,
    request_batches,
)
from services.core.contracts import ImageAnalyzed
from services.core.models import ItemStatus, Stage
from services.core.pipeline_store import NotReadyYet
from tests.services.pipeline.conftest import deliver_concurrently, load_item, make_item, pipeline_event, worked_once


def vector_for(index: int, dimension: int) -> np.ndarray:
    vector = np.zeros(dimension, dtype="<f4")
    vector[index % dimension] = 0.6
    vector[(index + 1) % dimension] = 0.8
    return vector


def embeddings_answer(dimension: int = 1024):
    """A Voyage answer with one base64 little-endian float32 vector per input text."""

    def body(request: dict) -> dict:
        return {
            "object": "list",
            "data": [
                {
                    "object": "embedding",
                    "index": i,
                    "embedding": base64.b64encode(vector_for(i, dimension).tobytes()).decode(),
                }
                for i in range(len(request["input"]))
            ],
            "model": request["model"],
            "usage": {"total_tokens": 7 * len(request["input"])},
        }

    return body


@pytest.fixture
def voyage_settings(env, fake_api):
    return env.model_copy(update={"voyage_base_url": fake_api.url + "/v1", "embedding_max_retries": 1})


@pytest.fixture
def voyage(voyage_settings):
    return VoyageEmbedder(voyage_settings, "pa-test-key")


@pytest.fixture
def embedder_for(publisher):
    from services.embedder.logic import ItemEmbedder

    return lambda model: ItemEmbedder(embedder=model, publisher=publisher)


def analyzed_item(owner: str, **values):
    values = {
        "status": ItemStatus.analyzed,
        "title": "Red kite",
        "description": "A red kite over a beach.",
        "category": "nature",
        "tags": ["kite", "beach"],
        "colors": ["red", "blue"],
        **values,
    }
    return make_item(owner, **values)


def event_for(item) -> ImageAnalyzed:
    return ImageAnalyzed(item_id=item.id, owner_id=item.owner_id, analysis_model="claude-x")


def test_voyage_embedding_is_stored_and_the_item_ready(voyage, embedder_for, fake_api, publisher, owner, env):
    from services.core.item_text import embedding_text

    fake_api.script((200, embeddings_answer()))
    item = analyzed_item(owner)

    outcome = embedder_for(voyage).run(event_for(item))

    assert outcome.result == "ready"
    stored = load_item(item.id)
    assert (stored.status, stored.embedding_model) == (ItemStatus.ready, env.embedding_model)
    assert np.allclose(stored.embedding, vector_for(0, 1024))
    (event,) = publisher.details
    assert (event.DETAIL_TYPE, event.embedding_model) == ("ImageReady", env.embedding_model)

    (request,) = fake_api.requests
    assert request["path"] == "/v1/embeddings"
    assert fake_api.api_key(request) == "pa-test-key"
    body = request["json"]
    assert body["input"] == [embedding_text(item)]
    assert "Red kite" in body["input"][0] and "Tags: kite, beach" in body["input"][0]
    assert (body["model"], body["input_type"], body["output_dimension"]) == (env.embedding_model, "document", 1024)
    assert body["encoding_format"] == "base64"


def test_our_request_is_the_sdks_request_and_both_read_the_fakes_answer(voyage, voyage_settings, fake_api):
    """The real voyageai SDK and our client against the same fake: same path, key header and body."""
    fake_api.script((200, embeddings_answer()))
    sdk = voyageai.Client(api_key="pa-test-key", base_url=voyage_settings.voyage_base_url, max_retries=1)
    sdk_result = sdk.embed(["a red kite"], model=voyage.model, input_type="query", output_dimension=voyage.dimension)
    ours = voyage.embed_query("a red kite")

    sdk_request, our_request = fake_api.requests
    assert sdk_request["path"] == our_request["path"] == "/v1/embeddings"
    assert fake_api.api_key(sdk_request) == fake_api.api_key(our_request) == "pa-test-key"
    sdk_body = {k: v for k, v in sdk_request["json"].items() if v is not None}
    assert our_request["json"] == sdk_body
    assert np.allclose(sdk_result.embeddings[0], ours)


def test_queries_use_the_query_input_type(voyage, fake_api):
    fake_api.script((200, embeddings_answer()))
    assert np.allclose(voyage.embed_query("kites"), vector_for(0, 1024))
    assert fake_api.requests[0]["json"]["input_type"] == "query"


def test_rate_limit_then_success_is_retried(voyage, embedder_for, fake_api, owner):
    fake_api.script((429, {"detail": "rate limited"}), (200, embeddings_answer()))
    item = analyzed_item(owner)
    assert embedder_for(voyage).run(event_for(item)).result == "ready"
    assert len(fake_api.requests) == 2


def test_repeated_server_errors_raise_and_leave_the_item_for_a_retry(voyage, embedder_for, fake_api, publisher, owner):
    fake_api.script((503, {"detail": "overloaded"}))
    item = analyzed_item(owner)
    with pytest.raises(VoyageUnavailable, match="503"):
        embedder_for(voyage).run(event_for(item))
    assert len(fake_api.requests) == 2  # one attempt and embedding_max_retries=1 retry
    assert load_item(item.id).status == ItemStatus.analyzed
    assert publisher.details == []


def test_invalid_request_fails_the_item_with_a_reason(voyage, embedder_for, fake_api, publisher, owner):
    fake_api.script((400, {"detail": "Input text is malformed"}))
    item = analyzed_item(owner)
    assert embedder_for(voyage).run(event_for(item)).result == "failed"
    item = load_item(item.id)
    assert (item.status, item.failed_stage) == (ItemStatus.failed, Stage.embed)
    assert "Voyage rejected the request" in item.failure_reason and "malformed" in item.failure_reason
    assert [e.DETAIL_TYPE for e in publisher.details] == ["ItemFailed"]


def test_a_vector_of_the_wrong_size_is_a_configuration_error_not_a_stored_vector(voyage, embedder_for, fake_api, owner):
    fake_api.script((200, embeddings_answer(dimension=512)))
    item = analyzed_item(owner)
    with pytest.raises(EmbeddingDimensionMismatch, match="returned 512 dimensions; the database expects 1024"):
        embedder_for(voyage).run(event_for(item))
    assert load_item(item.id).status == ItemStatus.analyzed


def test_a_flexible_model_refuses_an_unsupported_dimension(env):
    with pytest.raises(EmbeddingDimensionMismatch, match="supports output dimensions"):
        VoyageEmbedder(env.model_copy(update={"embedding_model": "voyage-3.5", "embedding_dimension": 1000}), "k")


def test_fixed_dimension_models_are_not_sent_output_dimension(env, fake_api):
    settings = env.model_copy(update={"voyage_base_url": fake_api.url + "/v1", "embedding_model": "voyage-3"})
    fake_api.script((200, embeddings_answer()))
    VoyageEmbedder(settings, "k").embed_documents(["a"])
    assert fake_api.requests[0]["json"].get("output_dimension") is None


def test_requests_stay_within_voyages_limits(voyage, fake_api):
    fake_api.script((200, embeddings_answer()))
    vectors = voyage.embed_documents([f"text {i}" for i in range(2 * MAX_TEXTS_PER_REQUEST + 5)])
    assert len(vectors) == 2005
    assert [len(r["json"]["input"]) for r in fake_api.requests] == [1000, 1000, 5]


def test_request_batches_respect_the_token_budget():
    long_text = "x" * 3000  # ~1000 estimated tokens
    assert estimate_tokens(long_text) == 1000
    batches = list(request_batches([long_text] * 25, max_tokens=10_000))
    assert [len(b) for b in batches] == [10, 10, 5]
    assert list(request_batches([])) == []


def test_event_ahead_of_the_database_is_retried_not_dropped(embedder_for, owner):
    item = make_item(owner, status=ItemStatus.processed)
    with pytest.raises(NotReadyYet):
        embedder_for(LocalEmbedder(1024)).run(event_for(item))


def test_concurrent_and_repeated_deliveries_embed_once(voyage, embedder_for, fake_api, publisher, owner):
    fake_api.script((200, embeddings_answer()))
    item = analyzed_item(owner)
    embedder = embedder_for(voyage)
    results = deliver_concurrently(lambda: embedder.run(event_for(item)))
    assert worked_once(results, "ready"), results
    assert embedder.run(event_for(item)).result == "skipped"  # and once more, later
    assert len(fake_api.requests) == 1
    assert len(publisher.of("ImageReady")) == 1


def test_handler_without_a_key_uses_the_local_embedder(env, owner):
    from services.core.ai.local import LOCAL_EMBEDDING_MODEL
    from services.embedder.handler import handler

    item = analyzed_item(owner)
    assert handler(pipeline_event(event_for(item)), None)["result"] == "ready"
    stored = load_item(item.id)
    assert stored.embedding_model == LOCAL_EMBEDDING_MODEL
    assert np.allclose(stored.embedding, LocalEmbedder(1024).embed_query(_text(stored)), atol=1e-6)


def test_handler_with_a_key_uses_voyage(env, fake_api, owner, monkeypatch):
    from services.core.settings import get_settings
    from services.embedder.handler import handler

    monkeypatch.setenv("VOYAGE_API_KEY", "pa-from-env")
    monkeypatch.setenv("COLLECTIONS_VOYAGE_BASE_URL", fake_api.url + "/v1")
    get_settings.cache_clear()
    try:
        fake_api.script((200, embeddings_answer()))
        item = analyzed_item(owner)
        assert handler(pipeline_event(event_for(item)), None)["result"] == "ready"
        assert fake_api.api_key(fake_api.requests[0]) == "pa-from-env"
    finally:
        monkeypatch.delenv("VOYAGE_API_KEY")
        monkeypatch.delenv("COLLECTIONS_VOYAGE_BASE_URL")
        get_settings.cache_clear()


def _text(item) -> str:
    from services.core.item_text import embedding_text

    return embedding_text(item)
