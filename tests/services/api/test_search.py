"""Semantic search and similar items on controlled vectors: exact ranking, filters, k, visibility."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.api.deps import get_embedder
from services.core.ai.local import LocalEmbedder
from services.core.settings import get_settings
from tests.services.api.conftest import axis_vector


class FixedEmbedder:
    """The embedder port with a query vector the test chooses."""

    model = "fixed-test-vector"

    def __init__(self, vector: list[float]):
        self.vector = vector
        self.dimension = len(vector)
        self.queries: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.vector for _ in texts]

    def embed_query(self, text: str) -> list[float]:
        self.queries.append(text)
        return self.vector


@pytest.fixture(autouse=True, params=["exact", "hnsw"])
def search_plan(request, monkeypatch):
    """Every search test runs on both plans: exact distances over the caller's candidates, and the
    HNSW index scan that large collections take (forced here by a threshold of 0)."""
    from services.api import queries

    monkeypatch.setattr(queries, "EXACT_SEARCH_MAX_CANDIDATES", 10_000 if request.param == "exact" else 0)
    return request.param


@pytest.fixture
def fixed_query(app):
    embedder = FixedEmbedder(axis_vector(1.0, 0.0))
    app.dependency_overrides[get_embedder] = lambda: embedder
    yield embedder
    app.dependency_overrides.pop(get_embedder, None)


@pytest.fixture(scope="module")
def searcher(sign):
    owner = f"searcher-{uuid.uuid4().hex[:8]}"
    return owner, {"Authorization": f"Bearer {sign(sub=owner, username=owner)}"}


def _cosine_distance(a: list[float], b: list[float]) -> float:
    return 1.0 - sum(x * y for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def vectors(searcher, make_item, alice):
    owner, _ = searcher
    base = datetime(2026, 3, 1, tzinfo=UTC)
    specs = {
        "A": (axis_vector(1.0, 0.1), "animal", ["cat"], 0),
        "B": (axis_vector(1.0, 0.5), "food", ["cat"], 1),
        "C": (axis_vector(1.0, 1.0), "animal", ["dog"], 2),
        "D": (axis_vector(0.0, 1.0), "animal", ["cat"], 3),
        "E": (axis_vector(-1.0, 0.2), "food", ["dog"], 4),
    }
    ids, embeddings = {}, {}
    for name, (vector, category, tags, day) in specs.items():
        ids[name] = str(
            make_item(owner, embedding=vector, category=category, tags=tags, created_at=base + timedelta(days=day))
        )
        embeddings[name] = vector
    exact = axis_vector(1.0, 0.0)  # closer than A, but never a result:
    ids["not_ready"] = str(make_item(owner, status="analyzed", embedding=exact))
    ids["deleted"] = str(make_item(owner, status="deleted", embedding=exact))
    ids["alices"] = str(make_item(alice.sub, embedding=exact))
    return ids, embeddings


def _search(client, headers, **params):
    response = client.get("/search", headers=headers, params={"q": "anything", **params})
    assert response.status_code == 200, response.text
    return response.json()


def test_ranking_is_by_cosine_distance(client, searcher, vectors, fixed_query):
    ids, embeddings = vectors
    body = _search(client, searcher[1], q="cats please")
    assert [hit["id"] for hit in body["items"]] == [ids[n] for n in "ABCDE"]
    for hit, name in zip(body["items"], "ABCDE", strict=True):
        assert hit["distance"] == pytest.approx(_cosine_distance(embeddings[name], fixed_query.vector), abs=1e-5)
    assert body["model"] == "fixed-test-vector"
    assert fixed_query.queries == ["cats please"]


def test_k_limits_the_results(client, searcher, vectors, fixed_query):
    ids, _ = vectors
    assert [h["id"] for h in _search(client, searcher[1], k=2)["items"]] == [ids["A"], ids["B"]]


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"category": "animal"}, "ACD"),
        ({"tag": "cat"}, "ABD"),
        ({"tag": "cat", "category": "animal"}, "AD"),
        ({"created_after": "2026-03-02T00:00:00Z", "created_before": "2026-03-04T00:00:00Z"}, "BC"),
        ({"category": "animal", "k": 1}, "A"),
        ({"category": "nothing"}, ""),
    ],
)
def test_filters_compose_with_ranking(client, searcher, vectors, fixed_query, params, expected):
    ids, _ = vectors
    assert [h["id"] for h in _search(client, searcher[1], **params)["items"]] == [ids[n] for n in expected]


def test_similar_ranks_neighbours_and_excludes_the_item(client, searcher, vectors):
    ids, embeddings = vectors
    response = client.get(f"/items/{ids['A']}/similar", headers=searcher[1], params={"k": 10})
    assert response.status_code == 200, response.text
    hits = response.json()["items"]
    assert [h["id"] for h in hits] == [ids[n] for n in "BCDE"]
    assert hits[0]["distance"] == pytest.approx(_cosine_distance(embeddings["A"], embeddings["B"]), abs=1e-5)


def test_similar_with_filters_and_k(client, searcher, vectors):
    ids, _ = vectors
    response = client.get(f"/items/{ids['A']}/similar", headers=searcher[1], params={"k": 1, "category": "animal"})
    assert [h["id"] for h in response.json()["items"]] == [ids["C"]]


def test_similar_of_an_item_without_embedding_is_409(client, searcher, vectors):
    ids, _ = vectors
    response = client.get(f"/items/{ids['not_ready']}/similar", headers=searcher[1])
    assert response.status_code == 409 and "only ready items" in response.json()["error"]["message"]


def test_similar_of_a_deleted_item_is_404(client, searcher, vectors):
    ids, _ = vectors
    assert client.get(f"/items/{ids['deleted']}/similar", headers=searcher[1]).status_code == 404


def test_local_embedder_finds_the_matching_description(client, sign, make_item):
    """No stub: the real port (the local deterministic embedder, as without a Voyage key)."""
    owner = f"words-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {sign(sub=owner, username=owner)}"}
    embedder = LocalEmbedder(get_settings().embedding_dimension)
    texts = {
        "bike": "a red bicycle leaning against a brick wall",
        "ramen": "a bowl of ramen with egg and spring onions",
        "beach": "sunset over a quiet beach with palm trees",
    }
    ids = {name: str(make_item(owner, embedding=embedder.embed_query(t), title=t)) for name, t in texts.items()}
    body = _search(client, headers, q="red bicycle", k=3)
    assert body["items"][0]["id"] == ids["bike"]
    assert body["model"] == embedder.model
    assert _search(client, headers, q="bowl of ramen", k=1)["items"][0]["id"] == ids["ramen"]


@pytest.mark.parametrize(
    "params, fragment",
    [
        ({"k": 0}, "k"),
        ({"k": -3}, "k"),
        ({"k": 101}, "at most 100"),
        ({"k": 10**30}, "k"),
        ({"q": ""}, "q must not be empty"),
        ({"q": "   "}, "q must not be empty"),
        ({"q": "x" * 501}, "at most 500"),
        ({"q": "a\x00b"}, "NUL"),
        ({"tag": ["t"] * 11}, "tag"),
    ],
)
def test_bad_search_parameters_are_422(client, searcher, params, fragment):
    response = client.get("/search", headers=searcher[1], params={"q": "cats", **params})
    assert response.status_code == 422, response.text
    assert fragment in response.json()["error"]["message"]


def test_search_requires_q(client, searcher):
    response = client.get("/search", headers=searcher[1])
    assert response.status_code == 422 and "q" in response.json()["error"]["message"]


def test_a_selective_filter_takes_the_exact_plan_on_a_large_collection(
    client, searcher, vectors, fixed_query, monkeypatch
):
    """The plan follows the candidates after filters, not the collection's size: with room for 3
    exact candidates, the searcher's 5 items take HNSW, a category of 2 takes exact distances,
    and both answer exactly (neither sets anything on the session: see test_pooler.py)."""
    from services.api import queries
    from services.core.database import session_scope

    monkeypatch.setattr(queries, "EXACT_SEARCH_MAX_CANDIDATES", 3)
    owner, headers = searcher
    with session_scope() as session:
        assert queries.search_plan(session, owner, queries.ItemFilters()) == "hnsw"
        assert queries.search_plan(session, owner, queries.ItemFilters(category="food")) == "exact"
        assert queries.search_plan(session, owner, queries.ItemFilters(tags=("cat",))) == "exact"  # A, B, D
        assert queries.search_plan(session, owner, queries.ItemFilters(tags=("dog",), category="animal")) == "exact"
    ids, _ = vectors
    assert [h["id"] for h in _search(client, headers, category="food")["items"]] == [ids["B"], ids["E"]]
    assert [h["id"] for h in _search(client, headers)["items"]] == [ids[n] for n in "ABCDE"]


def test_a_content_filter_keeps_exact_search_for_more_candidates_than_an_owner_or_date_filter(
    searcher, vectors, monkeypatch
):
    """A category, tag or text filter correlates with the embedding, so HNSW scans fare worse under
    it: its exact bound is 1.5 times the plain one (2 → 3 here); a date filter keeps the plain bound."""
    from services.api import queries
    from services.core.database import session_scope

    monkeypatch.setattr(queries, "EXACT_SEARCH_MAX_CANDIDATES", 2)
    owner, _ = searcher
    after = datetime(2026, 3, 2, tzinfo=UTC)
    with session_scope() as session:
        assert queries.search_plan(session, owner, queries.ItemFilters(category="animal")) == "exact"  # 3
        assert queries.search_plan(session, owner, queries.ItemFilters(tags=("cat",))) == "exact"  # 3
        assert queries.search_plan(session, owner, queries.ItemFilters(created_after=after)) == "hnsw"  # 4
        assert queries.candidate_count(session, owner, queries.ItemFilters(created_after=after)) == 3  # bound + 1


def test_candidate_count_applies_every_filter_and_stops_at_the_bound(searcher, vectors, monkeypatch):
    from services.api import queries
    from services.core.database import session_scope

    monkeypatch.setattr(queries, "EXACT_SEARCH_MAX_CANDIDATES", 10_000)
    owner, _ = searcher
    ids, _ = vectors
    after = datetime(2026, 3, 2, tzinfo=UTC)
    with session_scope() as session:
        assert queries.candidate_count(session, owner, queries.ItemFilters()) == 5  # ready with a vector only
        assert queries.candidate_count(session, owner, queries.ItemFilters(category="animal")) == 3
        assert queries.candidate_count(session, owner, queries.ItemFilters(created_after=after)) == 4
        assert queries.candidate_count(session, owner, queries.ItemFilters(), exclude=uuid.UUID(ids["A"])) == 4
        monkeypatch.setattr(queries, "EXACT_SEARCH_MAX_CANDIDATES", 1)
        assert queries.candidate_count(session, owner, queries.ItemFilters()) == 2  # bounded: bound + 1
