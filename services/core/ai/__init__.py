"""AI ports: what the pipeline and the API need from a vision model and an embedding model.

Ports: `Analyzer.analyze(image, media_type) -> AnalysisResult` and `Embedder`; factories
`get_analyzer()` and `get_embedder()` pick the adapter from the settings.
Adapters: Anthropic Claude (services/core/ai/claude.py) and Voyage AI (services/core/ai/voyage.py)
when their API keys are set; otherwise the deterministic local stand-ins (services/core/ai/local.py),
and the runtime says so. Adapters import their SDKs lazily: the API handler must not pay for
anthropic or Pillow at cold start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from services.core.settings import ProgramSettings, get_settings

log = logging.getLogger(__name__)

# The fixed category list the analyzer must choose from (the API can filter on it).
Category = Literal[
    "people", "animals", "nature", "landscape", "food", "architecture", "city", "interior",
    "vehicle", "art", "document", "screenshot", "product", "sport", "event", "other",
]  # fmt: skip
CATEGORIES: tuple[str, ...] = get_args(Category)


class ModelOutputRejected(ValueError):
    """The model answered but the answer is unusable (refused, malformed, invalid, or the input was
    rejected as bad): a permanent failure of this item, never retried."""


class EmbedderUnavailable(RuntimeError):
    """Transient: the embedding provider is down, rate limiting or too slow. `retry_after_s` says when
    asking again makes sense (the provider's Retry-After when it gave one)."""

    def __init__(self, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ImageAnalysis(BaseModel):
    """What the analyzer stores about an image; also the JSON schema the model must fill."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    title: str = Field(min_length=1, max_length=120, description="A short title, at most ~8 words.")
    description: str = Field(min_length=1, max_length=2000, description="One to three factual sentences.")
    category: Category = Field(description="The single best category.")
    tags: list[str] = Field(default_factory=list, max_length=20, description="Lowercase keywords, 3-12 of them.")
    colors: list[str] = Field(
        default_factory=list, max_length=8, description="Dominant colours as plain names, most dominant first."
    )
    visible_text: str | None = Field(
        default=None, max_length=2000, description="Text legible in the image, verbatim; null if none."
    )

    @field_validator("tags", "colors")
    @classmethod
    def _clean_words(cls, values: list[str]) -> list[str]:
        # Lowercase, trimmed, unique, in order; the database columns hold at most 64/32 characters.
        seen: dict[str, None] = {}
        for value in values:
            word = " ".join(str(value).split()).lower()
            if not word:
                continue
            if len(word) > 32:
                raise ValueError(f"{word[:40]!r}... is longer than 32 characters")
            seen.setdefault(word, None)
        return list(seen)

    @field_validator("visible_text")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None


@dataclass(frozen=True)
class AnalysisResult:
    analysis: ImageAnalysis
    model: str  # the model id that answered ("local-..." for the local stand-in)
    usage: dict[str, Any] = field(default_factory=dict)  # token counts as the provider reports them


class Analyzer(Protocol):
    model: str

    def analyze(self, image: bytes, media_type: str) -> AnalysisResult: ...


class Embedder(Protocol):
    model: str
    dimension: int

    def embed_documents(self, texts: list[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...


# One adapter per process, settings and key: a Lambda container reuses its HTTP connections, and the
# "no key" warning is said once, not on every event. The key is looked up on every use (from the
# environment, or the secret cached for COLLECTIONS_SECRETS_MAX_AGE_S): a rotated key builds a new adapter.
_built: dict[str, tuple[ProgramSettings, str | None, Any]] = {}


def _once(kind: str, settings: ProgramSettings | None, key_of: Any, build: Any) -> Any:
    settings = settings or get_settings()
    key = key_of(settings=settings)  # by keyword: tests/services/test_function_settings_reads.py follows it
    cached = _built.get(kind)
    if cached is None or cached[0] is not settings or cached[1] != key:
        cached = _built[kind] = (settings, key, build(settings=settings, key=key))
    return cached[2]


def forget_adapters() -> None:
    """Build the adapters again on next use (after a SnapStart restore: keys may have rotated)."""
    _built.clear()


def get_embedder(settings: ProgramSettings | None = None) -> Embedder:
    """Voyage when a key is configured (VOYAGE_API_KEY or the secret), else the local stand-in."""
    return _once("embedder", settings, _voyage_key, _build_embedder)


def get_analyzer(settings: ProgramSettings | None = None) -> Analyzer:
    """Claude when a key is configured (ANTHROPIC_API_KEY or the secret), else the local stand-in."""
    return _once("analyzer", settings, _anthropic_key, _build_analyzer)


def _api_key(direct: SecretStr | None, secret_arn: str | None, settings: ProgramSettings) -> str | None:
    """The key from the environment, else from Secrets Manager (on AWS); None when neither is set."""
    if direct is None and secret_arn:
        from services.core.secrets import secret_string

        direct = secret_string(secret_arn, settings=settings)
    return direct.get_secret_value() if direct is not None and direct.get_secret_value() else None


# One function per model, not a table: each model's settings are read only where its adapter is built, so
# the api and the embedder need no Claude settings and the analyzer no Voyage ones (each function's class
# has only its own: tests/services/test_function_settings_reads.py).
def _voyage_key(settings: ProgramSettings) -> str | None:
    return _api_key(settings.voyage_api_key, settings.voyage_secret_arn, settings)


def _anthropic_key(settings: ProgramSettings) -> str | None:
    return _api_key(settings.anthropic_api_key, settings.anthropic_secret_arn, settings)


def _build_embedder(settings: ProgramSettings, key: str | None) -> Embedder:
    if key:
        from services.core.ai.voyage import VoyageEmbedder

        return VoyageEmbedder(settings, key)
    from services.core.ai.local import LocalEmbedder

    log.warning("VOYAGE_API_KEY is not set: using the local deterministic embedder")
    return LocalEmbedder(settings.embedding_dimension)


def _build_analyzer(settings: ProgramSettings, key: str | None) -> Analyzer:
    if key:
        from services.core.ai.claude import AnthropicAnalyzer

        return AnthropicAnalyzer(settings, key)
    from services.core.ai.local import LocalAnalyzer

    log.warning("ANTHROPIC_API_KEY is not set: using the local analyzer (%s)", LocalAnalyzer.model)
    return LocalAnalyzer()
