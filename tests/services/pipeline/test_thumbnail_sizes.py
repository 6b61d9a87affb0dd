"""The thumbnails for analysis and for lists are recorded once, by the image processor, on the item:
with other COLLECTIONS_THUMBNAIL_SIZES than the defaults, an upload still goes to ready, a failed
analysis is retried from the recorded thumbnail, and lists show the small one."""

from __future__ import annotations

import pytest

from services.core.ai import ModelOutputRejected
from services.core.ai.local import LocalAnalyzer, LocalEmbedder
from services.core.contracts import S3ObjectCreated
from services.core.models import ItemStatus, Stage
from tests.services.pipeline.conftest import load_item, make_item, put_object, textured_jpeg


class RejectingAnalyzer:
    model = "rejecting"

    def analyze(self, image: bytes, media_type: str):
        raise ModelOutputRejected("the model refused")


@pytest.fixture
def sizes(env, monkeypatch):
    from services.core.settings import get_settings

    monkeypatch.setenv("COLLECTIONS_THUMBNAIL_SIZES", "[128, 640]")
    get_settings.cache_clear()
    yield get_settings().thumbnail_sizes
    monkeypatch.delenv("COLLECTIONS_THUMBNAIL_SIZES")
    get_settings.cache_clear()


def test_other_thumbnail_sizes_go_through_upload_ready_retry_and_list(sizes, publisher, owner):
    from services.analyzer.logic import ImageAnalyzer
    from services.api.presenters import item_detail, item_out
    from services.api.signing import UrlSigner
    from services.core.database import session_scope
    from services.core.retry import retry_item
    from services.core.storage import get_storage, thumbnail_key
    from services.embedder.logic import ItemEmbedder
    from services.image_processor.logic import ImageProcessor

    assert tuple(sizes) == (128, 640)
    item = make_item(owner, "wide.jpg")
    put_object(item.original_key, textured_jpeg((1600, 1200), seed=7))

    # upload → processed: the processor records which thumbnail is for what
    processor = ImageProcessor(publisher=publisher)
    upload = S3ObjectCreated(bucket=processor.storage.bucket, key=item.original_key)
    assert processor.object_created(upload).result == "processed"
    processed = load_item(item.id)
    assert processed.analysis_thumbnail_key == thumbnail_key(owner, item.id, 640)
    assert processed.list_thumbnail_key == thumbnail_key(owner, item.id, 128)
    (to_analyze,) = publisher.of("ImageProcessed")
    assert to_analyze.thumbnail_key == processed.analysis_thumbnail_key

    # the analysis fails permanently; retry resumes at the analyzer from the recorded thumbnail
    assert ImageAnalyzer(analyzer=RejectingAnalyzer(), publisher=publisher).run(to_analyze).result == "failed"
    assert load_item(item.id).failed_stage == Stage.analyze
    with session_scope() as session:
        assert retry_item(session, item.id, publisher, owner_id=owner).status == ItemStatus.processed
    retried = publisher.of("ImageProcessed")[-1]
    assert retried.thumbnail_key == thumbnail_key(owner, item.id, 640)

    # → analyzed → ready
    assert ImageAnalyzer(analyzer=LocalAnalyzer(), publisher=publisher).run(retried).result == "analyzed"
    (to_embed,) = publisher.of("ImageAnalyzed")
    assert ItemEmbedder(embedder=LocalEmbedder(1024), publisher=publisher).run(to_embed).result == "ready"

    # list and detail show the recorded thumbnails
    ready = load_item(item.id)
    assert ready.status == ItemStatus.ready
    signer = UrlSigner(get_storage())
    assert "/128.webp" in item_out(ready, signer).thumbnail_url
    detail = item_detail(ready, signer)
    assert "/128.webp" in detail.thumbnail_url and "/640.webp" in detail.large_thumbnail_url
    assert set(detail.thumbnail_urls) == {"128", "640"}


def test_a_row_the_previous_processor_wrote_is_analysed_retried_and_listed(env, publisher, owner):
    """During a gradual release (or after a rollback) the previous image processor records no
    analysis/list thumbnail keys: services.core.thumbnails falls back to the largest/smallest of
    thumbnail_keys, so such an item does not fail for good."""
    from sqlalchemy import update

    from services.analyzer.logic import ImageAnalyzer
    from services.api.presenters import item_detail, item_out
    from services.api.signing import UrlSigner
    from services.core.database import session_scope
    from services.core.models import Item
    from services.core.retry import retry_item
    from services.core.storage import get_storage, thumbnail_key
    from services.image_processor.logic import ImageProcessor

    item = make_item(owner, "legacy.jpg")
    put_object(item.original_key, textured_jpeg((1600, 1200), seed=9))
    processor = ImageProcessor(publisher=publisher)
    upload = S3ObjectCreated(bucket=processor.storage.bucket, key=item.original_key)
    assert processor.object_created(upload).result == "processed"
    with session_scope() as session:  # what the previous version leaves
        session.execute(update(Item).where(Item.id == item.id).values(analysis_thumbnail_key=None,
                                                                       list_thumbnail_key=None))
    legacy = load_item(item.id)
    assert legacy.thumbnail_keys and legacy.analysis_thumbnail_key is None

    event = publisher.of("ImageProcessed")[-1]
    assert ImageAnalyzer(analyzer=RejectingAnalyzer(), publisher=publisher).run(event).result == "failed"
    with session_scope() as session:
        assert retry_item(session, item.id, publisher, owner_id=owner).status == ItemStatus.processed
    retried = publisher.of("ImageProcessed")[-1]
    assert retried.thumbnail_key == thumbnail_key(owner, item.id, 1024)
    assert ImageAnalyzer(analyzer=LocalAnalyzer(), publisher=publisher).run(retried).result == "analyzed"

    analysed = load_item(item.id)
    signer = UrlSigner(get_storage())
    assert "/256.webp" in item_out(analysed, signer).thumbnail_url
    detail = item_detail(analysed, signer)
    assert "/256.webp" in detail.thumbnail_url and "/1024.webp" in detail.large_thumbnail_url
