"""Two users: nothing of Alice's is visible, editable, deletable, retryable or searchable by Bob,
and a 404 for her item looks exactly like a 404 for an item that does not exist."""

from __future__ import annotations

import uuid

import pytest

from services.api.deps import get_embedder
from services.core.database import session_scope
from services.core.models import Item, ItemStatus
from tests.services.api.conftest import axis_vector
from tests.services.api.test_search import FixedEmbedder

SECRET_TITLE = "alices-private-sunset"


@pytest.fixture(scope="module")
def alices(alice, make_item):
    return {
        "ready": make_item(alice.sub, status="ready", embedding=axis_vector(1.0), title=SECRET_TITLE, tags=["secret"]),
        "failed": make_item(alice.sub, status="failed", failed_stage="process", title=SECRET_TITLE),
        "pending": make_item(alice.sub, status="pending", title=SECRET_TITLE),
    }


@pytest.fixture
def query_is_alices_vector(app):
    app.dependency_overrides[get_embedder] = lambda: FixedEmbedder(axis_vector(1.0))
    yield
    app.dependency_overrides.pop(get_embedder, None)


def _requests(item_id):
    return [
        ("GET", f"/items/{item_id}", None),
        ("PATCH", f"/items/{item_id}", {"title": "mine now"}),
        ("DELETE", f"/items/{item_id}", None),
        ("POST", f"/items/{item_id}/retry", None),
        ("GET", f"/items/{item_id}/similar", None),
    ]


@pytest.mark.parametrize("which", ["ready", "failed", "pending"])
def test_bob_gets_404_on_every_item_route(client, bob, alices, which):
    for method, path, body in _requests(alices[which]):
        response = client.request(method, path, headers=bob.headers, json=body)
        assert response.status_code == 404, (method, path, response.text)


def test_404_does_not_reveal_existence(client, bob, alices):
    for (method, path, body), (_, missing_path, _) in zip(
        _requests(alices["ready"]), _requests(uuid.uuid4()), strict=True
    ):
        theirs = client.request(method, path, headers=bob.headers, json=body)
        nobodys = client.request(method, missing_path, headers=bob.headers, json=body)
        assert (theirs.status_code, theirs.json()) == (nobodys.status_code, nobodys.json())


def test_alices_items_are_untouched_after_bobs_attempts(client, bob, alice, alices):
    for which in alices:
        for method, path, body in _requests(alices[which]):
            client.request(method, path, headers=bob.headers, json=body)
    with session_scope() as session:
        states = {w: (session.get(Item, i).status, session.get(Item, i).title) for w, i in alices.items()}
    assert states == {
        "ready": (ItemStatus.ready, SECRET_TITLE),
        "failed": (ItemStatus.failed, SECRET_TITLE),
        "pending": (ItemStatus.pending, SECRET_TITLE),
    }
    # ...and Alice still sees all of them.
    assert client.get(f"/items/{alices['ready']}", headers=alice.headers).status_code == 200


@pytest.mark.parametrize(
    "params", [{}, {"q": SECRET_TITLE}, {"tag": "secret"}, {"status": "failed"}, {"status": "pending"}]
)
def test_bobs_list_never_shows_alices_items(client, bob, alice, alices, params):
    response = client.get("/items", headers=bob.headers, params={"limit": 100, **params})
    assert response.status_code == 200
    assert not {i["id"] for i in response.json()["items"]} & {str(i) for i in alices.values()}
    # Control: the same filters do find them for Alice.
    mine = client.get("/items", headers=alice.headers, params={"limit": 100, **params}).json()["items"]
    assert {i["id"] for i in mine} & {str(i) for i in alices.values()}


def test_bobs_search_never_finds_alices_items(client, bob, alice, alices, query_is_alices_vector):
    bobs = client.get("/search", headers=bob.headers, params={"q": SECRET_TITLE, "k": 100}).json()["items"]
    assert str(alices["ready"]) not in [h["id"] for h in bobs]
    hers = client.get("/search", headers=alice.headers, params={"q": SECRET_TITLE, "k": 100}).json()["items"]
    assert hers[0]["id"] == str(alices["ready"]) and hers[0]["distance"] == pytest.approx(0.0, abs=1e-6)


def test_bobs_similar_never_returns_alices_items(client, bob, make_item, alices):
    bobs_item = make_item(bob.sub, status="ready", embedding=axis_vector(1.0, 0.01))
    hits = client.get(f"/items/{bobs_item}/similar", headers=bob.headers, params={"k": 100}).json()["items"]
    assert str(alices["ready"]) not in [h["id"] for h in hits]
