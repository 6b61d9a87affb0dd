"""Image processor against the real database and moto S3: thumbnails, the bad-image corpus,
refusals that never attribute an object to the wrong owner, duplicates, idempotency."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib

import pytest
from PIL import Image

from services.core.contracts import ProcessingRequested, S3ObjectCreated
from services.core.models import ItemStatus, Stage
from services.core.storage import thumbnail_key
from tests.services.pipeline.conftest import (
    decode,
    deliver_concurrently,
    image_bytes,
    load_item,
    make_item,
    object_exists,
    pipeline_event,
    put_object,
    s3_event,
    textured_jpeg,
    worked_once,
)


@pytest.fixture
def processor(env, publisher):
    from services.image_processor.logic import ImageProcessor

    return ImageProcessor(publisher=publisher)


# What the API would have recorded as the declared type (it accepts these four only).
DECLARED = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp"}


def upload(owner: str, data: bytes, filename: str = "photo.jpg", **values):
    values.setdefault("content_type", DECLARED.get(filename.rsplit(".", 1)[-1].lower(), "image/jpeg"))
    item = make_item(owner, filename, **values)
    put_object(item.original_key, data, values["content_type"])
    return item


def created(processor, key: str, size: int | None = None) -> S3ObjectCreated:
    return S3ObjectCreated(bucket=processor.storage.bucket, key=key, size=size)


def thumbnail(item, size: int) -> Image.Image:
    from services.core.storage import get_storage

    return decode(get_storage().read(item.thumbnail_keys[str(size)]))


# --------------------------------------------------------------------------------------------
# The happy path
# --------------------------------------------------------------------------------------------
def test_jpeg_becomes_processed_with_two_webp_thumbnails(processor, publisher, owner):
    data = textured_jpeg((1600, 1200))
    item = upload(owner, data)

    outcome = processor.object_created(created(processor, item.original_key, len(data)))

    assert outcome.result == "processed"
    item = load_item(item.id)
    assert item.status == ItemStatus.processed
    assert (item.width, item.height, item.format, item.bytes) == (1600, 1200, "JPEG", len(data))
    assert item.sha256 == hashlib.sha256(data).hexdigest()
    assert item.thumbnail_keys == {
        "256": thumbnail_key(owner, item.id, 256),
        "1024": thumbnail_key(owner, item.id, 1024),
    }
    big, small = thumbnail(item, 1024), thumbnail(item, 256)
    assert (big.format, big.size) == ("WEBP", (1024, 768))
    assert (small.format, small.size) == ("WEBP", (256, 192))
    (event,) = publisher.details
    assert event.DETAIL_TYPE == "ImageProcessed"
    assert (event.item_id, event.thumbnail_key, event.sha256) == (item.id, item.thumbnail_keys["1024"], item.sha256)


def test_handler_processes_the_aws_shaped_s3_event_and_publishes_on_the_bus(env, owner):
    from services.image_processor.handler import handler

    data = textured_jpeg((300, 200), seed=2)
    item = upload(owner, data)
    result = handler(s3_event(env.bucket, item.original_key, len(data)), None)
    assert result["result"] == "processed"
    assert load_item(item.id).status == ItemStatus.processed


def test_small_images_are_not_upscaled(processor, owner):
    item = upload(owner, image_bytes("PNG", (300, 100)), "small.png")
    processor.object_created(created(processor, item.original_key))
    item = load_item(item.id)
    assert thumbnail(item, 1024).size == (300, 100)
    assert thumbnail(item, 256).size == (256, 85)


def test_processing_requested_processes_a_pending_item(processor, publisher, owner):
    item = upload(owner, textured_jpeg((400, 300), seed=3))
    outcome = processor.run(
        ProcessingRequested(item_id=item.id, owner_id=owner, key=item.original_key)
    )
    assert outcome.result == "processed"
    assert load_item(item.id).status == ItemStatus.processed


def test_processing_requested_for_another_key_is_skipped(processor, publisher, owner):
    item = upload(owner, textured_jpeg((400, 300), seed=4))
    request = ProcessingRequested(item_id=item.id, owner_id=owner, key=f"uploads/{owner}/{item.id}/other.jpg")
    assert processor.run(request).result == "skipped"
    assert load_item(item.id).status == ItemStatus.pending
    assert publisher.details == []


# --------------------------------------------------------------------------------------------
# The bad-image corpus: each ends processed or failed with a clear reason; the original stays
# --------------------------------------------------------------------------------------------
def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (a decompression bomb never needs its pixels)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _truncated_jpeg() -> bytes:
    data = textured_jpeg((800, 600), seed=5)
    return data[: len(data) // 2]


def _bmp() -> bytes:
    return image_bytes("BMP", (50, 50))


BAD = [
    ("zero-bytes.jpg", b"", "empty file"),
    ("truncated.jpg", _truncated_jpeg(), "truncated"),
    ("text.jpg", b"this is not an image, just text named .jpg\n" * 20, "unsupported format: not a recognised image"),
    ("bomb.png", _png_header_only(40_000, 40_000), "image too large"),
    ("picture.bmp", _bmp(), "unsupported format: BMP"),
]


@pytest.mark.parametrize(("filename", "data", "reason"), BAD, ids=[b[0] for b in BAD])
def test_bad_uploads_fail_with_a_reason_and_keep_the_original(processor, publisher, owner, filename, data, reason):
    item = upload(owner, data, filename)

    outcome = processor.object_created(created(processor, item.original_key, len(data)))

    assert outcome.result == "failed"
    item = load_item(item.id)
    assert item.status == ItemStatus.failed
    assert item.failed_stage == Stage.process
    assert reason in item.failure_reason
    assert item.thumbnail_keys is None
    assert object_exists(item.original_key)
    (event,) = publisher.details
    assert (event.DETAIL_TYPE, event.stage, event.reason) == ("ItemFailed", "process", item.failure_reason)


def test_a_rejected_image_is_one_log_record_with_the_librarys_words_kept_off_the_item(
    processor, owner, caplog
):
    data = _truncated_jpeg()
    item = upload(owner, data, "truncated.jpg")
    with caplog.at_level("DEBUG"):
        processor.object_created(created(processor, item.original_key, len(data)))
    item = load_item(item.id)
    records = [r for r in caplog.records if r.name.startswith("services.") and str(item.id) in r.getMessage()]
    assert len(records) == 1, [r.getMessage() for r in records]
    (record,) = records
    assert record.levelname == "WARNING" and item.failure_reason in record.getMessage()
    pillow_words = record.getMessage().split(item.failure_reason, 1)[1]
    assert pillow_words.strip(" ()"), "the library's own text is in the record"
    assert pillow_words.strip(" ()") not in item.failure_reason


def test_sixteen_bit_png_is_scaled_not_clipped(processor, owner):
    gradient = Image.linear_gradient("L").resize((512, 256)).convert("I")  # 0..255 across rows
    sixteen = gradient.point(lambda v: v * 257).convert("I;16")  # 0..65535
    out = io.BytesIO()
    sixteen.save(out, "PNG")
    item = upload(owner, out.getvalue(), "deep.png")

    assert processor.object_created(created(processor, item.original_key)).result == "processed"
    thumb = thumbnail(load_item(item.id), 256).convert("L")
    top, bottom = thumb.getpixel((128, 2)), thumb.getpixel((128, thumb.height - 3))
    assert top < 30 and bottom > 220  # clipping would make nearly everything white


def test_cmyk_jpeg_comes_out_rgb_with_its_colour(processor, owner):
    item = upload(owner, image_bytes("JPEG", (400, 300), (0, 255, 255, 0), mode="CMYK"), "cmyk.jpg")  # red
    assert processor.object_created(created(processor, item.original_key)).result == "processed"
    r, g, b = thumbnail(load_item(item.id), 256).convert("RGB").getpixel((100, 100))
    assert r > 200 and g < 60 and b < 60


def test_animated_gif_uses_its_first_frame(processor, owner):
    frames = [Image.new("RGB", (200, 100), c) for c in ((255, 0, 0), (0, 0, 255))]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    item = upload(owner, out.getvalue(), "anim.gif")

    assert processor.object_created(created(processor, item.original_key)).result == "processed"
    item = load_item(item.id)
    assert item.format == "GIF"
    r, g, b = thumbnail(item, 256).convert("RGB").getpixel((50, 50))
    assert r > 200 and b < 60


def test_exif_rotated_jpeg_comes_out_upright_without_metadata(processor, owner):
    # Stored landscape: left half red, right half blue. Orientation 6 means "rotate 90° clockwise
    # to display", so the upright picture is portrait with red on top and blue below.
    stored = Image.new("RGB", (400, 200), (255, 0, 0))
    stored.paste((0, 0, 255), (200, 0, 400, 200))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 0.0), 3: "E", 4: (13.0, 24.0, 0.0)}  # GPS
    out = io.BytesIO()
    stored.save(out, "JPEG", exif=exif.tobytes(), quality=95)
    item = upload(owner, out.getvalue(), "rotated.jpg")

    assert processor.object_created(created(processor, item.original_key)).result == "processed"
    item = load_item(item.id)
    assert (item.width, item.height) == (200, 400)
    thumb = thumbnail(item, 1024)
    assert thumb.size == (200, 400)
    top = thumb.convert("RGB").getpixel((100, 40))
    bottom = thumb.convert("RGB").getpixel((100, 360))
    assert top[0] > 200 and top[2] < 60
    assert bottom[2] > 200 and bottom[0] < 60
    assert "exif" not in thumb.info and len(thumb.getexif()) == 0  # no GPS, no orientation, nothing


def test_very_large_but_legal_dimensions_are_processed(processor, owner):
    item = upload(owner, image_bytes("JPEG", (9000, 3000), (30, 120, 30), quality=70), "wide.jpg")
    assert processor.object_created(created(processor, item.original_key)).result == "processed"
    item = load_item(item.id)
    assert (item.width, item.height) == (9000, 3000)
    assert thumbnail(item, 1024).size == (1024, 341)


def test_extreme_aspect_ratio_keeps_at_least_one_pixel(processor, owner):
    item = upload(owner, image_bytes("PNG", (20000, 10), (0, 0, 0)), "strip.png")
    assert processor.object_created(created(processor, item.original_key)).result == "processed"
    assert thumbnail(load_item(item.id), 256).size == (256, 1)


def test_object_over_the_size_limit_fails_and_is_kept(env, publisher, owner):
    from services.image_processor.logic import ImageProcessor

    small_limit = env.model_copy(update={"max_upload_bytes": 1000})
    processor = ImageProcessor(settings=small_limit, publisher=publisher)
    data = textured_jpeg((300, 300), seed=6)
    assert len(data) > 1000
    by_event = upload(owner, data, "a.jpg")
    by_bytes = upload(owner, data, "b.jpg")

    # The event's size is checked first; an event without a size still cannot sneak it past.
    assert processor.object_created(created(processor, by_event.original_key, len(data))).result == "failed"
    assert processor.object_created(created(processor, by_bytes.original_key, None)).result == "failed"
    for item in (by_event, by_bytes):
        item = load_item(item.id)
        assert "too large" in item.failure_reason
        assert object_exists(item.original_key)


def test_missing_original_on_retry_fails_clearly(processor, owner):
    item = make_item(owner, "gone.jpg")
    outcome = processor.run(
        ProcessingRequested(item_id=item.id, owner_id=owner, key=item.original_key)
    )
    assert outcome.result == "failed"
    assert load_item(item.id).failure_reason == "the original upload is missing"


# --------------------------------------------------------------------------------------------
# Refusals: objects that cannot be attributed are deleted and nobody's item changes
# --------------------------------------------------------------------------------------------
def test_key_outside_the_upload_layout_is_deleted(processor, publisher, owner):
    key = f"uploads/{owner}/loose.jpg"
    put_object(key, textured_jpeg((100, 100)))
    outcome = processor.object_created(created(processor, key))
    assert (outcome.result, outcome.extra["deleted"]) == ("refused", True)
    assert not object_exists(key)
    assert publisher.details == []


def test_object_for_an_unknown_item_is_deleted(processor, owner):
    import uuid

    key = f"uploads/{owner}/{uuid.uuid4()}/photo.jpg"
    put_object(key, textured_jpeg((100, 100)))
    assert processor.object_created(created(processor, key)).reason == "no item has this id"
    assert not object_exists(key)


def test_object_under_another_owners_item_is_deleted_and_the_item_untouched(processor, publisher, owner):
    victim = upload(owner, textured_jpeg((200, 200), seed=7))
    intruder_key = f"uploads/someone-else/{victim.id}/photo.jpg"
    put_object(intruder_key, textured_jpeg((200, 200), seed=8))

    outcome = processor.object_created(created(processor, intruder_key))

    assert outcome.reason == "the item belongs to another owner"
    assert not object_exists(intruder_key)
    assert object_exists(victim.original_key)
    assert load_item(victim.id).status == ItemStatus.pending
    assert publisher.details == []


def test_second_object_beside_the_original_is_deleted(processor, owner):
    item = upload(owner, textured_jpeg((200, 200), seed=9))
    stray = f"uploads/{owner}/{item.id}/extra.jpg"
    put_object(stray, textured_jpeg((200, 200), seed=10))
    assert processor.object_created(created(processor, stray)).reason == "not the item's upload key"
    assert not object_exists(stray)
    assert object_exists(item.original_key)
    assert load_item(item.id).status == ItemStatus.pending


# --------------------------------------------------------------------------------------------
# The declared type, the verified original, and replayed forms
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("filename", "declared", "data", "actual"),
    [
        ("cat.png", "image/jpeg", image_bytes("PNG", (64, 64)), "PNG"),
        ("cat.jpg", "image/png", image_bytes("JPEG", (64, 64)), "JPEG"),
        ("cat.gif", "image/webp", image_bytes("GIF", (64, 64)), "GIF"),
    ],
)
def test_decoded_format_must_match_the_declared_type(processor, publisher, owner, filename, declared, data, actual):
    item = upload(owner, data, filename, content_type=declared)
    assert processor.object_created(created(processor, item.original_key)).result == "failed"
    item = load_item(item.id)
    assert (item.status, item.failed_stage) == (ItemStatus.failed, Stage.process)
    assert item.failure_reason == f"the file is a {actual} image, not the declared {declared}"
    assert not object_exists(f"originals/{owner}/{item.id}/{filename}")  # nothing verified, nothing served


def test_a_declared_type_the_pipeline_cannot_process_fails(processor, owner):
    item = upload(owner, image_bytes("PNG", (32, 32)), "x.png", content_type="image/svg+xml")
    assert processor.object_created(created(processor, item.original_key)).result == "failed"
    assert load_item(item.id).failure_reason == "unsupported declared type 'image/svg+xml'"


def test_duplicate_declared_as_another_type_fails(processor, owner):
    data = image_bytes("PNG", (48, 48), color=(1, 2, 3))
    processor.object_created(created(processor, upload(owner, data, "a.png").original_key))
    second = upload(owner, data, "b.png", content_type="image/gif")
    assert processor.object_created(created(processor, second.original_key)).result == "failed"
    assert "not the declared image/gif" in load_item(second.id).failure_reason


def test_verified_original_is_stored_apart_with_its_type_and_the_upload_removed(processor, owner):
    from services.core.storage import get_storage

    data = textured_jpeg((320, 240), seed=40)
    item = upload(owner, data, "holiday.jpg")
    assert processor.object_created(created(processor, item.original_key)).result == "processed"
    s3, bucket = get_storage().s3, get_storage().bucket
    stored = s3.get_object(Bucket=bucket, Key=f"originals/{owner}/{item.id}/holiday.jpg")
    assert stored["Body"].read() == data
    assert stored["ContentType"] == "image/jpeg"
    assert stored["ContentDisposition"] == 'attachment; filename="holiday.jpg"'
    assert not object_exists(item.original_key)  # the upload has no use left
    for key in load_item(item.id).thumbnail_keys.values():
        assert s3.head_object(Bucket=bucket, Key=key)["ContentType"] == "image/webp"


def test_later_object_under_the_upload_key_is_refused_and_removed(processor, publisher, owner):
    from services.core.storage import get_storage

    data = textured_jpeg((320, 240), seed=41)
    item = upload(owner, data, "first.jpg")
    processor.object_created(created(processor, item.original_key))
    before = load_item(item.id)
    assert before.original_verified  # the API serves originals/ for it
    publisher.details.clear()

    put_object(item.original_key, textured_jpeg((320, 240), seed=42))  # the same form, used again
    outcome = processor.object_created(created(processor, item.original_key))

    assert (outcome.result, outcome.extra["deleted"]) == ("refused", True)
    assert not object_exists(item.original_key)
    after = load_item(item.id)
    assert (after.status, after.sha256, after.thumbnail_keys) == (before.status, before.sha256, before.thumbnail_keys)
    assert get_storage().read(f"originals/{owner}/{item.id}/first.jpg") == data
    assert publisher.details == []


def test_an_item_processed_before_verified_copies_existed_keeps_its_upload(processor, owner):
    """Rows processed by the previous release have no originals/ copy: their upload object is all
    there is, so a (re)delivered event for it must not remove it."""
    from datetime import UTC, datetime

    data = textured_jpeg((64, 64), seed=43)
    item = upload(owner, data, "old.jpg", status=ItemStatus.ready, processed_at=datetime.now(UTC), format="JPEG")
    outcome = processor.object_created(created(processor, item.original_key))
    assert (outcome.result, outcome.reason) == ("skipped", "item is ready, not pending")
    assert object_exists(item.original_key)
    assert not load_item(item.id).original_verified


def test_only_the_image_processor_may_write_verified_originals():
    from services import catalog

    writers = {
        f.name
        for f in catalog.FUNCTIONS
        for access in f.access
        if "s3:PutObject" in access.actions and catalog.ORIGINALS_PREFIX.startswith(access.prefix)
    }
    assert writers == {"image_processor"}
    api = catalog.function("api")
    assert catalog.WRITE_UPLOADS in api.access and catalog.READ_ORIGINALS in api.access


def test_event_for_an_item_that_is_not_pending_changes_nothing(processor, publisher, owner):
    item = upload(owner, textured_jpeg((200, 200), seed=11), status=ItemStatus.ready)
    assert processor.object_created(created(processor, item.original_key)).result == "skipped"
    assert object_exists(item.original_key)
    assert load_item(item.id).status == ItemStatus.ready
    assert publisher.details == []


def test_event_from_another_bucket_is_ignored(processor, owner):
    item = upload(owner, textured_jpeg((200, 200), seed=12))
    outcome = processor.object_created(S3ObjectCreated(bucket="somebody-elses", key=item.original_key))
    assert outcome.result == "skipped"
    assert object_exists(item.original_key)


# --------------------------------------------------------------------------------------------
# Duplicates and idempotency
# --------------------------------------------------------------------------------------------
def test_same_image_twice_marks_the_second_a_duplicate_without_reprocessing(processor, publisher, owner):
    data = textured_jpeg((640, 480), seed=13)
    first = upload(owner, data, "one.jpg")
    processor.object_created(created(processor, first.original_key))
    second = upload(owner, data, "two.jpg")

    outcome = processor.object_created(created(processor, second.original_key))

    assert outcome.result == "duplicate"
    first, second = load_item(first.id), load_item(second.id)
    assert second.duplicate_of == first.id
    assert (second.status, second.sha256, second.width) == (ItemStatus.processed, first.sha256, first.width)
    assert second.thumbnail_keys["1024"] == thumbnail_key(owner, second.id, 1024)  # its own copy
    assert thumbnail(second, 1024).tobytes() == thumbnail(first, 1024).tobytes()
    assert [e.DETAIL_TYPE for e in publisher.details] == ["ImageProcessed", "ImageProcessed"]


def test_duplicate_of_a_ready_item_takes_its_analysis_and_embedding(processor, publisher, owner):
    from sqlalchemy import update

    from services.core.database import session_scope
    from services.core.models import Item

    data = textured_jpeg((500, 400), seed=14)
    first = upload(owner, data, "one.jpg")
    processor.object_created(created(processor, first.original_key))
    vector = [0.0] * 1024
    vector[3] = 1.0
    with session_scope() as session:
        session.execute(
            update(Item)
            .where(Item.id == first.id)
            .values(
                status=ItemStatus.ready,
                title="A red kite",
                tags=["kite"],
                analysis_model="claude-x",
                embedding=vector,
                embedding_model="voyage-x",
            )
        )
    second = upload(owner, data, "two.jpg")

    assert processor.object_created(created(processor, second.original_key)).result == "duplicate"

    second = load_item(second.id)
    assert (second.status, second.title, second.tags) == (ItemStatus.ready, "A red kite", ["kite"])
    assert (second.analysis_model, second.embedding_model) == ("claude-x", "voyage-x")
    assert list(second.embedding) == vector
    assert publisher.details[-1].DETAIL_TYPE == "ImageReady"


def test_other_owners_same_image_is_not_a_duplicate(processor, owner):
    data = textured_jpeg((300, 300), seed=15)
    processor.object_created(created(processor, upload(owner, data).original_key))
    theirs = upload("another-owner-" + owner[:8], data)
    assert processor.object_created(created(processor, theirs.original_key)).result == "processed"
    assert load_item(theirs.id).duplicate_of is None


def test_same_event_twice_and_concurrently_does_the_work_once(processor, publisher, owner):
    item = upload(owner, textured_jpeg((1200, 900), seed=16))
    event = created(processor, item.original_key)
    outcomes = deliver_concurrently(lambda: processor.object_created(event))
    assert worked_once(outcomes, "processed"), outcomes
    assert processor.object_created(event).result == "skipped"  # and once more, later
    assert len(publisher.of("ImageProcessed")) == 1
    assert load_item(item.id).status == ItemStatus.processed


def test_handler_refuses_events_it_does_not_handle(env):
    import uuid

    from services.core.contracts import ImageAnalyzed
    from services.image_processor.handler import handler

    event = pipeline_event(ImageAnalyzed(item_id=uuid.uuid4(), owner_id="x", analysis_model="m"))
    with pytest.raises(ValueError, match="does not handle 'ImageAnalyzed'"):
        handler(event, None)


# --------------------------------------------------------------------------------------------
# Transient failures raise (the event is retried); nothing is marked failed
# --------------------------------------------------------------------------------------------
def test_s3_throttling_raises_and_leaves_the_item_pending(env, publisher, owner):
    from botocore.exceptions import ClientError

    from services.core.storage import Storage
    from services.image_processor.logic import ImageProcessor

    class ThrottledStorage(Storage):
        def read(self, key, max_bytes=None):
            raise ClientError(
                {"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}}, "GetObject"
            )

    item = upload(owner, textured_jpeg((200, 200), seed=30))
    processor = ImageProcessor(storage=ThrottledStorage(), publisher=publisher)
    with pytest.raises(ClientError, match="SlowDown"):
        processor.object_created(created(processor, item.original_key))
    assert load_item(item.id).status == ItemStatus.pending
    assert publisher.details == []


def test_database_unavailable_raises(env, publisher, owner, monkeypatch):
    import uuid

    from sqlalchemy.exc import OperationalError

    from services.image_processor.logic import ImageProcessor
    from tests.conftest import reset_caches

    key = f"uploads/{owner}/{uuid.uuid4()}/photo.jpg"
    put_object(key, textured_jpeg((100, 100), seed=31))
    processor = ImageProcessor(publisher=publisher)
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://nobody:x@127.0.0.1:9/none?connect_timeout=2")
    reset_caches()
    try:
        with pytest.raises(OperationalError):
            processor.object_created(created(processor, key))
    finally:
        monkeypatch.setenv("DATABASE_URL", env.database_url)
        reset_caches()
    assert object_exists(key)  # nothing was judged while the database was away


def test_url_encoded_key_in_the_event_finds_the_object(processor, owner):
    import uuid

    real_key = f"uploads/{owner}/{uuid.uuid4()}/my photo.jpg"
    put_object(real_key, textured_jpeg((100, 100), seed=32))
    outcome = processor.object_created(created(processor, real_key.replace(" ", "+")))
    assert (outcome.result, outcome.extra["key"]) == ("refused", real_key)  # no such item: removed
    assert not object_exists(real_key)


def test_rgb_colour_profiles_are_kept_and_others_dropped():
    from PIL import ImageCms

    from services.image_processor.imaging import process_image

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    not_rgb = bytearray(srgb)
    not_rgb[16:20] = b"CMYK"  # what a CMYK original's profile says about itself
    for profile, kept in ((srgb, True), (bytes(not_rgb), False)):
        data = image_bytes("JPEG", (300, 200), icc_profile=profile)
        for thumb in process_image(data).thumbnails.values():
            assert (decode(thumb.data).info.get("icc_profile") == profile) is kept


def test_same_bytes_while_the_first_is_still_processed_waits_then_becomes_its_duplicate(processor, publisher, owner):
    """The first upload's processing holds a lease and has announced its sha256: the second upload of
    the same bytes is retried later (StageBusy) instead of being processed (and analysed) twice."""
    import uuid

    from services.core.stage_runner import Claim, StageBusy, StageRunner

    data = textured_jpeg((640, 480), seed=17)
    first = upload(owner, data, "one.jpg")
    second = upload(owner, data, "two.jpg")
    lease = uuid.uuid4()
    claimed = StageRunner(processor).claim(first.id, owner, lease)  # the first delivery, mid-work
    processor._first_with_content(Claim(claimed, lease), hashlib.sha256(data).hexdigest())

    with pytest.raises(StageBusy, match="same bytes"):
        processor.object_created(created(processor, second.original_key))
    assert load_item(second.id).status == ItemStatus.pending

    StageRunner(processor).release(first.id, lease)
    assert processor.object_created(created(processor, first.original_key)).result == "processed"
    assert processor.object_created(created(processor, second.original_key)).result == "duplicate"
    assert load_item(second.id).duplicate_of == first.id


def _record(item_id, **values) -> None:
    from sqlalchemy import update

    from services.core.database import session_scope
    from services.core.models import Item

    with session_scope() as session:
        session.execute(update(Item).where(Item.id == item_id).values(**values))


def test_duplicate_of_a_row_the_previous_processor_wrote_gets_its_own_recorded_thumbnails(
    processor, publisher, owner
):
    """The first item has thumbnail_keys but no recorded analysis/list keys (written by the previous
    version): the copy records its own, and ImageProcessed goes out (it needs a thumbnail key)."""
    data = textured_jpeg((640, 480), seed=21)
    first = upload(owner, data, "legacy.jpg")
    processor.object_created(created(processor, first.original_key))
    _record(first.id, analysis_thumbnail_key=None, list_thumbnail_key=None)
    second = upload(owner, data, "again.jpg")

    assert processor.object_created(created(processor, second.original_key)).result == "duplicate"
    second = load_item(second.id)
    assert second.analysis_thumbnail_key == thumbnail_key(owner, second.id, 1024)
    assert second.list_thumbnail_key == thumbnail_key(owner, second.id, 256)
    assert publisher.of("ImageProcessed")[-1].thumbnail_key == second.analysis_thumbnail_key


def test_duplicate_of_a_row_naming_no_usable_thumbnail_is_processed_itself(processor, publisher, owner):
    """A first item whose recorded analysis thumbnail is not among its thumbnails would give the copy none
    (and an ImageProcessed that cannot be built, on every retry): the item is processed on its own."""
    data = textured_jpeg((640, 480), seed=22)
    first = upload(owner, data, "odd.jpg")
    processor.object_created(created(processor, first.original_key))
    _record(first.id, analysis_thumbnail_key=f"thumbnails/{owner}/{first.id}/2048.webp")
    second = upload(owner, data, "again.jpg")

    assert processor.object_created(created(processor, second.original_key)).result == "processed"
    second = load_item(second.id)
    assert (second.status, second.duplicate_of) == (ItemStatus.processed, None)
    assert second.analysis_thumbnail_key == thumbnail_key(owner, second.id, 1024)
    assert publisher.of("ImageProcessed")[-1].item_id == second.id
