"""Items: cursor pagination, filters, detail with presigned URLs, user edits and soft delete."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from services.core.database import session_scope
from services.core.models import Item, ItemStatus


@pytest.fixture(scope="module")
def owner() -> str:
    """A user of this module's own, so other tests' items never show up in the lists here."""
    return f"lister-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def owner_headers(owner, sign):
    return {"Authorization": f"Bearer {sign(sub=owner, username=owner)}"}


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def _walk(client, headers, **params) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        response = client.get("/items", headers=headers, params={**params, **({"cursor": cursor} if cursor else {})})
        pages.append(_ids(response))
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return pages


@pytest.fixture(scope="module")
def catalogue(owner, make_item):
    """Ten items of one owner, created a minute apart, with categories, tags and texts to filter on;
    two more share one created_at (the id must break the tie); one deleted."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    ids = {}
    for n in range(10):
        ids[n] = make_item(
            owner,
            status="ready" if n % 2 == 0 else "failed",
            created_at=base + timedelta(minutes=n),
            category="animal" if n < 5 else "food",
            tags=["cat", "cute"] if n % 3 == 0 else ["dog"],
            title=f"Photo number {n}" + (" 100% sure" if n == 7 else ""),
            description="a tabby cat on a sofa" if n == 3 else "nothing special",
            failed_stage="analyze" if n % 2 else None,
        )
    same = base + timedelta(minutes=30)
    ids["tie_a"] = make_item(owner, created_at=same, category="tie")
    ids["tie_b"] = make_item(owner, created_at=same, category="tie")
    ids["deleted"] = make_item(owner, status="deleted", created_at=base + timedelta(minutes=40), deleted_at=same)
    return {k: str(v) for k, v in ids.items()}


def test_pages_walk_every_item_once_newest_first(client, owner_headers, catalogue):
    pages = _walk(client, owner_headers, limit=3)
    assert [len(p) for p in pages] == [3, 3, 3, 3]
    flat = [i for page in pages for i in page]
    ties = sorted([catalogue["tie_a"], catalogue["tie_b"]], reverse=True)  # same created_at: id desc
    assert flat == ties + [catalogue[n] for n in range(9, -1, -1)]


def test_deleted_items_are_invisible(client, owner_headers, catalogue):
    assert catalogue["deleted"] not in [i for p in _walk(client, owner_headers) for i in p]
    response = client.get(f"/items/{catalogue['deleted']}", headers=owner_headers)
    assert response.status_code == 404


def test_default_page_size_comes_from_settings(client, owner_headers, catalogue, monkeypatch):
    from services.core.settings import get_settings

    monkeypatch.setenv("COLLECTIONS_PAGE_SIZE_DEFAULT", "5")
    get_settings.cache_clear()
    try:
        response = client.get("/items", headers=owner_headers)
        assert len(_ids(response)) == 5 and response.json()["next_cursor"]
    finally:
        monkeypatch.delenv("COLLECTIONS_PAGE_SIZE_DEFAULT")
        get_settings.cache_clear()


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"status": "failed"}, [9, 7, 5, 3, 1]),
        ({"category": "food"}, [9, 8, 7, 6, 5]),
        ({"tag": "cat"}, [9, 6, 3, 0]),
        ({"tag": ["cat", "cute"]}, [9, 6, 3, 0]),
        ({"tag": ["cat", "dog"]}, []),
        ({"q": "TABBY"}, [3]),  # description, case-insensitive
        ({"q": "number 4"}, [4]),  # title
        ({"q": "cute"}, [9, 6, 3, 0]),  # tags
        ({"q": "100%"}, [7]),  # % is a literal, not a wildcard
        ({"q": "_"}, []),
        ({"created_after": "2026-01-01T00:05:00Z", "created_before": "2026-01-01T00:08:00Z"}, [7, 6, 5]),
        ({"created_after": "2026-01-01T00:05:00"}, ["tie", 9, 8, 7, 6, 5]),  # naive = UTC
        ({"category": "animal", "status": "ready", "tag": "cat"}, [0]),
    ],
)
def test_filters(client, owner_headers, catalogue, params, expected):
    ids = [i for page in _walk(client, owner_headers, **params) for i in page]
    wanted = []
    for n in expected:
        wanted += sorted([catalogue["tie_a"], catalogue["tie_b"]], reverse=True) if n == "tie" else [catalogue[n]]
    assert ids == wanted


def test_filters_and_pagination_compose(client, owner_headers, catalogue):
    pages = _walk(client, owner_headers, limit=2, category="animal")
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [i for p in pages for i in p] == [catalogue[n] for n in (4, 3, 2, 1, 0)]


