"""Secrets Manager look-ups, cached for `COLLECTIONS_SECRETS_MAX_AGE_S` (default 300 s), not for the
container's life: a rotated secret (database password, API keys) is picked up by running containers
within that time, without a new deploy or a cold start.

The cache is aws-lambda-powertools' parameters utility (`SecretsProvider.get(max_age=...)`), fed with
our boto3 client (services/core/aws.py: same session, AWS_ENDPOINT_URL honoured, so moto locally).
`force_fetch=True` skips the cache: the database connects again with a fresh read when the cached
password is refused (services/core/database.py).
"""

from __future__ import annotations

import json
import threading
from typing import Any

from pydantic import SecretStr

from services.core.settings import ProgramSettings, get_settings

_lock = threading.Lock()
_provider: tuple[Any, Any] | None = None  # (the boto3 client it wraps, SecretsProvider)


def _secrets_provider(settings: ProgramSettings) -> Any:
    """One provider (and so one cache) per boto3 client: `aws.reset()` makes a new client, and with it
    a new, empty cache."""
    global _provider
    from services.core.aws import client

    boto3_client = client("secretsmanager", settings)
    with _lock:
        if _provider is None or _provider[0] is not boto3_client:
            from aws_lambda_powertools.utilities.parameters import SecretsProvider

            _provider = (boto3_client, SecretsProvider(boto3_client=boto3_client))
        return _provider[1]


def secret_value(secret_arn: str, settings: ProgramSettings | None = None, *, force_fetch: bool = False) -> str:
    """The secret's SecretString, at most `secrets_max_age_s` old (fresh with `force_fetch`)."""
    settings = settings or get_settings()
    value = _secrets_provider(settings).get(secret_arn, max_age=settings.secrets_max_age_s, force_fetch=force_fetch)
    return value.decode() if isinstance(value, bytes) else str(value)


def secret_json(
    secret_arn: str, settings: ProgramSettings | None = None, *, force_fetch: bool = False
) -> dict[str, Any]:
    """The secret parsed as a JSON object (RDS-style database secrets)."""
    return json.loads(secret_value(secret_arn, settings, force_fetch=force_fetch))


def secret_string(secret_arn: str, field: str | None = None, settings: ProgramSettings | None = None) -> SecretStr:
    """The secret's value (or one JSON field of it)."""
    raw = secret_value(secret_arn, settings)
    if field is not None:
        raw = json.loads(raw)[field]
    return SecretStr(raw)


def forget() -> None:
    """Drop every cached value (after a SnapStart restore: secrets may have rotated meanwhile)."""
    global _provider
    with _lock:
        _provider = None


def cached_count() -> int:
    """How many values the cache holds (tests)."""
    return 0 if _provider is None else len(_provider[1].store)
