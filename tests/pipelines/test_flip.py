"""flip: smoke the idle slot with each trigger's synthetic event, then set `active` and run up."""

from __future__ import annotations

import pytest

from pipelines.errors import NotFound, SmokeFailed
from pipelines.flip import Invocation, flip, smoke_cases
from pipelines.outputs import StackOutputs
from services import catalog
from services.core.contracts import EventBridgeEvent, S3ObjectCreated


def _outputs(service: str, slots=("blue", "green"), active="blue") -> StackOutputs:
    names = {s: f"collections-dev-{service.replace('_', '-')}-{s}" for s in slots}
    service_outputs = {"active_slot": active, "alias_arn": f"arn:aws:lambda:::{names[active]}:live",
                       "function_names": names, "triggers": []}
    return StackOutputs.model_validate({"stack": "dev", "region": "eu-west-1", "bucket": "collections-dev-b",
                                        "services": {service: service_outputs}})


class FakeInvoker:
    def __init__(self, answers=None):
        self.calls: list[tuple[str, str, dict]] = []
        self.answers = answers or {}

    def invoke(self, function_name, qualifier, event):
        self.calls.append((function_name, qualifier, event))
        kind = "http" if event.get("version") == "2.0" else event["source"]
        default = Invocation(200, None, {"statusCode": 200, "body": "{\"status\":\"ok\"}"} if kind == "http" else None)
        return self.answers.get(kind, default)


class FakeStack:
    def __init__(self):
        self.calls: list[tuple] = []

    def set_active(self, service, slot):
        self.calls.append(("set_active", service, slot))

    def up(self):
        self.calls.append(("up",))


def test_smoke_passes_then_config_is_set_and_up_runs():
    outputs, invoker, stack = _outputs("api"), FakeInvoker(), FakeStack()
    result = flip(outputs, outputs.service("api"), "green", invoker, lambda: stack, progress=lambda m: None)
    assert result.outcome == "flipped" and [c["ok"] for c in result.smoke] == [True]
    assert invoker.calls[0][:2] == ("collections-dev-api-green", "live")  # the idle slot's alias
    assert stack.calls == [("set_active", "api", "green"), ("up",)]


def test_smoke_failure_flips_nothing():
    outputs, stack = _outputs("api"), FakeStack()
    invoker = FakeInvoker({"http": Invocation(200, None, {"statusCode": 502, "body": "bad gateway"})})
    with pytest.raises(SmokeFailed, match="expected HTTP 200, got 502") as caught:
        flip(outputs, outputs.service("api"), "green", invoker, lambda: stack, progress=lambda m: None)
    assert caught.value.exit_code == 9
    assert stack.calls == []


def test_function_error_on_a_pipeline_event_flips_nothing():
    outputs, stack = _outputs("image_processor"), FakeStack()
    invoker = FakeInvoker({"aws.s3": Invocation(200, "Unhandled", {"errorMessage": "NoSuchKey"})})
    with pytest.raises(SmokeFailed, match="s3: function error Unhandled"):
        flip(outputs, outputs.service("image_processor"), "green", invoker, lambda: stack, progress=lambda m: None)
    assert len(invoker.calls) == 2  # both triggers were tried, the report names every failure
    assert stack.calls == []


def test_one_event_per_trigger_kind_shaped_as_aws_delivers_it():
    outputs = _outputs("image_processor")
    cases = {c.kind: c for c in smoke_cases(outputs, outputs.service("image_processor"))}
    assert sorted(cases) == ["event", "s3"]
    s3 = S3ObjectCreated.from_event(EventBridgeEvent.model_validate(cases["s3"].event))
    assert s3.bucket == "collections-dev-b" and s3.key.startswith(catalog.UPLOADS_PREFIX)
    detail = EventBridgeEvent.model_validate(cases["event"].event).pipeline_detail()
    assert detail.DETAIL_TYPE == catalog.PROCESSING_REQUESTED  # the contract model accepts it

    cleanup = _outputs("cleanup")
    (case,) = smoke_cases(cleanup, cleanup.service("cleanup"))
    assert case.kind == "schedule" and case.event["detail"] == {"dry_run": True}
    assert case.event["detail-type"] == "Scheduled Event"

    api = _outputs("api")
    (http,) = smoke_cases(api, api.service("api"))
    assert http.event["requestContext"]["http"]["method"] == "GET" and http.event["rawPath"] == "/health"


