"""flip: smoke the idle slot with each trigger's synthetic event, then set `active` and run up."""

from __future__ import annotations

import uuid

import boto3
import pytest
from botocore.stub import Stubber

from pipelines.errors import NotFound, ReleaseError, SmokeFailed
from pipelines.flip import Invocation, flip, smoke_cases
from pipelines.outputs import StackOutputs
from services import catalog
from services.core.contracts import EventBridgeEvent, S3ObjectCreated
from tests.pipelines.conftest import ROLE_NAME, FakeClock, tiny_zip


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
    """The Automation API stand-in: records the calls; `on_up` runs during the up (what AWS sees then)."""

    def __init__(self, on_up=None, active=None):
        self.calls: list[tuple] = []
        self.on_up = on_up
        self.configured = active  # what `pulumi config get` answers (None: not known)

    def active(self, service):
        return self.configured

    def set_active(self, service, slot):
        self.calls.append(("set_active", service, slot))
        self.configured = slot

    def up(self):
        self.calls.append(("up",))
        if self.on_up:
            self.on_up()


@pytest.fixture
def slots(clients):
    """slots("api"): blue and green functions on moto, blue's live on v1 (of 2), green's live on v1 (of 3)."""

    def make(service: str = "api", pc: int = 0, green_live: str = "1"):
        suffix = uuid.uuid4().hex[:8]
        lam = clients["lambda_client"]
        names = {s: f"collections-f{suffix}-{service.replace('_', '-')}-{s}" for s in ("blue", "green")}
        for slot, versions in (("blue", 2), ("green", 3)):
            lam.create_function(FunctionName=names[slot], Runtime="python3.12", Handler="handler.handler",
                                Role=f"arn:aws:iam::123456789012:role/{ROLE_NAME}", Code={"ZipFile": tiny_zip("0")})
            for _ in range(versions):
                lam.update_function_code(FunctionName=names[slot], ZipFile=tiny_zip(uuid.uuid4().hex))
                lam.publish_version(FunctionName=names[slot])
            lam.create_alias(FunctionName=names[slot], Name="live",
                             FunctionVersion=green_live if slot == "green" else "1")
        service_outputs = {"active_slot": "blue", "alias_arn": f"arn:aws:lambda:::{names['blue']}:live",
                           "function_names": names, "triggers": [], "provisioned_concurrency": pc}
        outputs = StackOutputs.model_validate({"stack": f"f{suffix}", "region": "us-east-1",
                                               "bucket": "collections-dev-b", "services": {service: service_outputs}})
        return outputs, lam, names

    return make


def _alias(lam, function):
    raw = lam.get_alias(FunctionName=function, Name="live")
    return raw["FunctionVersion"], (raw.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}


def test_prepare_moves_the_idle_alias_smokes_it_then_up_and_verify(slots):
    outputs, lam, names = slots()
    invoker, stack, messages = FakeInvoker(), FakeStack(), []
    result = flip(outputs, outputs.service("api"), "green", invoker, lambda: stack, messages.append, lambda_client=lam)
    assert result.outcome == "flipped" and result.version == "3"
    assert _alias(lam, names["green"]) == ("3", {})  # prepared on green's newest version
    assert _alias(lam, names["blue"]) == ("1", {})  # the previous slot is left as it was
    assert [c["ok"] for c in result.smoke] == [True]
    assert [c[:2] for c in invoker.calls] == [(names["green"], "live")] * 2  # smoke before, verify after
    assert stack.calls == [("set_active", "api", "green"), ("up",)]
    assert set(result.phases) == {"prepare", "up", "verify"}
    assert any("prepared" in m and "on v3" in m for m in messages)
    assert "flip --back --service api" in messages[-1]


def test_an_explicit_version_is_prepared(slots):
    outputs, lam, names = slots()
    flip(outputs, outputs.service("api"), "green", FakeInvoker(), FakeStack, lambda m: None, lambda_client=lam,
         version="2")
    assert _alias(lam, names["green"]) == ("2", {})


def test_smoke_failure_moves_no_consumer(slots):
    outputs, lam, _ = slots()
    stack = FakeStack()
    invoker = FakeInvoker({"http": Invocation(200, None, {"statusCode": 502, "body": "bad gateway"})})
    with pytest.raises(SmokeFailed, match="expected HTTP 200, got 502") as caught:
        flip(outputs, outputs.service("api"), "green", invoker, lambda: stack, lambda m: None, lambda_client=lam)
    assert caught.value.exit_code == 9
    assert stack.calls == []


