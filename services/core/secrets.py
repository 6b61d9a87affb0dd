"""Secrets Manager look-ups, once per container."""

from __future__ import annotations

import json
from functools import lru_cache

from pydantic import SecretStr


@lru_cache(maxsize=8)
def secret_string(secret_arn: str, field: str | None = None) -> SecretStr:
    """The secret's value (or one JSON field of it)."""
    from services.core.aws import client

    raw = client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"]
    if field is not None:
        raw = json.loads(raw)[field]
    return SecretStr(raw)
