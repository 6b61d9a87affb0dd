"""boto3 clients, one per service per process, honouring AWS_ENDPOINT_URL (moto locally)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from services.core.settings import Settings, get_settings


@lru_cache(maxsize=32)
def _client(service: str, region: str, endpoint_url: str | None) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        service,
        region_name=region,
        endpoint_url=endpoint_url,
        config=Config(retries={"max_attempts": 5, "mode": "standard"}, signature_version="s3v4"),
    )


def client(service: str, settings: Settings | None = None) -> Any:
    settings = settings or get_settings()
    return _client(service, settings.aws_region, settings.aws_endpoint_url)


def reset() -> None:
    _client.cache_clear()
