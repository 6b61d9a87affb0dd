"""POST /uploads: a pending item plus a presigned POST that really uploads to S3 (moto)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import httpx
import pytest

from services.core.database import session_scope
from services.core.models import Item, ItemStatus
from services.core.settings import get_settings
from services.core.storage import Storage


def _upload(client, user, **body):
    return client.post(
        "/uploads", headers=user.headers, json={"filename": "cat.png", "content_type": "image/png", **body}
    )


def test_upload_creates_a_pending_item_of_the_caller(client, alice):
    response = _upload(client, alice, size=1234)
    assert response.status_code == 201, response.text
    item = response.json()["item"]
    assert item["status"] == "pending" and item["filename"] == "cat.png" and item["bytes"] == 1234
    with session_scope() as session:
        stored = session.get(Item, item["id"])
        assert stored.owner_id == alice.sub and stored.status is ItemStatus.pending
        assert stored.original_key == response.json()["upload"]["key"]
    listed = client.get("/items", headers=alice.headers, params={"status": "pending"}).json()["items"]
    assert item["id"] in [i["id"] for i in listed]


def test_presigned_post_uploads_under_the_callers_prefix(client, alice):
    payload = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    upload = _upload(client, alice, size=len(payload)).json()
    item_id, post = upload["item"]["id"], upload["upload"]
    response = httpx.post(post["url"], data=post["fields"], files={"file": ("cat.png", payload, "image/png")})
    assert response.status_code in (200, 201, 204), response.text
    key = post["key"]
    assert key == f"uploads/{alice.sub}/{item_id}/cat.png"
    stored = Storage().s3.get_object(Bucket=get_settings().bucket, Key=key)
    assert stored["Body"].read() == payload
    assert stored["ContentType"] == "image/png"


def test_policy_pins_prefix_type_size_and_a_short_expiry(client, alice):
    settings = get_settings()
    before = datetime.now(UTC).replace(microsecond=0)
    upload = _upload(client, alice).json()
    item_id, post = upload["item"]["id"], upload["upload"]
    policy = json.loads(base64.b64decode(post["fields"]["policy"]))
    conditions = policy["conditions"]
    assert ["starts-with", "$key", f"uploads/{alice.sub}/{item_id}/"] in conditions
    assert {"key": post["key"]} in conditions  # botocore pins the exact key
    # The exact declared type: the uploader cannot switch to another type at POST time.
    assert ["eq", "$Content-Type", "image/png"] in conditions
    assert not [c for c in conditions if isinstance(c, list) and c[0] == "starts-with" and c[1] == "$Content-Type"]
    assert ["content-length-range", settings.min_upload_bytes, settings.max_upload_bytes] in conditions
    assert {"bucket": settings.bucket} in conditions
    expires = datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    lifetime = (expires - before).total_seconds()
    assert 0 < lifetime <= settings.upload_url_ttl_s + 1
    assert post["expires_in"] == settings.upload_url_ttl_s <= 3600


def test_filename_cannot_escape_the_prefix(client, alice):
    upload = _upload(client, alice, filename="../../bob/secrets/../x y.png").json()
    assert upload["upload"]["key"] == f"uploads/{alice.sub}/{upload['item']['id']}/x-y.png"


def test_declared_size_over_the_limit_is_413(client, alice):
    response = _upload(client, alice, size=get_settings().max_upload_bytes + 1)
    assert response.status_code == 413
    assert response.json()["error"] == {
        "code": "too_large",
        "message": f"size {get_settings().max_upload_bytes + 1} is over the limit of "
        f"{get_settings().max_upload_bytes} bytes",
    }


@pytest.mark.parametrize("declared", ["image/jpeg", "IMAGE/JPEG", " Image/Png ", "image/WEBP", "image/gif"])
def test_the_four_types_are_accepted_in_any_case_and_stored_lowercase(client, alice, declared):
    response = _upload(client, alice, content_type=declared)
    assert response.status_code == 201, response.text
    expected = declared.strip().lower()
    assert response.json()["item"]["content_type"] == expected
    assert response.json()["upload"]["fields"]["Content-Type"] == expected


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"content_type": "text/html"}, "image/jpeg, image/png, image/webp, image/gif"),
        ({"content_type": "image/"}, "must be one of"),
        ({"content_type": "image/svg+xml"}, "must be one of"),
        ({"content_type": "image/x-whatever"}, "must be one of"),
        ({"content_type": "image/jpeg; charset=x"}, "must be one of"),
        ({"content_type": "application/octet-stream"}, "must be one of"),
        ({"size": "100"}, "valid integer"),
        ({"size": 100.0}, "valid integer"),
        ({"size": True}, "valid integer"),
        ({"size": 0}, "size"),
        ({"size": -5}, "size"),
        ({"filename": ""}, "filename"),
        ({"filename": "f" * 256}, "at most 255 characters"),
        ({"filename": ["a.png"]}, "valid string"),
        ({"filename": "a\x00.png"}, "NUL"),
        ({"bucket": "someone-elses"}, "bucket"),  # unknown field
    ],
)
def test_bad_upload_requests_are_422(client, alice, body, fragment):
    response = _upload(client, alice, **body)
    assert response.status_code == 422, response.text
    assert fragment in response.json()["error"]["message"]


def test_missing_fields_are_422(client, alice):
    response = client.post("/uploads", headers=alice.headers, json={"filename": "x.png"})
    assert response.status_code == 422 and "content_type" in response.json()["error"]["message"]


def test_form_body_is_415(client, alice):
    response = client.post("/uploads", headers=alice.headers, data={"filename": "x.png", "content_type": "image/png"})
    assert response.status_code == 415


def test_upload_needs_a_token(client):
    assert client.post("/uploads", json={"filename": "x.png", "content_type": "image/png"}).status_code == 401


def _png(color: tuple[int, int, int], size=(96, 64)) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


class _Recorder:
    def __init__(self):
        self.details = []

    def publish(self, details):
        self.details.extend(details)


def test_replaying_the_form_after_processing_changes_nothing_that_is_served(client, alice):
    """moto accepts the replayed POST (it does not check policies, nor would AWS stop a second use of
    a form within its lifetime): the image processor's refusal is what keeps the item consistent."""
    import hashlib

    from services.core.contracts import S3ObjectCreated
    from services.image_processor.logic import ImageProcessor

    first, second = _png((200, 30, 30)), _png((30, 30, 200))
    created = _upload(client, alice, filename="cat.png", content_type="IMAGE/PNG", size=len(first)).json()
    item_id, post = created["item"]["id"], created["upload"]
    form = {"file": ("cat.png", first, "image/png")}
    assert httpx.post(post["url"], data=post["fields"], files=form).status_code in (200, 201, 204)
    processor = ImageProcessor(publisher=_Recorder())
    event = S3ObjectCreated(bucket=get_settings().bucket, key=post["key"], size=len(first))
    assert processor.object_created(event).result == "processed"

    def served() -> tuple[str, bytes, dict[str, bytes]]:
        detail = client.get(f"/items/{item_id}", headers=alice.headers).json()
        original = httpx.get(detail["original_url"])
        assert original.headers["content-type"] == "image/png"
        assert original.headers["content-disposition"] == 'attachment; filename="cat.png"'
        thumbnails = {}
        for size, url in detail["thumbnail_urls"].items():
            response = httpx.get(url)
            assert response.headers["content-type"] == "image/webp"
            thumbnails[size] = response.content
        return detail["sha256"], original.content, thumbnails

    sha256, original, thumbnails = served()
    assert original == first and sha256 == hashlib.sha256(first).hexdigest()

    replay = {"file": ("cat.png", second, "image/png")}
    assert httpx.post(post["url"], data=post["fields"], files=replay).status_code in (200, 201, 204)
    outcome = processor.object_created(S3ObjectCreated(bucket=event.bucket, key=post["key"], size=len(second)))
    assert outcome.result == "refused"
    assert Storage().head(post["key"]) is None  # removed

    assert served() == (sha256, first, thumbnails)
    assert hashlib.sha256(served()[1]).hexdigest() == sha256


