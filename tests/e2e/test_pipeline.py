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
