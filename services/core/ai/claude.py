"""Claude vision through the Anthropic Messages API, with structured output.

The image goes in as a base64 content block; the answer comes back through one tool whose
`input_schema` is ImageAnalysis's JSON schema, and `tool_choice` forces the model to call it, so
the reply is JSON of that shape (then validated again with pydantic before anything is stored).

Failures: the SDK retries 408/409/429/5xx and connection errors itself (`max_retries`,
`timeout` from the settings); what is still failing after that propagates, so the caller raises
and Lambda/EventBridge retry later. A refusal, a missing or invalid tool call, or a request the
API rejects as bad (400/413/422: e.g. an image it cannot read) is ModelOutputRejected: permanent.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from pydantic import ValidationError

from services.core.ai import AnalysisResult, ImageAnalysis, ModelOutputRejected
from services.core.settings import Settings

log = logging.getLogger(__name__)

TOOL_NAME = "record_image_analysis"
MAX_OUTPUT_TOKENS = 1024
SYSTEM_PROMPT = (
    "You catalogue images in a personal image collection. Look at the image and record what a "
    "person would search for: a short title, a factual description, the single best category, "
    "lowercase tags, the dominant colours as plain names, and any legible text verbatim. "
    "Describe only what is visible; do not guess names of private people."
)


def analysis_tool() -> dict[str, Any]:
    return {
        "name": TOOL_NAME,
        "description": "Record the structured analysis of the image.",
        "input_schema": ImageAnalysis.model_json_schema(),
    }


class AnthropicAnalyzer:
    def __init__(self, settings: Settings, api_key: str):
        import anthropic  # heavy: only the analyzer pays for it

        self.model = settings.analyzer_model
        self.client = anthropic.Anthropic(
            api_key=api_key,
            base_url=settings.anthropic_base_url,  # None: the SDK's default (or ANTHROPIC_BASE_URL)
            timeout=settings.analyzer_timeout_s,
            max_retries=settings.analyzer_max_retries,
        )
        self._permanent = (
            anthropic.BadRequestError,
            anthropic.UnprocessableEntityError,
            anthropic.ContentTooLargeError,
        )

    def analyze(self, image: bytes, media_type: str) -> AnalysisResult:
        try:
            response = self.client.messages.create(
                model=self.model,
                max_tokens=MAX_OUTPUT_TOKENS,
                system=SYSTEM_PROMPT,
                tools=[analysis_tool()],
                tool_choice={"type": "tool", "name": TOOL_NAME},
                messages=[
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
            )
        except self._permanent as error:
            raise ModelOutputRejected(f"the model API rejected the request: {_api_message(error)}") from error
        return self._result(response)

    def _result(self, response: Any) -> AnalysisResult:
        usage = _usage(response)
        if response.stop_reason == "refusal":
            raise ModelOutputRejected("the model refused to analyse this image")
        call = next(
            (b for b in response.content if getattr(b, "type", None) == "tool_use" and b.name == TOOL_NAME), None
        )
        if call is None:
            raise ModelOutputRejected(f"the model did not call {TOOL_NAME} (stop_reason={response.stop_reason})")
        if response.stop_reason == "max_tokens":
            raise ModelOutputRejected("the model's answer was cut off at the output token limit")
        try:
            analysis = ImageAnalysis.model_validate(call.input)
        except ValidationError as error:
            raise ModelOutputRejected(f"invalid model output: {_short(error)}") from None
        return AnalysisResult(analysis=analysis, model=response.model or self.model, usage=usage)


def _usage(response: Any) -> dict[str, Any]:
    usage = getattr(response, "usage", None)
    if usage is None:
        return {}
    return {k: v for k, v in usage.model_dump().items() if isinstance(v, int)}


def _api_message(error: Any) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        message = (body.get("error") or {}).get("message")
        if message:
            return f"{getattr(error, 'status_code', '?')} {message}"
    return str(error)[:300]


def _short(error: ValidationError) -> str:
    parts = [f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in error.errors()[:3]]
    return "; ".join(parts)
