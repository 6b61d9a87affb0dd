"""The fast presigned-GET signer produces exactly botocore's URL for the same instant, on moto's
path-style endpoint and on AWS's virtual-hosted one, with and without session tokens."""

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


@pytest.mark.parametrize("key", KEYS)
def test_same_url_as_botocore_on_moto(aws, key):
    storage = Storage(get_settings())
    signer = UrlSigner(storage)
    expected = storage.presigned_get(key)
    assert signer.url(key, now=_botocore_instant(expected)) == expected


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEBYaD+session/token=="])
@pytest.mark.parametrize("key", KEYS)
def test_same_url_as_botocore_on_aws(region, token, key, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # the real AWS endpoints, signing offline
    storage = _aws_storage(region, token)
    signer = UrlSigner(storage)
    expected = storage.presigned_get(key)
    assert urlsplit(expected).hostname.startswith("collections-prod-bucket.s3")  # virtual-hosted style
    assert signer.url(key, now=_botocore_instant(expected)) == expected


def test_signed_url_fetches_the_object_from_moto(aws):
    storage = Storage(get_settings())
    storage.write("thumbnails/u/i/256.webp", b"webp bytes", "image/webp")
    assert httpx.get(UrlSigner(storage).url("thumbnails/u/i/256.webp")).content == b"webp bytes"


def test_unexpected_probe_falls_back_to_botocore(aws):
    class SigV2Storage(Storage):
        def presigned_get(self, key: str) -> str:
            return f"https://bucket.s3.amazonaws.com/{key}?AWSAccessKeyId=AKID&Signature=sig&Expires=1"

    storage = SigV2Storage(get_settings())
    assert (
        UrlSigner(storage).url("a/b.png")
        == "https://bucket.s3.amazonaws.com/a/b.png?AWSAccessKeyId=AKID&Signature=sig&Expires=1"
    )
