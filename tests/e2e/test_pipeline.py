"""End to end, in one process: a browser-style upload (POST /uploads, then a real multipart POST to
moto's S3) → S3's "Object Created" on EventBridge → the image_processor queue → processed →
ImageProcessed → analyzed → ImageAnalyzed → ready, then found by /search. The handlers are the
catalog's; the analyzer and embedder are the local stand-ins (no API keys in tests)."""

from __future__ import annotations

import httpx

from services.local.demo import Sample, sample_images


def test_uploaded_images_become_ready_and_searchable(api, worker):
    samples = {sample.name: sample for sample in sample_images()}
    ids = {api.upload(sample): sample for sample in samples.values()}

    # Each upload's S3 event is waiting in the processor's queue, and nowhere else.
    pending = worker.pending()
    assert pending["image_processor"] == len(samples)
    assert sum(pending.values()) == len(samples)

    done = api.wait(ids, timeout=120, step=lambda: worker.drain(timeout=120))

    for item_id, item in done.items():
        assert item["status"] == "ready", (ids[item_id].filename, item.get("failure_reason"))
        assert item["embedding_model"] and item["analysis_model"]
        assert item["width"] == 640 and item["height"] == 480
        assert set(item["thumbnail_urls"]) == {"256", "1024"}
    some = next(iter(done.values()))
    thumbnail = httpx.get(some["thumbnail_urls"]["256"], timeout=30)
    assert thumbnail.status_code == 200 and thumbnail.content[8:12] == b"WEBP"

    by_name = {sample.name: item_id for item_id, sample in ids.items()}
    for sample in samples.values():
        hits = api.search(sample.query, k=3)
        assert hits[0]["id"] == str(by_name[sample.name]), (sample.query, [h["filename"] for h in hits])

    assert all(stats.failed == 0 for stats in worker.stats.values()), worker.stats
    assert all(not worker.dead_letters(name) for name in worker.wiring.functions)


def test_an_upload_that_is_not_an_image_fails_at_process_without_retries(api, worker):
    before = worker.stats["image_processor"].failed
    bogus = Sample("bogus", "notes.png", b"this is not a png at all" * 10, "image/png", "")
    item_id = api.upload(bogus)

    [item] = api.wait([item_id], timeout=60, step=lambda: worker.drain(timeout=60)).values()

    assert item["status"] == "failed" and item["failed_stage"] == "process"
    assert item["failure_reason"]
    # A permanent error is recorded, not raised: no retry, nothing dead-lettered.
    assert worker.stats["image_processor"].failed == before
    assert worker.dead_letters("image_processor") == []


def test_retry_of_a_failed_item_runs_the_pipeline_again(api, worker):
    """POST /items/{id}/retry → ProcessingRequested on the bus → the processor's queue → ready."""
    from services.core.aws import client
    from services.core.settings import get_settings

    broken = Sample("broken", "later.png", b"\x89PNG but truncated", "image/png", "")
    item_id = api.upload(broken)
    [item] = api.wait([item_id], timeout=60, step=lambda: worker.drain(timeout=60)).values()
    assert item["status"] == "failed"

    # The user uploads the right bytes under the same key; that S3 event finds the item failed
    # and is skipped (no stage runs for a failed item until it is retried).
    good = sample_images()[1]
    s3, bucket = client("s3"), get_settings().bucket
    [original_key] = [
        o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="uploads/")["Contents"] if str(item_id) in o["Key"]
    ]
    assert original_key.endswith(f"/{item_id}/later.png")
    s3.put_object(Bucket=bucket, Key=original_key, Body=good.data, ContentType="image/png")
    worker.drain(timeout=60)
    assert api.item(item_id)["status"] == "failed"

    retried = api.http.post(f"/items/{item_id}/retry", headers=api.headers)
    assert retried.status_code in (200, 202), retried.text
    assert worker.pending()["image_processor"] == 1

    [item] = api.wait([item_id], timeout=60, step=lambda: worker.drain(timeout=60)).values()
    assert item["status"] == "ready" and item["failure_reason"] is None
    # Retrying what is not failed is a conflict.
    assert api.http.post(f"/items/{item_id}/retry", headers=api.headers).status_code == 409


def test_an_edit_reaches_search_and_the_item_stays_searchable_meanwhile(api, worker):
    """PATCH tags to add "holiday": /items?tag=holiday finds it at once; /search?q=holiday once the
    pipeline has embedded the edited text (ItemEdited → the embedder), and the item is ready and
    searchable with its old vector in between."""
    import io

    from PIL import Image, ImageDraw

    image = Image.new("RGB", (640, 480), (20, 120, 200))
    ImageDraw.Draw(image).ellipse((200, 100, 440, 340), fill=(250, 220, 40))
    out = io.BytesIO()
    image.save(out, "PNG")
    item_id = api.upload(Sample("sun", "edited-sun.png", out.getvalue(), "image/png", ""))
    [item] = api.wait([item_id], timeout=120, step=lambda: worker.drain(timeout=120)).values()
    assert item["status"] == "ready" and "holiday" not in item["tags"]

    def distance(query: str) -> float:
        hits = {hit["id"]: hit["distance"] for hit in api.search(query, k=20)}
        return hits[str(item_id)]

    before = distance("holiday")
    patched = api.http.patch(f"/items/{item_id}", headers=api.headers, json={"tags": [*item["tags"], "holiday"]})
    assert patched.status_code == 200, patched.text
    tagged = api.http.get("/items", headers=api.headers, params={"tag": "holiday"}).json()["items"]
    assert [i["id"] for i in tagged] == [str(item_id)]

    # Before the pipeline runs: still ready and searchable, with the vector it had.
    assert worker.pending()["embedder"] == 1
    assert api.item(item_id)["status"] == "ready"
    assert distance("holiday") == before

    worker.drain(timeout=60)
    assert api.search("holiday", k=1)[0]["id"] == str(item_id)
    assert distance("holiday") < before
    assert api.item(item_id)["status"] == "ready"
    assert worker.stats["embedder"].failed == 0