@pytest.mark.parametrize(
    "params, status, fragment",
    [
        ({"limit": 0}, 422, "limit"),
        ({"limit": 101}, 422, "at most 100"),
        ({"limit": "ten"}, 422, "limit"),
        ({"cursor": "not-a-cursor"}, 400, "cursor is invalid"),
        ({"cursor": "W10"}, 400, "cursor is invalid"),  # valid base64 JSON, wrong shape
        # ["2020-01-01T00:00:00+00:00", 5]: right shape, a number for the id (was a 500)
        ({"cursor": "WyIyMDIwLTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwgNV0"}, 400, "cursor is invalid"),
        # [5, "00000000-0000-4000-8000-000000000000"]: a number for the time
        ({"cursor": "WzUsICIwMDAwMDAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDAiXQ"}, 400, "cursor is invalid"),
        ({"status": "deleted"}, 422, "status"),
        ({"status": "sideways"}, 422, "status"),
        ({"q": "x" * 501}, 422, "at most 500"),
        ({"q": "nul\x00byte"}, 422, "NUL"),
        ({"category": "c" * 65}, 422, "category"),
        ({"tag": "t" * 65}, 422, "tag"),
        ({"created_after": "yesterday"}, 422, "created_after"),
        ({"created_after": "2026-02-01T00:00:00Z", "created_before": "2026-01-01T00:00:00Z"}, 400, "earlier"),
    ],
)
def test_bad_list_parameters_are_4xx_with_a_message(client, owner_headers, params, status, fragment):
    response = client.get("/items", headers=owner_headers, params=params)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]["message"]


def test_invalid_item_id_is_422(client, owner_headers):
    response = client.get("/items/not-a-uuid", headers=owner_headers)
    assert response.status_code == 422
    assert "item_id" in response.json()["error"]["message"]


