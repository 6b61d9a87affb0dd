"""Voyage AI text embeddings (the `voyageai` SDK, imported lazily).

Documents are embedded with input_type "document", queries with "query", same model, so both
land in the same space. Models that accept `output_dimension` get the configured dimension; for
the others the configured dimension must be the model's native one, and a mismatch is an error
(the database column has a fixed size).

Requests stay inside Voyage's limits: at most 1000 texts and a conservative token budget per
call (tokens are estimated from characters: the exact tokenizer would need a download).

Failures: the SDK retries 429/502/503/504 and timeouts itself (`max_retries` is its total number
of attempts); what still fails propagates, so the caller raises and the event is retried. A
request Voyage rejects as invalid (400/422) is ModelOutputRejected: permanent for that input.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from services.core.ai import ModelOutputRejected
from services.core.settings import Settings

MAX_TEXTS_PER_REQUEST = 1000
# The smallest per-request token limit among current models is 120K; stay well below it.
MAX_TOKENS_PER_REQUEST = 100_000
# Models that take output_dimension (256, 512, 1024, 2048).
FLEXIBLE_DIMENSION_MODELS = (
    "voyage-3-large",
    "voyage-3.5",
    "voyage-3.5-lite",
    "voyage-code-3",
    "voyage-context-3",
    "voyage-4",
    "voyage-4-large",
    "voyage-4-lite",
)
FLEXIBLE_DIMENSIONS = (256, 512, 1024, 2048)


class EmbeddingDimensionMismatch(RuntimeError):
    """Configuration error (model vs column size): raised, never stored, never blamed on an item."""


def estimate_tokens(text: str) -> int:
    # English averages ~4 characters per token; 3 errs on the side of smaller requests.
    return max(1, math.ceil(len(text) / 3))


def request_batches(
    texts: list[str], max_texts: int = MAX_TEXTS_PER_REQUEST, max_tokens: int = MAX_TOKENS_PER_REQUEST
) -> Iterator[list[str]]:
    """Consecutive slices of `texts` that each fit one embeddings request."""
    batch: list[str] = []
    tokens = 0
    for text in texts:
        cost = estimate_tokens(text)
        if batch and (len(batch) >= max_texts or tokens + cost > max_tokens):
            yield batch
            batch, tokens = [], 0
        batch.append(text)
        tokens += cost
    if batch:
        yield batch


class VoyageEmbedder:
    def __init__(self, settings: Settings, api_key: str):
        import voyageai  # heavy (numpy, PIL, requests, aiohttp): only who embeds pays for it

        self.model = settings.embedding_model
        self.dimension = settings.embedding_dimension
        self._flexible = self.model in FLEXIBLE_DIMENSION_MODELS
        if self._flexible and self.dimension not in FLEXIBLE_DIMENSIONS:
            raise EmbeddingDimensionMismatch(
                f"{self.model} supports output dimensions {FLEXIBLE_DIMENSIONS}, not {self.dimension}"
            )
        self.client = voyageai.Client(
            api_key=api_key,
            base_url=settings.voyage_base_url,  # None: the SDK's default
            # The SDK counts attempts, not retries: one attempt plus the configured retries.
            max_retries=settings.embedding_max_retries + 1,
            timeout=settings.embedding_timeout_s,
        )
        from voyageai import error

        self._permanent = (error.InvalidRequestError, error.MalformedRequestError)

    def _embed(self, texts: list[str], input_type: str) -> list[list[float]]:
        vectors: list[list[float]] = []
        for batch in request_batches(texts):
            try:
                result = self.client.embed(
                    batch,
                    model=self.model,
                    input_type=input_type,
                    truncation=True,
                    output_dimension=self.dimension if self._flexible else None,
                )
            except self._permanent as error:
                raise ModelOutputRejected(f"Voyage rejected the request: {str(error)[:300]}") from error
            if len(result.embeddings) != len(batch):
                raise ModelOutputRejected(f"Voyage returned {len(result.embeddings)} embeddings for {len(batch)} texts")
            for vector in result.embeddings:
                if len(vector) != self.dimension:
                    raise EmbeddingDimensionMismatch(
                        f"{self.model} returned {len(vector)} dimensions; the database expects {self.dimension} "
                        "(COLLECTIONS_EMBEDDING_DIMENSION)"
                    )
                vectors.append([float(v) for v in vector])
        return vectors

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._embed(texts, "document") if texts else []

    def embed_query(self, text: str) -> list[float]:
        return self._embed([text], "query")[0]