def test_function_error_on_a_pipeline_event_flips_nothing(slots):
    outputs, lam, _ = slots("image_processor")
    stack = FakeStack()
    invoker = FakeInvoker({"aws.s3": Invocation(200, "Unhandled", {"errorMessage": "NoSuchKey"})})
    with pytest.raises(SmokeFailed, match="s3: function error Unhandled"):
        flip(outputs, outputs.service("image_processor"), "green", invoker, lambda: stack, lambda m: None,
             lambda_client=lam)
    assert len(invoker.calls) == 2  # both triggers were tried, the report names every failure
    assert stack.calls == []


def test_verify_after_the_up_catches_an_alias_moved_by_the_up(slots):
    outputs, lam, names = slots()
    stack = FakeStack(on_up=lambda: lam.update_alias(FunctionName=names["green"], Name="live", FunctionVersion="1"))
    with pytest.raises(ReleaseError, match=r"serves v1 100%, not v3; go back with .*flip --back"):
        flip(outputs, outputs.service("api"), "green", FakeInvoker(), lambda: stack, lambda m: None,
             lambda_client=lam)


def test_verify_smoke_failure_says_how_to_go_back(slots):
    outputs, lam, _ = slots()

    class BreaksAfterUp(FakeInvoker):
        def invoke(self, function_name, qualifier, event):
            if ("up",) in stack.calls:
                return Invocation(200, "Unhandled", {"errorMessage": "boom"})
            return super().invoke(function_name, qualifier, event)

    stack = FakeStack()
    with pytest.raises(SmokeFailed, match="Consumers are on green now; go back with"):
        flip(outputs, outputs.service("api"), "green", BreaksAfterUp(), lambda: stack, lambda m: None,
             lambda_client=lam)


class PcLambda:
    """moto for aliases and versions; a Stubber'd client for provisioned concurrency (moto has no such API)."""

    def __init__(self, moto_client, stubbed_client):
        self._moto, self._stubbed = moto_client, stubbed_client

    def get_provisioned_concurrency_config(self, **kwargs):
        return self._stubbed.get_provisioned_concurrency_config(**kwargs)

    def __getattr__(self, name):
        return getattr(self._moto, name)


def test_provisioned_concurrency_is_awaited_before_the_smoke(slots):
    outputs, lam, names = slots(pc=2)
    stubbed = boto3.client("lambda", region_name="us-east-1")
    clock, invoker = FakeClock(), FakeInvoker()
    with Stubber(stubbed) as stubber:
        for state in ("IN_PROGRESS", "READY"):
            stubber.add_response("get_provisioned_concurrency_config", {"Status": state},
                                 {"FunctionName": names["green"], "Qualifier": "live"})
        clock.hooks.append(lambda c: invoker.calls and pytest.fail("smoke before provisioned concurrency was READY"))
        flip(outputs, outputs.service("api"), "green", invoker, FakeStack, lambda m: None,
             lambda_client=PcLambda(lam, stubbed), clock=clock, poll_s=7)
        stubber.assert_no_pending_responses()
    assert clock.slept == [7]


def test_a_slot_without_the_services_provisioned_concurrency_is_refused(slots):
    outputs, lam, names = slots(pc=2)
    stubbed = boto3.client("lambda", region_name="us-east-1")
    stack = FakeStack()
    with Stubber(stubbed) as stubber:
        stubber.add_client_error("get_provisioned_concurrency_config", "ProvisionedConcurrencyConfigNotFoundException",
                                 http_status_code=404)
        with pytest.raises(ReleaseError, match="has none: all traffic would land on cold environments"):
            flip(outputs, outputs.service("api"), "green", FakeInvoker(), lambda: stack, lambda m: None,
                 lambda_client=PcLambda(lam, stubbed), clock=FakeClock())
    assert stack.calls == []


def test_back_returns_to_the_previous_slot_as_it_was_left(slots):
    outputs, lam, names = slots(green_live="2")
    # after a flip to green the stack's outputs say green is active; blue is the previous slot
    data = outputs.model_dump()
    data["services"]["api"]["active_slot"] = "green"
    after = StackOutputs.model_validate(data)
    lam.update_alias(FunctionName=names["blue"], Name="live", FunctionVersion="2")
    invoker, stack = FakeInvoker(), FakeStack()
    service = after.service("api")
    result = flip(after, service, service.idle_slot, invoker, lambda: stack, lambda m: None, lambda_client=lam,
                  back=True)
    assert (result.slot, result.version) == ("blue", "2")
    assert _alias(lam, names["blue"]) == ("2", {})  # not moved to blue's newest: kept as it was
    assert stack.calls == [("set_active", "api", "blue"), ("up",)]
    assert len(invoker.calls) == 1  # no smoke before going back; verified after