def test_unknown_route_and_method_are_json_errors(client, owner_headers):
    missing = client.get("/nothing-here", headers=owner_headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = client.put(f"/items/{uuid.uuid4()}", headers=owner_headers, json={})
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"


# --- detail ---------------------------------------------------------------------------------
def test_detail_has_working_presigned_urls(client, owner, owner_headers, make_item):
    from services.core.storage import Storage

    item_id = make_item(owner, status="ready")
    with session_scope() as session:
        item = session.get(Item, item_id)
        keys = {"original": item.original_key, **item.thumbnail_keys}
    storage = Storage()
    for name, key in keys.items():
        storage.write(key, f"bytes of {name}".encode(), "image/webp")

    detail = client.get(f"/items/{item_id}", headers=owner_headers).json()
    assert set(detail["thumbnail_urls"]) == {"256", "1024"}
    assert httpx.get(detail["original_url"]).content == b"bytes of original"
    assert httpx.get(detail["thumbnail_urls"]["1024"]).content == b"bytes of 1024"
    assert httpx.get(detail["thumbnail_url"]).content == b"bytes of 256"
    assert detail["sha256"] == "ab" * 32 and detail["analysis_model"]


# --- edits ----------------------------------------------------------------------------------
def test_patch_changes_only_what_is_sent_and_marks_user_edited(client, owner, owner_headers, make_item):
    item_id = make_item(owner, title="old title", description="old description", tags=["a"])
    response = client.patch(
        f"/items/{item_id}", headers=owner_headers, json={"title": "  New title ", "tags": ["x", "y", "x", " z "]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["title"] == "New title" and body["tags"] == ["x", "y", "z"]
    assert body["description"] == "old description" and body["user_edited"] is True
    with session_scope() as session:
        stored = session.get(Item, item_id)
        assert (stored.title, stored.tags, stored.user_edited) == ("New title", ["x", "y", "z"], True)


def test_patch_null_title_clears_it(client, owner, owner_headers, make_item):
    item_id = make_item(owner, title="to be cleared")
    assert client.patch(f"/items/{item_id}", headers=owner_headers, json={"title": None}).json()["title"] is None


@pytest.mark.parametrize(
    "body, status, fragment",
    [
        ({"title": "x", "owner_id": "someone"}, 422, "owner_id"),  # unknown (and forbidden) field
        ({"status": "ready"}, 422, "status"),
        ({}, 422, "nothing to change"),
        ({"tags": None}, 422, "tags cannot be null"),
        ({"title": "t" * 301}, 422, "title"),
        ({"tags": ["ok", ""]}, 422, "tags"),
        ({"tags": ["t"] * 51}, 422, "tags"),
        ({"title": "nul\x00"}, 422, "NUL"),
        ({"title": 5}, 422, "title"),
    ],
)
def test_bad_patches_are_refused(client, owner, owner_headers, make_item, body, status, fragment):
    item_id = make_item(owner, title="unchanged")
    response = client.patch(f"/items/{item_id}", headers=owner_headers, json=body)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]["message"]
    with session_scope() as session:
        assert session.get(Item, item_id).title == "unchanged"


def test_malformed_json_is_400(client, owner, owner_headers, make_item):
    item_id = make_item(owner)
    response = client.patch(
        f"/items/{item_id}", headers={**owner_headers, "Content-Type": "application/json"}, content=b'{"title": '
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "malformed_json"


def test_non_json_body_is_415(client, owner, owner_headers, make_item):
    item_id = make_item(owner)
    response = client.patch(
        f"/items/{item_id}", headers={**owner_headers, "Content-Type": "text/plain"}, content=b"title=x"
    )
    assert response.status_code == 415 and "application/json" in response.json()["error"]["message"]


# --- soft delete ----------------------------------------------------------------------------
def test_delete_is_soft_and_hides_the_item(client, owner, owner_headers, make_item):
    item_id = make_item(owner)
    assert client.delete(f"/items/{item_id}", headers=owner_headers).status_code == 204
    with session_scope() as session:
        row = session.execute(select(Item.status, Item.deleted_at).where(Item.id == item_id)).one()
        assert row.status is ItemStatus.deleted and row.deleted_at is not None
    assert client.get(f"/items/{item_id}", headers=owner_headers).status_code == 404
    assert client.delete(f"/items/{item_id}", headers=owner_headers).status_code == 404
    assert client.patch(f"/items/{item_id}", headers=owner_headers, json={"title": "x"}).status_code == 404


# --- edits reach search -------------------------------------------------------------------------
class _Publisher:
    def __init__(self, fail: bool = False):
        self.details, self.fail = [], fail

    def publish(self, details):
        from services.core.events import PublishError

        if self.fail:
            raise PublishError([{"ErrorCode": "InternalFailure", "ErrorMessage": "bus down"}])
        self.details.extend(details)


@pytest.fixture
def recorded(app):
    from services.api.deps import get_publisher

    publisher = _Publisher()
    app.dependency_overrides[get_publisher] = lambda: publisher
    yield publisher
    app.dependency_overrides.pop(get_publisher)


@pytest.mark.parametrize(
    "status, change, published",
    [
        ("ready", {"tags": ["a", "holiday"]}, True),
        ("analyzed", {"title": "new title"}, True),
        ("ready", {"tags": ["a"]}, False),  # nothing the embedding stands for changed
        ("pending", {"tags": ["holiday"]}, False),  # embedded later anyway, with the edit
        ("failed", {"description": "x"}, False),
    ],
)
def test_an_edit_of_a_searchable_item_asks_for_a_new_embedding(
    client, owner, owner_headers, make_item, recorded, status, change, published
):
    from services.core.item_text import text_sha256

    item_id = make_item(owner, status=status, tags=["a"])
    assert client.patch(f"/items/{item_id}", headers=owner_headers, json=change).status_code == 200
    with session_scope() as session:
        item = session.get(Item, item_id)
        expected = [("ItemEdited", item_id, text_sha256(item))] if published else []
    assert [(d.DETAIL_TYPE, d.item_id, d.text_sha256) for d in recorded.details] == expected


def test_an_edit_that_cannot_reach_search_is_not_saved(app, client, owner, owner_headers, make_item):
    from services.api.deps import get_publisher

    item_id = make_item(owner, status="ready", title="before")
    app.dependency_overrides[get_publisher] = lambda: _Publisher(fail=True)
    try:
        response = client.patch(f"/items/{item_id}", headers=owner_headers, json={"title": "after"})
    finally:
        app.dependency_overrides.pop(get_publisher)
    assert response.status_code == 503 and response.json()["error"]["code"] == "unavailable"
    assert client.get(f"/items/{item_id}", headers=owner_headers).json()["title"] == "before"


@pytest.mark.parametrize(
    "stage, stored, shown",
    [
        (
            "analyze",
            "Claude answered 400: invalid_request_error: messages.0.content.1 ...",
            "the image could not be described; retry later",
        ),
        (
            "embed",
            "Voyage rejected the request: {'detail': 'input too long'}",
            "the image could not be indexed for search; retry later",
        ),
        ("process", "unsupported format: BMP; accepted formats are JPEG, PNG, WebP and GIF", None),
    ],
)
def test_failure_reasons_shown_to_users_are_short_and_ours(
    client, owner, owner_headers, make_item, stage, stored, shown
):
    item_id = make_item(owner, status="failed", failed_stage=stage, failure_reason=stored)
    detail = client.get(f"/items/{item_id}", headers=owner_headers).json()
    listed = client.get("/items", headers=owner_headers, params={"status": "failed"}).json()["items"]
    assert detail["failure_reason"] == (shown or stored)
    assert {i["failure_reason"] for i in listed if i["id"] == str(item_id)} == {shown or stored}
    with session_scope() as session:
        assert session.get(Item, item_id).failure_reason == stored  # the full text stays for operators
