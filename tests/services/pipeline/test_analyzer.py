"""Analyzer: our Messages API client and the real anthropic SDK against a fake Messages API on 127.0.0.1
(same request bytes), the local analyzer, transient vs permanent failures, and idempotency."""

from __future__ import annotations

import base64
import uuid

import anthropic
import pytest

from services.core.ai import claude as claude_module
from services.core.ai.claude import TOOL_NAME, AnthropicAnalyzer, ClaudeError, ClaudeUnavailable
from services.core.contracts import ImageProcessed
from services.core.models import ItemStatus, Stage
from services.core.pipeline_store import NotReadyYet
from services.core.storage import thumbnail_key
from tests.services.pipeline.conftest import (
    deliver_concurrently,
    image_bytes,
    load_item,
    make_item,
    pipeline_event,
    put_object,
    worked_once,
)

ANSWER = {
    "title": "Red kite over a beach",
    "description": "A red kite flies above a sandy beach under a clear sky.",
    "category": "nature",
    "tags": ["Kite", "beach", "sky", "kite"],
    "colors": ["blue", "red", "beige"],
    "visible_text": "",
}
SERVED_MODEL = "claude-haiku-4-5-20251001"


def message(tool_input=ANSWER, stop_reason="tool_use", content=None) -> dict:
    blocks = content if content is not None else [
        {"type": "tool_use", "id": "toolu_01", "name": TOOL_NAME, "input": tool_input}
    ]  # fmt: skip
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": SERVED_MODEL,
        "content": blocks,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 1234, "output_tokens": 56},
    }


def error(status: int, kind: str, text: str) -> tuple:
    # retry-after-ms keeps the SDK's retries fast (it honours the header).
    return (status, {"type": "error", "error": {"type": kind, "message": text}}, {"retry-after-ms": "5"})


@pytest.fixture
def claude(env, fake_api):
    settings = env.model_copy(update={"anthropic_base_url": fake_api.url, "analyzer_max_retries": 2})
    return AnthropicAnalyzer(settings, "sk-test-key")


@pytest.fixture
def analyzer_for(publisher):
    from services.analyzer.logic import ImageAnalyzer

    return lambda model: ImageAnalyzer(analyzer=model, publisher=publisher)


def processed_item(owner: str, **values):
    """A processed item whose 1024 px thumbnail is on S3."""
    item_id = uuid.uuid4()
    keys = {str(s): thumbnail_key(owner, item_id, s) for s in (256, 1024)}
    thumb = image_bytes("WEBP", (1024, 683), (40, 90, 200))
    for key in keys.values():
        put_object(key, thumb, "image/webp")
    item = make_item(
        owner,
        id=item_id,
        status=ItemStatus.processed,
        thumbnail_keys=keys,
        analysis_thumbnail_key=keys["1024"],
        list_thumbnail_key=keys["256"],
        sha256="ab" * 32,
        **values,
    )
    return item, thumb


def event_for(item) -> ImageProcessed:
    return ImageProcessed(
        item_id=item.id, owner_id=item.owner_id, thumbnail_key=item.thumbnail_keys["1024"], sha256="x"
    )


def test_claude_analysis_is_validated_and_stored(claude, analyzer_for, fake_api, publisher, owner, env):
    fake_api.script((200, message()))
    item, thumb = processed_item(owner)

    outcome = analyzer_for(claude).run(event_for(item))

    assert outcome.result == "analyzed"
    item = load_item(item.id)
    assert item.status == ItemStatus.analyzed
    assert (item.title, item.category, item.visible_text) == (ANSWER["title"], "nature", None)
    assert item.tags == ["kite", "beach", "sky"]  # lowercased, de-duplicated
    assert item.colors == ["blue", "red", "beige"]
    assert item.analysis_model == SERVED_MODEL
    assert item.analysis["usage"] == {"input_tokens": 1234, "output_tokens": 56}
    (event,) = publisher.details
    assert (event.DETAIL_TYPE, event.analysis_model) == ("ImageAnalyzed", SERVED_MODEL)

    (request,) = fake_api.requests
    assert request["path"] == "/v1/messages"
    assert fake_api.api_key(request) == "sk-test-key"
    body = request["json"]
    assert body["model"] == env.analyzer_model
    assert body["tool_choice"] == {"type": "tool", "name": TOOL_NAME}
    assert body["tools"][0]["input_schema"]["properties"]["category"]["enum"][0] == "people"
    image = body["messages"][0]["content"][0]
    assert image["source"]["media_type"] == "image/webp"
    assert base64.b64decode(image["source"]["data"]) == thumb


