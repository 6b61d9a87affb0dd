"""Object keys: what the upload policy pins and the processor re-checks."""

import uuid

import pytest

from services.core.storage import InvalidKey, parse_upload_key, safe_filename, thumbnail_key, upload_key

ITEM = uuid.UUID("7d3f1b2a-0000-4000-8000-000000000001")


def test_upload_key_round_trips():
    key = upload_key("user-a", ITEM, "holiday photo.JPG")
    parsed = parse_upload_key(key)
    assert (parsed.owner_id, parsed.item_id, parsed.filename) == ("user-a", ITEM, "holiday-photo.JPG")


@pytest.mark.parametrize(
    "key",
    [
        "uploads/user-a/not-a-uuid/x.jpg",
        f"thumbnails/user-a/{ITEM}/256.webp",
        f"uploads/user-a/{ITEM}",
        f"uploads/user-a/{ITEM}/nested/x.jpg",
        f"uploads//{ITEM}/x.jpg",
        "x.jpg",
    ],
)
def test_keys_outside_the_upload_layout_are_refused(key):
    with pytest.raises(InvalidKey):
        parse_upload_key(key)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("../../etc/passwd", "passwd"), ("a/b\\c.png", "c.png"), ("...", "image"), ("ok_name-1.webp", "ok_name-1.webp")],
)
def test_safe_filename_strips_paths_and_odd_characters(raw, expected):
    assert safe_filename(raw) == expected


def test_safe_filename_bounds_length_and_keeps_extension():
    name = safe_filename("x" * 500 + ".jpeg")
    assert len(name) <= 128 and name.endswith(".jpeg")


def test_thumbnail_key_layout():
    assert thumbnail_key("user-a", ITEM, 256) == f"thumbnails/user-a/{ITEM}/256.webp"
