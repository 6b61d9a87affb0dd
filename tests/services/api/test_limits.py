"""Per-user limits: 429 with Retry-After for uploads in flight, uploads per day and searches per
minute, re-embedding edits per hour; per user, exact under concurrency, and refused requests are not
counted."""

from __future__ import annotations

import threading
import uuid

import pytest

from services.core.database import session_scope
from services.core.models import Item, ItemStatus, UsageCounter
from services.core.settings import get_settings


@pytest.fixture
def limits(monkeypatch):
    """limits(**values): set COLLECTIONS_LIMIT_* for this test (0 turns one off)."""

    def _set(pending: int = 0, per_day: int = 0, per_minute: int = 0, reembeds: int = 0, retries: int = 0):
        monkeypatch.setenv("COLLECTIONS_LIMIT_RETRIES_PER_DAY", str(retries))
        monkeypatch.setenv("COLLECTIONS_LIMIT_REEMBEDS_PER_HOUR", str(reembeds))
        monkeypatch.setenv("COLLECTIONS_LIMIT_PENDING_UPLOADS", str(pending))
        monkeypatch.setenv("COLLECTIONS_LIMIT_UPLOADS_PER_DAY", str(per_day))
        monkeypatch.setenv("COLLECTIONS_LIMIT_SEARCHES_PER_MINUTE", str(per_minute))
        get_settings.cache_clear()

    yield _set
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def someone(sign):
    """Headers of a fresh user (a real RS256 token for a new sub), so counters start at zero."""

    def _new() -> tuple[str, dict[str, str]]:
        sub = str(uuid.uuid4())
        return sub, {"Authorization": f"Bearer {sign(sub=sub, username=sub)}"}

    return _new


def _upload(client, headers):
    return client.post("/uploads", headers=headers, json={"filename": "a.png", "content_type": "image/png"})


def _counter(sub: str, kind: str) -> int | None:
    with session_scope() as session:
        row = session.get(UsageCounter, (sub, kind))
        return None if row is None else row.count


def test_uploads_in_flight_are_limited_until_one_is_processed(client, limits, someone):
    limits(pending=2)
    sub, headers = someone()
    first, second = _upload(client, headers), _upload(client, headers)
    assert first.status_code == second.status_code == 201
    refused = _upload(client, headers)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "too_many_requests"
    assert "2 uploads in progress" in refused.json()["error"]["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= get_settings().upload_url_ttl_s
    with session_scope() as session:
        session.get(Item, first.json()["item"]["id"]).status = ItemStatus.processed
    assert _upload(client, headers).status_code == 201


def test_uploads_per_day_are_limited_and_refusals_are_not_counted(client, limits, someone):
    limits(per_day=3)
    sub, headers = someone()
    assert [_upload(client, headers).status_code for _ in range(3)] == [201, 201, 201]
    refused = [_upload(client, headers) for _ in range(2)]
    assert {r.status_code for r in refused} == {429}
    assert 1 <= int(refused[0].headers["retry-after"]) <= 24 * 3600
    assert _counter(sub, "upload") == 3
    other, other_headers = someone()
    assert _upload(client, other_headers).status_code == 201  # per user


def test_searches_per_minute_are_limited(client, limits, someone):
    limits(per_minute=2)
    sub, headers = someone()
    assert [client.get("/search", headers=headers, params={"q": "cat"}).status_code for _ in range(2)] == [200, 200]
    refused = client.get("/search", headers=headers, params={"q": "cat"})
    assert refused.status_code == 429 and "2 searches per minute" in refused.json()["error"]["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert _counter(sub, "search") == 2


def test_edits_that_re_embed_are_limited_and_a_refused_edit_is_not_saved(client, limits, someone, make_item):
    """Each edit of a searchable item's text is a paid Voyage call: PATCH in a loop must not run up
    the bill. Edits that change nothing search sees are free and never refused."""
    limits(reembeds=2)
    sub, headers = someone()
    item_id = make_item(sub, status="ready", title="t0", tags=["a"])

    def patch(body):
        return client.patch(f"/items/{item_id}", headers=headers, json=body)

    assert [patch({"title": f"t{n}"}).status_code for n in (1, 2)] == [200, 200]
    refused = patch({"title": "t3"})
    assert refused.status_code == 429, refused.text
    assert "2 edits per hour" in refused.json()["error"]["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 3600
    assert client.get(f"/items/{item_id}", headers=headers).json()["title"] == "t2"  # the refused edit: not saved
    assert patch({"tags": ["a"]}).status_code == 200  # the same text: nothing to re-embed, not counted
    assert _counter(sub, "reembed") == 2
    pending = make_item(sub, status="pending")
    # Not embedded yet: its first embedding will read the edit, no extra call.
    assert client.patch(f"/items/{pending}", headers=headers, json={"title": "x"}).status_code == 200


def test_retries_are_limited_and_refusals_are_not_counted(client, limits, someone, make_item):
    """A retried analysis is a paid Claude call again: an item that fails the same way every time
    must not become a loop of paid calls."""
    limits(retries=2)
    sub, headers = someone()

    def failed():
        return make_item(sub, status="failed", failed_stage="analyze", failure_reason="-")

    assert [client.post(f"/items/{failed()}/retry", headers=headers).status_code for _ in range(2)] == [200, 200]
    item_id = failed()
    refused = client.post(f"/items/{item_id}/retry", headers=headers)
    assert refused.status_code == 429 and "2 retries per day" in refused.json()["error"]["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 24 * 3600
    assert client.get(f"/items/{item_id}", headers=headers).json()["status"] == "failed"  # still retryable later
    assert _counter(sub, "retry") == 2


def test_zero_turns_a_limit_off(client, limits, someone):
    limits()
    sub, headers = someone()
    assert {_upload(client, headers).status_code for _ in range(5)} == {201}
    assert _counter(sub, "upload") is None


def test_concurrent_uploads_of_one_user_cannot_exceed_the_limit(db_url, limits):
    """Eight requests at once, as eight Lambda instances would send them: exactly the limit wins."""
    from services.api.errors import ApiError
    from services.api.limits import check_uploads

    limits(pending=3)
    settings = get_settings()
    owner = str(uuid.uuid4())
    barrier = threading.Barrier(8)
    results: list[str] = []

    def request():
        barrier.wait()
        try:
            with session_scope() as session:
                check_uploads(session, owner, settings)
                item_id = uuid.uuid4()
                session.add(
                    Item(id=item_id, owner_id=owner, filename="a.png", original_key=f"uploads/{owner}/{item_id}/a.png")
                )
            results.append("created")
        except ApiError as error:
            results.append(str(error.status))

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["429"] * 5 + ["created"] * 3