def test_our_request_is_the_sdks_request_and_both_read_the_fakes_answer(claude, fake_api, env):
    """The real anthropic SDK, called as this module called it before, and our client: same bytes."""
    fake_api.script((200, message()))
    body = claude.request_body(b"\x89fake image \xe2\x82\xac", "image/webp")
    sdk = anthropic.Anthropic(api_key="sk-test-key", base_url=fake_api.url, max_retries=0)
    sdk_message = sdk.messages.create(
        model=body["model"], max_tokens=body["max_tokens"], system=body["system"], tools=body["tools"],
        tool_choice=body["tool_choice"], messages=body["messages"],
    )  # fmt: skip
    ours = claude.create_message(body)

    sdk_request, our_request = fake_api.requests
    assert sdk_request["path"] == our_request["path"] == "/v1/messages"
    assert our_request["body"] == sdk_request["body"]  # byte for byte
    for header in ("content-type", "accept", "anthropic-version", "authorization"):
        assert our_request["headers"].get(header) == sdk_request["headers"].get(header), header
    assert fake_api.api_key(our_request) == "sk-test-key"
    (block,) = sdk_message.content
    assert ours["content"][0]["input"] == block.input and ours["model"] == sdk_message.model == SERVED_MODEL
    assert claude._result(ours).usage == {"input_tokens": 1234, "output_tokens": 56}


def test_rate_limit_then_success_is_retried(claude, analyzer_for, fake_api, owner):
    fake_api.script(error(429, "rate_limit_error", "slow down"), (200, message()))
    item, _ = processed_item(owner)
    assert analyzer_for(claude).run(event_for(item)).result == "analyzed"
    assert len(fake_api.requests) == 2


def test_repeated_server_errors_raise_and_leave_the_item_for_a_retry(claude, analyzer_for, fake_api, publisher, owner):
    fake_api.script(error(500, "api_error", "internal"))
    item, _ = processed_item(owner)
    with pytest.raises(ClaudeUnavailable, match="500 internal"):
        analyzer_for(claude).run(event_for(item))
    assert len(fake_api.requests) == 3  # one attempt and analyzer_max_retries=2 retries
    assert load_item(item.id).status == ItemStatus.processed
    assert publisher.details == []


def test_overloaded_is_retried_with_the_servers_retry_after(claude, fake_api):
    fake_api.script(
        (529, {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}, {"retry-after": "0.01"}),
        (200, message()),
    )
    assert claude.analyze(b"img", "image/webp").analysis.title == ANSWER["title"]
    assert len(fake_api.requests) == 2


def test_the_server_can_say_not_to_retry(claude, fake_api):
    status, body, headers = error(503, "api_error", "maintenance")
    fake_api.script((status, body, {**headers, "x-should-retry": "false"}))
    with pytest.raises(ClaudeUnavailable, match="503 maintenance"):
        claude.analyze(b"img", "image/webp")
    assert len(fake_api.requests) == 1


def test_a_retry_after_longer_than_the_function_can_wait_raises_at_once(claude, fake_api):
    """Minutes of Retry-After are not slept through inside a 120 s function: the event's retry waits."""
    fake_api.script(error(429, "rate_limit_error", "slow down")[:2] + ({"retry-after": "600"},))
    with pytest.raises(ClaudeUnavailable) as raised:
        claude.analyze(b"img", "image/webp")
    assert raised.value.retry_after_s == 600.0 and len(fake_api.requests) == 1


def test_no_connection_is_transient_after_the_retries(env, monkeypatch):
    monkeypatch.setattr(claude_module, "_backoff", lambda attempt: 0.0)
    settings = env.model_copy(
        update={"anthropic_base_url": "http://127.0.0.1:9", "analyzer_max_retries": 1, "analyzer_timeout_s": 2.0}
    )
    with pytest.raises(ClaudeUnavailable, match="did not answer"):
        AnthropicAnalyzer(settings, "sk-test-key").analyze(b"img", "image/webp")


def test_a_rejected_key_raises_and_leaves_the_item_for_a_retry(claude, analyzer_for, fake_api, publisher, owner):
    """401 is the deployment's problem, not the item's: nothing is marked failed."""
    fake_api.script(error(401, "authentication_error", "invalid x-api-key"))
    item, _ = processed_item(owner)
    with pytest.raises(ClaudeError, match="401 invalid x-api-key") as raised:
        analyzer_for(claude).run(event_for(item))
    assert not isinstance(raised.value, ClaudeUnavailable) and len(fake_api.requests) == 1
    assert load_item(item.id).status == ItemStatus.processed
    assert publisher.details == []


PERMANENT = [
    ("invalid category", (200, message({**ANSWER, "category": "spaceships"})), "invalid model output: category"),
    ("missing title", (200, message({k: v for k, v in ANSWER.items() if k != "title"})), "invalid model output: title"),
    (
        "no tool call",
        (200, message(content=[{"type": "text", "text": "A kite."}], stop_reason="end_turn")),
        "did not call record_image_analysis",
    ),
    ("refusal", (200, message(content=[], stop_reason="refusal")), "refused"),
    ("cut off", (200, message(stop_reason="max_tokens")), "cut off"),
    ("bad request", error(400, "invalid_request_error", "Could not process image"), "Could not process image"),
]


@pytest.mark.parametrize(("case", "response", "reason"), PERMANENT, ids=[p[0] for p in PERMANENT])
def test_unusable_answers_fail_the_item_with_a_reason(
    claude, analyzer_for, fake_api, publisher, owner, case, response, reason
):
    fake_api.script(response)
    item, _ = processed_item(owner)

    outcome = analyzer_for(claude).run(event_for(item))

    assert outcome.result == "failed"
    item = load_item(item.id)
    assert (item.status, item.failed_stage) == (ItemStatus.failed, Stage.analyze)
    assert reason in item.failure_reason
    assert item.title is None
    assert [e.DETAIL_TYPE for e in publisher.details] == ["ItemFailed"]