def test_back_from_outputs_older_than_the_flip_is_refused(slots):
    """Outputs read before a flip to green still say blue is active: "back" from them would be green again."""
    outputs, lam, names = slots(green_live="2")
    stack = FakeStack(active="green")  # the flip to green happened: the stack's config says so
    service = outputs.service("api")
    with pytest.raises(ReleaseError, match="already makes green active, but the outputs given say blue"):
        flip(outputs, service, service.idle_slot, FakeInvoker(), lambda: stack, lambda m: None, lambda_client=lam,
             back=True)
    assert stack.calls == [] and _alias(lam, names["green"]) == ("2", {})


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
    assert flip(outputs, outputs.service("api"), "blue", invoker, None, lambda m: None,
                lambda_client=None).outcome == "noop"
    assert invoker.calls == []


def test_flip_to_an_undefined_slot_says_how_to_add_it():
    outputs = _outputs("api", slots=("blue",))
    with pytest.raises(NotFound, match="no 'green' slot.*pulumi up"):
        flip(outputs, outputs.service("api"), "green", FakeInvoker(), None, lambda m: None, lambda_client=None)


def test_without_pulumi_the_slot_is_prepared_and_the_exact_commands_are_printed(slots):
    outputs, lam, names = slots()
    messages = []
    result = flip(outputs, outputs.service("api"), "green", FakeInvoker(), None, messages.append, lambda_client=lam)
    assert result.outcome == "commands" and _alias(lam, names["green"]) == ("3", {})
    assert result.commands == [
        f"pulumi config set --path --stack {outputs.stack} 'collections:services.api.active' green",
        f"pulumi up --refresh --stack {outputs.stack}",
    ]
    assert f"pulumi up --refresh --stack {outputs.stack}" in messages[-1]


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

        def get_config(self, key, *, path=False):
            calls.append(("get_config", key, path))
            raise automation.CommandError(automation.CommandResult("", "config key not found", 255))

        def up(self, on_output=None, refresh=None):
            on_output("Updating (dev)")
            calls.append(("up", refresh))

    def select_stack(stack_name, work_dir):
        calls.append(("select_stack", stack_name, work_dir))
        return Stack()

    monkeypatch.setattr(automation, "select_stack", select_stack)
    printed = []
    stack = AutomationStack("dev", tmp_path, printed.append)
    assert stack.active("image_processor") == "blue"  # not set: infra/config.py's default
    stack.set_active("image_processor", "green")
    stack.up()
    assert calls[0] == ("select_stack", "dev", str(tmp_path))
    assert calls[1] == ("get_config", "collections:services.image_processor.active", True)
    _, key, value, path = calls[2]
    assert (key, path) == ("collections:services.image_processor.active", True)
    assert isinstance(value, automation.ConfigValue) and value.value == "green" and not value.secret
    assert calls[3] == ("up", True) and printed == ["Updating (dev)"]  # refreshed: gradual aliases kept


def test_flip_command_prepares_and_prints_the_commands_without_pulumi(slots, tmp_path, monkeypatch, capsys):
    from pipelines.cli import main

    outputs, lam, names = slots()
    path = tmp_path / "outputs.json"
    path.write_text(outputs.model_dump_json())
    monkeypatch.setattr("shutil.which", lambda name: None)  # no Pulumi CLI: commands are printed

    class Invoker(FakeInvoker):  # moto cannot run Lambda code: the invoke itself is faked
        def __init__(self, client):
            super().__init__()

    monkeypatch.setattr("pipelines.flip.LambdaInvoker", Invoker)
    assert main(["flip", "--outputs", str(path), "--service", "api", "--to", "green", "--version", "2"]) == 0
    assert _alias(lam, names["green"]) == ("2", {})
    assert '"outcome": "commands"' in capsys.readouterr().out
    assert main(["flip", "--outputs", str(path), "--service", "api", "--back"]) == 0  # active blue: back = green
    with pytest.raises(SystemExit) as caught:
        main(["flip", "--outputs", str(path), "--service", "api", "--to", "green", "--back"])
    assert caught.value.code == 2
