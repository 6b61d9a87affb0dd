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

from services.core.settings import Settings, get_settings

_lock = threading.Lock()  # botocore sessions are not safe for concurrent client creation


# The loader of botocore's service models and endpoint rules (JSON files: most of a client's ~70 ms
# creation). Kept across reset(): the files do not change, while credentials and endpoints may.
_models: Any = None


def _direct_loader(default: Any) -> Any:
    """botocore's data loader, minus one walk: to check a service's name, botocore lists every service
    folder it ships (~450, each listed and probed for the file: ~10 ms of syscalls per file type, so ~20 ms
    for a first client on this machine, on every cold start). This one looks in the named service's own
    folder; the full list is still built for an unknown name's error message, and for anyone who asks."""
    from collections.abc import Sequence

    from botocore.exceptions import DataNotFoundError
    from botocore.loaders import Loader

    class KnownServices(Sequence):
        def __init__(self, loader: Loader, type_name: str):
            self.loader, self.type_name = loader, type_name

        def __contains__(self, name: object) -> bool:
            try:
                return bool(self.loader.list_api_versions(name, self.type_name))
            except DataNotFoundError:
                return False

        def _all(self) -> list[str]:
            return Loader.list_available_services(self.loader, self.type_name)

        def __getitem__(self, index: Any) -> Any:
            return self._all()[index]

        def __len__(self) -> int:
            return len(self._all())

    class DirectLoader(Loader):
        def list_available_services(self, type_name: str) -> Sequence[str]:
            return KnownServices(self, type_name)

    return DirectLoader(extra_search_paths=default.search_paths, include_default_search_paths=False)


@lru_cache(maxsize=1)
def _session() -> Any:
    import botocore.session

    global _models
    session = botocore.session.get_session()
    if _models is None:
        _models = _direct_loader(session.get_component("data_loader"))
    session.register_component("data_loader", _models)
    return session


@lru_cache(maxsize=32)
def _client(service: str, region: str, endpoint_url: str | None) -> Any:
    from botocore.config import Config

    with _lock:
        return _session().create_client(
            service,
            region_name=region,
            endpoint_url=endpoint_url,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, signature_version="s3v4"),
        )


def client(service: str, settings: Settings | None = None) -> Any:
    settings = settings or get_settings()
    return _client(service, settings.aws_region, settings.aws_endpoint_url)


def reset() -> None:
    """Forget clients and the session (tests change credentials and endpoints; a SnapStart restore needs
    fresh credentials and connections). The loaded service models stay: a new S3 client then costs ~20 ms."""
    _client.cache_clear()
    _session.cache_clear()
