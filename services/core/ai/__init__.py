"""AI ports: what the pipeline and the API need from a vision model and an embedding model.

Adapters: Anthropic Claude (services/core/ai/claude.py) and Voyage AI (services/core/ai/voyage.py)
when their API keys are set; otherwise the deterministic local stand-ins (services/core/ai/local.py),
and the runtime says so. Adapters import their SDKs lazily: the API handler must not pay for
anthropic or Pillow at cold start.
"""

from __future__ import annotations

import logging
from typing import Protocol

from services.core.settings import Settings, get_settings

log = logging.getLogger(__name__)


class Embedder(Protocol):
    model: str
    dimension: int

    def embed_documents(self, texts: list[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...


def get_embedder(settings: Settings | None = None) -> Embedder:
    settings = settings or get_settings()
    key = settings.voyage_api_key
    if key is None and settings.voyage_secret_arn:
        from services.core.secrets import secret_string

        key = secret_string(settings.voyage_secret_arn)
    if key is not None and key.get_secret_value():
        from services.core.ai.voyage import VoyageEmbedder

        return VoyageEmbedder(settings, key.get_secret_value())
    from services.core.ai.local import LocalEmbedder

    log.warning("VOYAGE_API_KEY is not set: using the local deterministic embedder")
    return LocalEmbedder(settings.embedding_dimension)