def test_unprocessed_upload_is_served_only_as_a_download(client, alice):
    created = _upload(client, alice, filename="page.png").json()
    Storage().write(created["upload"]["key"], b"<html><script>alert(1)</script>", "text/html")
    detail = client.get(f"/items/{created['item']['id']}", headers=alice.headers).json()
    response = httpx.get(detail["original_url"])
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"].startswith("attachment")


def test_an_item_processed_before_verified_copies_existed_is_still_served(client, alice):
    """Rows the previous release processed have no originals/ copy (original_verified is false): their
    upload object is served, as opaque bytes and a download, instead of a link to a missing key."""
    from datetime import UTC, datetime

    from services.core.database import session_scope
    from services.core.models import Item, ItemStatus

    data = _png((10, 200, 10))
    created = _upload(client, alice, filename="old.png", size=len(data)).json()
    Storage().write(created["upload"]["key"], data, "image/png")
    with session_scope() as session:
        item = session.get(Item, created["item"]["id"])
        item.status, item.processed_at, item.format = ItemStatus.ready, datetime.now(UTC), "PNG"
    detail = client.get(f"/items/{created['item']['id']}", headers=alice.headers).json()
    response = httpx.get(detail["original_url"])
    assert response.status_code == 200 and response.content == data
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"] == 'attachment; filename="old.png"'
