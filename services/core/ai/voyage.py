"""Voyage AI text embeddings over Voyage's REST API (POST /v1/embeddings), with urllib3.

Why not the `voyageai` SDK at run time: importing it loads numpy, Pillow, huggingface_hub,
tokenizers and langchain's text splitters, which puts the api and embedder zips over Lambda's
50 MB limit (54 MB measured) and adds seconds to a cold start. The request is one JSON POST, so we
send exactly what the SDK sends (same body, base64 little-endian float32 answers) with urllib3,
which botocore already ships. The tests run the real SDK against the same fake server to prove that
the fake speaks Voyage's protocol and that our request body equals the SDK's.

Documents are embedded with input_type "document", queries with "query", same model, so both
land in the same space. Models that accept `output_dimension` get the configured dimension; for
the others the configured dimension must be the model's native one, and a mismatch is an error
(the database column has a fixed size).

Requests stay inside Voyage's limits: at most 1000 texts and a conservative token budget per
call (tokens are estimated from characters: the exact tokenizer would need a download).

Failures: documents (the embedder function, 60 s) retry 429, 5xx and timeouts with exponential
backoff (honouring Retry-After) up to `embedding_max_retries` times; what still fails raises
VoyageUnavailable, so the caller raises and the event is retried. Queries (inside a user's search
request, in a 15 s function) fail fast instead: `query_embedding_timeout_s` per attempt, at most
`query_embedding_max_retries` retry after a short fixed pause, Retry-After not waited for but
handed to the API, which answers 503 with it. A request Voyage rejects as invalid (400/422) is
ModelOutputRejected: permanent for that input.

urllib3 >= 2 (declared in pyproject and the Lambda groups): Retry(backoff_max=...) is 2.0 API.
"""

from __future__ import annotations

import base64
import json
import math
import sys
from array import array
from collections.abc import Iterator

from services.core.ai import EmbedderUnavailable, ModelOutputRejected
from services.core.settings import ProgramSettings

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


DEFAULT_BASE_URL = "https://api.voyageai.com/v1"
RETRY_STATUSES = (429, 500, 502, 503, 504)
PERMANENT_STATUSES = (400, 422)
QUERY_RETRY_PAUSE_S = 0.2  # the one retry of a query waits this long, whatever Retry-After says
RETRY_AFTER_DEFAULT_S = 5.0  # what the API suggests when Voyage gave no Retry-After
RETRY_AFTER_MAX_S = 3600.0


