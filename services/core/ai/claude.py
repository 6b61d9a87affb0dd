"""Claude vision through the Anthropic Messages API (POST /v1/messages), with urllib3, with structured output.

Why not the `anthropic` SDK at run time: importing it loads httpx, anyio, its pydantic response
models and more (~3,400 modules), most of the analyzer's cold start (bench_coldstart: ~1.3 s of the
~2 s of CPU its first event cost). The
request is one JSON POST, so we send what the SDK sends (same path, headers that matter and body
bytes: compact JSON, UTF-8, no NaN) with urllib3, which botocore already ships. The tests run the
real SDK (a dev dependency only) against the same fake server to prove the bytes are equal.

The image goes in as a base64 content block; the answer comes back through one tool whose
`input_schema` is ImageAnalysis's JSON schema, and `tool_choice` forces the model to call it, so
the reply is JSON of that shape (then validated again with pydantic before anything is stored).

Failures, as the SDK handled them: 408/409/429/5xx, timeouts and connection errors are retried up
to `analyzer_max_retries` times (`x-should-retry: true|false` from the server wins), waiting what
`retry-after-ms`/`retry-after` say, else 0.5 s doubling up to 8 s with jitter; each attempt has
`analyzer_timeout_s`. What still fails raises ClaudeUnavailable (transient: the caller raises and
Lambda/EventBridge retry later). A Retry-After longer than RETRY_AFTER_MAX_S is not slept through
inside a 120 s function: it raises at once, so the event's own retry comes back later. A refusal, a
missing or invalid tool call, or a request the API rejects as bad (400/413/422: e.g. an image it
cannot read) is ModelOutputRejected: permanent. Any other status (401/403/404: configuration)
raises ClaudeError, so nothing is marked failed for it.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import time
from typing import Any

from pydantic import ValidationError

from services.core.ai import AnalysisResult, ImageAnalysis, ModelOutputRejected
from services.core.settings import ProgramSettings

log = logging.getLogger(__name__)

TOOL_NAME = "record_image_analysis"
MAX_OUTPUT_TOKENS = 1024
SYSTEM_PROMPT = (
    "You catalogue images in a personal image collection. Look at the image and record what a "
    "person would search for: a short title, a factual description, the single best category, "
    "lowercase tags, the dominant colours as plain names, and any legible text verbatim. "
    "Describe only what is visible; do not guess names of private people."
)

DEFAULT_BASE_URL = "https://api.anthropic.com"
# The Messages API version the locked SDK sent (anthropic 2.16.0's ANTHROPIC_API_VERSION); the proof
# test fails when the SDK in the dev environment sends another one.
API_VERSION = "2026-10-21"
RETRY_STATUSES = frozenset((408, 409, 429))  # and every 5xx
PERMANENT_STATUSES = frozenset((400, 413, 422))
INITIAL_RETRY_DELAY_S = 0.5
MAX_RETRY_DELAY_S = 8.0
RETRY_AFTER_MAX_S = 60.0


class ClaudeError(RuntimeError):
    """The API answered with an error that is neither transient nor the item's fault (401/403/404)."""

    def __init__(self, message: str, status: int | None = None, retry_after_s: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


class ClaudeUnavailable(ClaudeError):
    """Transient: rate limited, overloaded, server errors, timeouts or no connection, after the retries."""


def analysis_tool() -> dict[str, Any]:
    return {
        "name": TOOL_NAME,
        "description": "Record the structured analysis of the image.",
        "input_schema": ImageAnalysis.model_json_schema(),
    }


def encode_body(body: dict[str, Any]) -> bytes:
    """JSON as the SDK encodes request bodies: compact separators, UTF-8 rather than \\u escapes, no NaN."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


class AnthropicAnalyzer:
    def __init__(self, settings: ProgramSettings, api_key: str):
        import urllib3

        self.model = settings.analyzer_model
        self.api_key = api_key
        self.max_retries = settings.analyzer_max_retries
        self._url = (settings.anthropic_base_url or DEFAULT_BASE_URL).rstrip("/") + "/v1/messages"
        self._headers = {
            "accept": "application/json",
            "content-type": "application/json",
            "anthropic-version": API_VERSION,
            "authorization": f"Bearer {api_key}",
        }
        # Retries are ours (below), with the SDK's rules; urllib3 only sends, within the timeout.
        self._http = urllib3.PoolManager(
            retries=False, timeout=urllib3.Timeout(total=settings.analyzer_timeout_s), maxsize=2
        )
        self._tool = analysis_tool()

    def request_body(self, image: bytes, media_type: str) -> dict[str, Any]:
        return {
            "max_tokens": MAX_OUTPUT_TOKENS,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": media_type,
                                "data": base64.b64encode(image).decode("ascii"),
                            },
                        },
                        {"type": "text", "text": "Analyse this image."},
                    ],
                }
            ],
            "model": self.model,
            "system": SYSTEM_PROMPT,
            "tool_choice": {"type": "tool", "name": TOOL_NAME},
            "tools": [self._tool],
        }

    def analyze(self, image: bytes, media_type: str) -> AnalysisResult:
        return self._result(self.create_message(self.request_body(image, media_type)))

    def create_message(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/messages with the SDK's retry rules; the decoded Message on 200."""
        import urllib3

        payload = encode_body(body)
        attempt = 0
        while True:
            try:
                response = self._http.request("POST", self._url, body=payload, headers=self._headers)
            except urllib3.exceptions.HTTPError as error:  # timeouts, refused or reset connections
                if attempt < self.max_retries:
                    attempt += 1
                    time.sleep(_backoff(attempt))
                    continue
                raise ClaudeUnavailable(f"the Anthropic API did not answer: {error}") from error
            status, text = response.status, response.data.decode("utf-8", "replace")
            if status == 200:
                try:
                    return json.loads(text)
                except json.JSONDecodeError as error:
                    raise ClaudeUnavailable(f"the Anthropic API answered invalid JSON: {text[:200]!r}") from error
            wait = _retry_after(response.headers)
            if _should_retry(status, response.headers.get("x-should-retry")) and attempt < self.max_retries:
                if wait is not None and wait > RETRY_AFTER_MAX_S:
                    raise ClaudeUnavailable(f"{status} {_message(text)}; retry after {wait:.0f} s", status, wait)
                attempt += 1
                time.sleep(wait if wait is not None and wait > 0 else _backoff(attempt))
                continue
            detail = f"{status} {_message(text)}"
            if status in PERMANENT_STATUSES:
                raise ModelOutputRejected(f"the model API rejected the request: {detail}")
            if status in RETRY_STATUSES or status >= 500:
                raise ClaudeUnavailable(f"the Anthropic API answered {detail} after {attempt} retries", status, wait)
            raise ClaudeError(f"the Anthropic API answered {detail}", status)

    def _result(self, response: dict[str, Any]) -> AnalysisResult:
        usage = _usage(response)
        stop_reason = response.get("stop_reason")
        if stop_reason == "refusal":
            raise ModelOutputRejected("the model refused to analyse this image")
        call = next(
            (
                block
                for block in response.get("content") or []
                if isinstance(block, dict) and block.get("type") == "tool_use" and block.get("name") == TOOL_NAME
            ),
            None,
        )
        if call is None:
            raise ModelOutputRejected(f"the model did not call {TOOL_NAME} (stop_reason={stop_reason})")
        if stop_reason == "max_tokens":
            raise ModelOutputRejected("the model's answer was cut off at the output token limit")
        try:
            analysis = ImageAnalysis.model_validate(call.get("input"))
        except ValidationError as error:
            raise ModelOutputRejected(f"invalid model output: {_short(error)}") from None
        return AnalysisResult(analysis=analysis, model=response.get("model") or self.model, usage=usage)


def _should_retry(status: int, should_retry: str | None) -> bool:
    if should_retry in ("true", "false"):  # the server's word wins, as in the SDK
        return should_retry == "true"
    return status in RETRY_STATUSES or status >= 500


def _backoff(attempt: int) -> float:
    """The SDK's exponential backoff: 0.5 s doubling per retry, at most 8 s, minus up to 25 % jitter."""
    return min(INITIAL_RETRY_DELAY_S * 2.0 ** (attempt - 1), MAX_RETRY_DELAY_S) * (1 - 0.25 * random.random())


def _retry_after(headers: Any) -> float | None:
    """Seconds the API asks us to wait: `retry-after-ms`, else `retry-after` (seconds or an HTTP date)."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / scale
        except ValueError:
            if name == "retry-after-ms":
                continue
            from email.utils import mktime_tz, parsedate_tz

            parsed = parsedate_tz(value)
            return None if parsed is None else float(mktime_tz(parsed) - time.time())
        return seconds if seconds == seconds and seconds not in (float("inf"), float("-inf")) else None
    return None


def _usage(response: dict[str, Any]) -> dict[str, Any]:
    usage = response.get("usage")
    if not isinstance(usage, dict):
        return {}
    return {k: v for k, v in usage.items() if isinstance(v, int)}


def _message(text: str) -> str:
    try:
        error = json.loads(text).get("error") or {}
        message = error.get("message") if isinstance(error, dict) else None
    except (json.JSONDecodeError, AttributeError):
        message = None
    return (message or text)[:300]


def _short(error: ValidationError) -> str:
    parts = [f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in error.errors()[:3]]
    return "; ".join(parts)