def test_http_smoke_event_is_served_by_a_real_asgi_adapter():
    """The synthetic API Gateway v2.0 event is one Mangum accepts (what the api handler runs)."""
    from fastapi import FastAPI
    from mangum import Mangum

    app = FastAPI()

    @app.get("/health")
    def health():
        return {"status": "ok"}

    outputs = _outputs("api")
    (case,) = smoke_cases(outputs, outputs.service("api"))
    answer = Mangum(app, lifespan="off")(case.event, None)
    assert answer["statusCode"] == 200


def test_flip_to_the_active_slot_is_a_noop():
    outputs, invoker = _outputs("api"), FakeInvoker()
    assert flip(outputs, outputs.service("api"), "blue", invoker, None, progress=lambda m: None).outcome == "noop"
    assert invoker.calls == []


def test_flip_to_an_undefined_slot_says_how_to_add_it():
    outputs = _outputs("api", slots=("blue",))
    with pytest.raises(NotFound, match="no 'green' slot.*pulumi up"):
        flip(outputs, outputs.service("api"), "green", FakeInvoker(), None, progress=lambda m: None)


def test_without_pulumi_the_exact_commands_are_printed():
    outputs, messages = _outputs("api"), []
    result = flip(outputs, outputs.service("api"), "green", FakeInvoker(), None, progress=messages.append)
    assert result.outcome == "commands"
    assert result.commands == [
        "pulumi config set --path --stack dev 'collections:services.api.active' green",
        "pulumi up --stack dev",
    ]
    assert "pulumi up --stack dev" in messages[-1]


def test_config_key_matches_the_pulumi_program():
    """The key flip writes (path form) is the one infra/config.py reads for the active slot."""
    import infra.config as infra_config
    from pipelines.flip import CONFIG_KEY

    namespace, _, path = CONFIG_KEY.format(service="api").partition(":")
    assert namespace == infra_config.PROJECT
    values: dict = {"slots": {"blue": {}, "green": {"package": "image"}}}
    *parents, leaf = path.split(".")
    values[leaf] = "green"
    for parent in reversed(parents):
        values = {parent: values}
    config = infra_config.parse("dev", "eu-west-1", values)
    assert config.services["api"].active == "green"


def test_automation_stack_sets_the_path_config_and_runs_up(monkeypatch, tmp_path):
    """AutomationStack against the real pulumi.automation API surface (select_stack faked: no CLI here)."""
    from pulumi import automation

    from pipelines.flip import AutomationStack

    calls = []

    class Stack:
        def set_config(self, key, value, *, path=False):
            calls.append(("set_config", key, value, path))

        def up(self, on_output=None):
            on_output("Updating (dev)")
            calls.append(("up",))

    def select_stack(stack_name, work_dir):
        calls.append(("select_stack", stack_name, work_dir))
        return Stack()

    monkeypatch.setattr(automation, "select_stack", select_stack)
    printed = []
    stack = AutomationStack("dev", tmp_path, printed.append)
    stack.set_active("image_processor", "green")
    stack.up()
    assert calls[0] == ("select_stack", "dev", str(tmp_path))
    _, key, value, path = calls[1]
    assert (key, path) == ("collections:services.image_processor.active", True)
    assert isinstance(value, automation.ConfigValue) and value.value == "green" and not value.secret
    assert calls[2] == ("up",) and printed == ["Updating (dev)"]