class VoyageUnavailable(EmbedderUnavailable):
    """Transient: rate limited, server errors or timeouts after the bounded retries."""


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
    def __init__(self, settings: ProgramSettings, api_key: str):
        import urllib3

        self.model = settings.embedding_model
        self.dimension = settings.embedding_dimension
        self._flexible = self.model in FLEXIBLE_DIMENSION_MODELS
        if self._flexible and self.dimension not in FLEXIBLE_DIMENSIONS:
            raise EmbeddingDimensionMismatch(
                f"{self.model} supports output dimensions {FLEXIBLE_DIMENSIONS}, not {self.dimension}"
            )
        self._url = (settings.voyage_base_url or DEFAULT_BASE_URL).rstrip("/") + "/embeddings"
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        retries = urllib3.Retry(
            total=settings.embedding_max_retries,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=None,  # POST /embeddings has no side effects: safe to repeat
            backoff_factor=0.5,
            backoff_max=20,
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        self._http = urllib3.PoolManager(
            retries=retries, timeout=urllib3.Timeout(total=settings.embedding_timeout_s), maxsize=2
        )
        # A search waits for this: one short attempt, one retry after a fixed short pause (a
        # Retry-After of minutes is passed on to the caller, never slept through).
        self._query_retries = urllib3.Retry(
            total=settings.query_embedding_max_retries,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=None,
            backoff_factor=QUERY_RETRY_PAUSE_S,
            backoff_max=QUERY_RETRY_PAUSE_S,
            respect_retry_after_header=False,
            raise_on_status=False,
        )
        self._query_timeout = urllib3.Timeout(total=settings.query_embedding_timeout_s)

    def request_body(self, texts: list[str], input_type: str) -> dict:
        body = {
            "input": texts,
            "model": self.model,
            "input_type": input_type,
            "truncation": True,
            "encoding_format": "base64",  # 4 bytes a number instead of ~20 characters of JSON
        }
        if self._flexible:
            body["output_dimension"] = self.dimension
        return body

    def _post(self, body: dict, *, query: bool = False) -> dict:
        import urllib3

        options = {"retries": self._query_retries, "timeout": self._query_timeout} if query else {}
        try:
            response = self._http.request(
                "POST", self._url, body=json.dumps(body).encode(), headers=self._headers, **options
            )
        except urllib3.exceptions.HTTPError as error:  # timeouts and connection errors after retries
            raise VoyageUnavailable(f"Voyage did not answer: {error}", RETRY_AFTER_DEFAULT_S) from error
        text = response.data.decode("utf-8", "replace")
        if response.status in PERMANENT_STATUSES:
            raise ModelOutputRejected(f"Voyage rejected the request: {_detail(text)[:300]}")
        if response.status in RETRY_STATUSES:
            raise VoyageUnavailable(
                f"Voyage answered {response.status} after retries: {_detail(text)[:300]}",
                _retry_after(response.headers.get("retry-after")),
            )
        if response.status != 200:  # 401/403: a configuration problem; raise so nothing is marked failed
            raise RuntimeError(f"Voyage answered {response.status}: {_detail(text)[:300]}")
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise VoyageUnavailable(f"Voyage answered with invalid JSON: {text[:200]!r}") from error

    def _embed(self, texts: list[str], input_type: str) -> list[list[float]]:
        vectors: list[list[float]] = []
        for batch in request_batches(texts):
            answer = self._post(self.request_body(batch, input_type), query=input_type == "query")
            data = sorted(answer.get("data", []), key=lambda d: d["index"])
            if len(data) != len(batch):
                raise ModelOutputRejected(f"Voyage returned {len(data)} embeddings for {len(batch)} texts")
            for entry in data:
                vector = decode_embedding(entry["embedding"])
                if len(vector) != self.dimension:
                    raise EmbeddingDimensionMismatch(
                        f"{self.model} returned {len(vector)} dimensions; the database expects {self.dimension} "
                        "(COLLECTIONS_EMBEDDING_DIMENSION)"
                    )
                vectors.append(vector)
        return vectors

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._embed(texts, "document") if texts else []

    def embed_query(self, text: str) -> list[float]:
        return self._embed([text], "query")[0]


def decode_embedding(value: str | list[float]) -> list[float]:
    """A base64 little-endian float32 vector (or a plain list, if the API ever answers floats)."""
    if isinstance(value, list):
        return [float(v) for v in value]
    floats = array("f", base64.b64decode(value))
    if sys.byteorder != "little":
        floats.byteswap()
    return floats.tolist()


def _retry_after(value: str | None) -> float:
    """Seconds from a Retry-After header, bounded; the default for anything else. RFC 9110 §10.2.3:
    `HTTP-date / delay-seconds`, delay-seconds = 1*DIGIT; so "nan", "inf", "-5" or "2.5" are not
    numbers to trust (float() accepts them, and a NaN made the API's 503 a 500)."""
    value = (value or "").strip()
    if not value:
        return RETRY_AFTER_DEFAULT_S
    if value.isascii() and value.isdigit():
        seconds = float(value)
    else:
        from datetime import UTC, datetime
        from email.utils import parsedate_to_datetime

        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return RETRY_AFTER_DEFAULT_S
    return min(max(seconds, 1.0), RETRY_AFTER_MAX_S)


def _detail(text: str) -> str:
    try:
        return str(json.loads(text).get("detail", text))
    except (json.JSONDecodeError, AttributeError):
        return text
