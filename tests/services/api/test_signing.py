"""The fast presigned-GET signer produces exactly botocore's URL for the same instant, on moto's
path-style endpoint and on AWS's virtual-hosted one, with and without session tokens, with and
without the response-content-type / response-content-disposition overrides."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest
from botocore.config import Config

from services.api.signing import UrlSigner
from services.core.settings import Settings, get_settings
from services.core.storage import Storage

KEYS = [
    "thumbnails/0b6c-sub/3f2a/256.webp",
    "uploads/sub/item/My photo (1)+é ü.jpg",
    "uploads/sub/item/a~b%c&d=e?f#g.png",
    "uploads/sub/item/ünïcødé 日本.jpeg",
]
# (content_type, disposition) overrides: none, each alone, both; values with characters that need encoding.
OVERRIDES = [
    (None, None),
    ("image/png", None),
    (None, 'attachment; filename="a b+c.png"'),
    ("image/jpeg", 'attachment; filename="My-photo_1.jpg"'),
    ("application/octet-stream", "attachment; filename*=UTF-8''%C3%A9t%C3%A9.gif"),
]


def _botocore_instant(url: str) -> datetime:
    (amz_date,) = parse_qs(urlsplit(url).query)["X-Amz-Date"]
    return datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def _aws_storage(region: str, token: str | None) -> Storage:
    client = boto3.client(
        "s3",
        region_name=region,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        aws_session_token=token,
        config=Config(signature_version="s3v4"),
    )
    return Storage(Settings(bucket="collections-prod-bucket", download_url_ttl_s=600), client=client)


@pytest.mark.parametrize("content_type, disposition", OVERRIDES)
@pytest.mark.parametrize("key", KEYS)
def test_same_url_as_botocore_on_moto(aws, key, content_type, disposition):
    storage = Storage(get_settings())
    signer = UrlSigner(storage)
    expected = storage.presigned_get(key, content_type, disposition)
    actual = signer.url(key, now=_botocore_instant(expected), content_type=content_type, disposition=disposition)
    assert actual == expected


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEBYaD+session/token=="])
@pytest.mark.parametrize("content_type, disposition", OVERRIDES)
@pytest.mark.parametrize("key", KEYS)
def test_same_url_as_botocore_on_aws(region, token, key, content_type, disposition, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # the real AWS endpoints, signing offline
    storage = _aws_storage(region, token)
    signer = UrlSigner(storage)
    expected = storage.presigned_get(key, content_type, disposition)
    assert urlsplit(expected).hostname.startswith("collections-prod-bucket.s3")  # virtual-hosted style
    if content_type:
        assert "response-content-type=" in expected  # botocore really put the override in the URL
    actual = signer.url(key, now=_botocore_instant(expected), content_type=content_type, disposition=disposition)
    assert actual == expected


def test_signed_url_fetches_the_object_from_moto(aws):
    storage = Storage(get_settings())
    storage.write("thumbnails/u/i/256.webp", b"webp bytes", "image/webp")
    assert httpx.get(UrlSigner(storage).url("thumbnails/u/i/256.webp")).content == b"webp bytes"


def test_overrides_reach_the_response_headers(aws):
    storage = Storage(get_settings())
    storage.write("originals/u/i/x.svg", b"<svg onload=alert(1)>", "image/svg+xml")
    signer = UrlSigner(storage)
    url = signer.url("originals/u/i/x.svg", content_type="image/png", disposition='attachment; filename="x"')
    response = httpx.get(url)
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-disposition"] == 'attachment; filename="x"'


def test_unexpected_probe_falls_back_to_botocore(aws):
    class SigV2Storage(Storage):
        def presigned_get(self, key: str, content_type: str | None = None, disposition: str | None = None) -> str:
            return f"https://bucket.s3.amazonaws.com/{key}?AWSAccessKeyId=AKID&Signature=sig&Expires=1"

    storage = SigV2Storage(get_settings())
    assert (
        UrlSigner(storage).url("a/b.png")
        == "https://bucket.s3.amazonaws.com/a/b.png?AWSAccessKeyId=AKID&Signature=sig&Expires=1"
    )