def test_user_edited_fields_are_kept(claude, analyzer_for, fake_api, owner):
    fake_api.script((200, message()))
    item, _ = processed_item(owner, title="My kite", user_edited=True)
    analyzer_for(claude).run(event_for(item))
    item = load_item(item.id)
    assert item.title == "My kite"
    assert item.analysis["title"] == ANSWER["title"]
    assert item.status == ItemStatus.analyzed


def test_event_ahead_of_the_database_is_retried_not_dropped(claude, analyzer_for, owner):
    item = make_item(owner)  # still pending: the producer has not committed yet
    with pytest.raises(NotReadyYet):
        analyzer_for(claude).run(
            ImageProcessed(item_id=item.id, owner_id=owner, thumbnail_key="thumbnails/x/1024.webp", sha256="x")
        )


def test_event_for_an_item_already_analyzed_is_skipped(claude, analyzer_for, fake_api, owner):
    fake_api.script((200, message()))
    item, _ = processed_item(owner)
    analyzer = analyzer_for(claude)
    assert analyzer.run(event_for(item)).result == "analyzed"
    assert analyzer.run(event_for(item)).result == "skipped"
    assert len(fake_api.requests) == 1


def test_concurrent_deliveries_call_the_model_once(claude, analyzer_for, fake_api, publisher, owner):
    fake_api.script((200, message()))
    item, _ = processed_item(owner)
    analyzer = analyzer_for(claude)
    results = deliver_concurrently(lambda: analyzer.run(event_for(item)))
    assert worked_once(results, "analyzed"), results
    assert len(fake_api.requests) == 1
    assert len(publisher.of("ImageAnalyzed")) == 1


def test_handler_uses_claude_when_a_key_is_set(env, fake_api, owner, monkeypatch):
    from services.analyzer.handler import handler
    from services.core.settings import get_settings

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-from-env")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_api.url)
    get_settings.cache_clear()
    try:
        fake_api.script((200, message()))
        item, _ = processed_item(owner)
        assert handler(pipeline_event(event_for(item)), None)["result"] == "analyzed"
        assert fake_api.api_key(fake_api.requests[0]) == "sk-from-env"
        assert load_item(item.id).analysis_model == SERVED_MODEL
    finally:
        monkeypatch.delenv("ANTHROPIC_API_KEY")
        get_settings.cache_clear()


def test_without_a_key_the_local_analyzer_describes_the_pixels_and_says_so(env, owner, caplog):
    from services.analyzer.handler import handler

    item, _ = processed_item(owner)
    with caplog.at_level("WARNING"):
        result = handler(pipeline_event(event_for(item)), None)
    assert result["result"] == "analyzed"
    item = load_item(item.id)
    assert item.analysis_model.startswith("local-")
    assert item.colors[0] == "blue"  # the thumbnail is a blue rectangle
    assert "landscape" in item.tags
    assert "no vision model" in item.description
    assert any("ANTHROPIC_API_KEY is not set" in r.getMessage() for r in caplog.records)


def test_the_key_can_come_from_secrets_manager(env, monkeypatch):
    from services.core.ai import get_analyzer
    from services.core.aws import client

    arn = client("secretsmanager").create_secret(Name=f"anthropic-{uuid.uuid4().hex[:8]}", SecretString="sk-secret")[
        "ARN"
    ]
    analyzer = get_analyzer(env.model_copy(update={"anthropic_secret_arn": arn}))
    assert isinstance(analyzer, AnthropicAnalyzer)
    assert analyzer.api_key == "sk-secret"


def test_local_analysis_is_deterministic():
    from services.core.ai.local import LocalAnalyzer

    picture = image_bytes("WEBP", (300, 600), (240, 200, 40))
    first, second = (LocalAnalyzer().analyze(picture, "image/webp") for _ in range(2))
    assert first == second
    assert first.analysis.colors[0] == "yellow" and "portrait" in first.analysis.tags


def test_an_edit_made_while_the_model_answers_is_kept(env, analyzer_for, owner):
    """No lock is held during the model call, so the user can edit meanwhile: the edit wins."""
    from services.core.ai.local import LocalAnalyzer
    from services.core.database import session_scope
    from services.core.models import Item

    item, _ = processed_item(owner)

    class EditingMeanwhile(LocalAnalyzer):
        def analyze(self, image, media_type):
            with session_scope() as session:  # what PATCH /items/{id} does, mid call
                edited = session.get(Item, item.id)
                edited.title, edited.user_edited = "Mine", True
            return super().analyze(image, media_type)

    assert analyzer_for(EditingMeanwhile()).run(event_for(item)).result == "analyzed"
    analyzed = load_item(item.id)
    assert (analyzed.status, analyzed.title, analyzed.user_edited) == (ItemStatus.analyzed, "Mine", True)
    assert analyzed.analysis["title"] != "Mine" and analyzed.colors  # the analysis itself is stored
