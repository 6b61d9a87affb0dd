"""AWS clients, one per service per process, honouring AWS_ENDPOINT_URL (moto locally).

All clients come from one botocore session: it loads the service models and credentials once, so a
second client costs milliseconds instead of a fresh session's ~0.1 s (a CLI's start-up counts).
botocore's, not boto3's: the services call client operations only, and boto3's session imports its
resource layer and hooks s3transfer into every S3 client (~60 modules on a Lambda cold path that
uses none of them). The clients are the same botocore clients boto3 would hand out.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

from services.core.settings import ProgramSettings, get_settings

_lock = threading.Lock()  # botocore sessions are not safe for concurrent client creation


# The loader of botocore's service models and endpoint rules (JSON files: most of a client's ~70 ms
# creation). Kept across reset(): the files do not change, while credentials and endpoints may.
_models: Any = None


@lru_cache(maxsize=1)
def _session() -> Any:
    import botocore.session

    global _models
    session = botocore.session.get_session()
    if _models is None:
        _models = session.get_component("data_loader")
    else:
        session.register_component("data_loader", _models)
    return session


DEFAULT_CLIENT_CONFIG: dict[str, Any] = {"retries": {"max_attempts": 5, "mode": "standard"}}
# Secrets Manager is read on request paths (a search reads the Voyage key when its cache expired): a hung
# endpoint must not outlast the api's 15 s with botocore's defaults (60 s connect, 60 s read, 5 retries).
# tests/services/api/test_search_voyage.py adds this to the query's own budget.
CLIENT_CONFIG: dict[str, dict[str, Any]] = {
    "secretsmanager": {
        "connect_timeout": 1,
        "read_timeout": 2,
        "retries": {"total_max_attempts": 2, "mode": "standard"},
    },
}


@lru_cache(maxsize=32)
def _client(service: str, region: str, endpoint_url: str | None) -> Any:
    from botocore.config import Config

    with _lock:
        return _session().create_client(
            service,
            region_name=region,
            endpoint_url=endpoint_url,
            config=Config(**CLIENT_CONFIG.get(service, DEFAULT_CLIENT_CONFIG), signature_version="s3v4"),
        )


def client(service: str, settings: ProgramSettings | None = None) -> Any:
    settings = settings or get_settings()
    return _client(service, settings.aws_region, settings.aws_endpoint_url)


def reset() -> None:
    """Forget clients and the session (tests change credentials and endpoints; a SnapStart restore needs
    fresh credentials and connections). The loaded service models stay: a new S3 client then costs ~20 ms."""
    _client.cache_clear()
    _session.cache_clear()
