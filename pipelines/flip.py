"""`flip`: make the idle blue/green slot the active one, landing on a prepared slot; `flip --back`.

API Gateway HTTP API integrations and EventBridge targets cannot split traffic between two
functions, so a flip moves every consumer at once. It therefore prepares the slot first:

1. prepare: the idle slot's `live` alias is moved to the intended version (default: that function's
   newest); where the service has provisioned concurrency, the slot's alias must have it and be
   READY; then one synthetic event per trigger kind of the service (as AWS would deliver it) must
   be answered cleanly: http -> GET /health answers 200; s3 -> an Object Created event for a key
   that does not exist is refused without an error; event -> a pipeline event for an unknown item
   is refused without an error; schedule -> a scheduled event with dry_run does nothing and returns.
   Any failure stops here: no consumer has moved.
2. up: the stack config `collections:services.<service>.active` is set to the slot and `pulumi up
   --refresh` runs (Automation API). Integration URIs and event-target ARNs update in place; new
   permissions are created before old ones go. Without the Pulumi CLI the commands are printed.
3. verify: the now-active alias is still on the prepared version and answers the smoke events again.

`flip --back` returns consumers to the other slot as it was left (its alias, versions and
provisioned concurrency stay until the operator prunes or removes it): no preparation, no smoke,
only the provisioned-concurrency check and the up. Each phase's duration is in the result.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from pipelines import concurrency
from pipelines.clock import Clock, SystemClock
from pipelines.errors import ReleaseError, SmokeFailed, aws_errors
from pipelines.outputs import SLOTS, ServiceOutputs, StackOutputs
from pipelines.traffic import Traffic
from services import catalog

SMOKE_OWNER = "collections-release-smoke"
CONFIG_KEY = "collections:services.{service}.active"  # infra/config.py reads it (path form)
DEFAULT_ACTIVE = "blue"  # infra/config.py: a service without `active` runs its blue slot


# -- the synthetic events ------------------------------------------------------------------------
def _eventbridge(source: str, detail_type: str, detail: dict[str, Any], region: str,
                 resources: list[str] | None = None) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": "000000000000",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": resources or [],
        "detail": detail,
    }


def http_health_event() -> dict[str, Any]:
    """API Gateway HTTP API (payload format 2.0) for GET /health, as Lambda receives it."""
    now = datetime.now(UTC)
    return {
        "version": "2.0",
        "routeKey": "GET /health",
        "rawPath": "/health",
        "rawQueryString": "",
        "headers": {"host": "smoke.invalid", "user-agent": SMOKE_OWNER, "accept": "application/json"},
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "smoke",
            "domainName": "smoke.invalid",
            "domainPrefix": "smoke",
            "http": {"method": "GET", "path": "/health", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                     "userAgent": SMOKE_OWNER},
            "requestId": str(uuid.uuid4()),
            "routeKey": "GET /health",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }


def s3_missing_object_event(bucket: str, region: str) -> dict[str, Any]:
    key = f"{catalog.UPLOADS_PREFIX}{SMOKE_OWNER}/{uuid.uuid4()}/does-not-exist.jpg"
    detail = {
        "version": "0",
        "bucket": {"name": bucket},
        "object": {"key": key, "size": 1, "etag": "0" * 32, "sequencer": "0"},
        "request-id": str(uuid.uuid4()),
        "requester": SMOKE_OWNER,
        "source-ip-address": "127.0.0.1",
        "reason": "PutObject",
    }
    return _eventbridge("aws.s3", "Object Created", detail, region, [f"arn:aws:s3:::{bucket}"])


def pipeline_unknown_item_event(detail_type: str, region: str) -> dict[str, Any]:
    item_id = str(uuid.uuid4())
    detail: dict[str, Any] = {"schema_version": 1, "item_id": item_id, "owner_id": SMOKE_OWNER}
    extra = {
        catalog.PROCESSING_REQUESTED: {"key": f"{catalog.UPLOADS_PREFIX}{SMOKE_OWNER}/{item_id}/x.jpg"},
        catalog.IMAGE_PROCESSED: {"thumbnail_key": f"{catalog.THUMBNAILS_PREFIX}{SMOKE_OWNER}/{item_id}/1024.webp",
                                  "sha256": "0" * 64},
        catalog.IMAGE_ANALYZED: {"analysis_model": "smoke"},
        catalog.IMAGE_READY: {"embedding_model": "smoke"},
        catalog.ITEM_FAILED: {"stage": "process", "reason": "smoke"},
    }
    detail.update(extra.get(detail_type, {}))
    return _eventbridge(catalog.PIPELINE_SOURCE, detail_type, detail, region)


def scheduled_dry_run_event(region: str) -> dict[str, Any]:
    return _eventbridge("aws.events", "Scheduled Event", {"dry_run": True}, region)


@dataclass(frozen=True)
class SmokeCase:
    kind: str
    description: str
    event: dict[str, Any]
    expect_status: int | None = None  # HTTP status in the handler's answer (http only)


def smoke_cases(outputs: StackOutputs, service: ServiceOutputs) -> list[SmokeCase]:
    """One case per trigger: the catalog's triggers (for detail-types), else the outputs' kinds."""
    try:
        triggers: list[Any] = list(catalog.function(service.name).triggers)
    except KeyError:
        triggers = []
    kinds = [t.kind for t in triggers] or list(service.triggers)
    cases: list[SmokeCase] = []
    for kind in dict.fromkeys(kinds):
        if kind == "http":
            cases.append(SmokeCase("http", "GET /health answers 200", http_health_event(), expect_status=200))
        elif kind == "s3":
            cases.append(SmokeCase("s3", "Object Created for a missing key is refused cleanly",
                                   s3_missing_object_event(outputs.bucket or "smoke-bucket", outputs.region)))
        elif kind == "event":
            detail_types = [d for t in triggers if t.kind == "event" for d in t.detail_types] or [
                catalog.IMAGE_PROCESSED]
            cases.append(SmokeCase("event", f"{detail_types[0]} for an unknown item is refused cleanly",
                                   pipeline_unknown_item_event(detail_types[0], outputs.region)))
        elif kind == "schedule":
            cases.append(SmokeCase("schedule", "scheduled run with dry_run returns",
                                   scheduled_dry_run_event(outputs.region)))
        else:
            raise ReleaseError(f"{service.name}: no smoke event for trigger kind {kind!r}")
    return cases


# -- invoking --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Invocation:
    status_code: int
    function_error: str | None
    payload: Any


class Invoker(Protocol):
    def invoke(self, function_name: str, qualifier: str, event: dict[str, Any]) -> Invocation: ...


class LambdaInvoker:
    def __init__(self, lambda_client: Any):
        self.client = lambda_client

    def invoke(self, function_name: str, qualifier: str, event: dict[str, Any]) -> Invocation:
        with aws_errors(f"invoking {function_name}:{qualifier}", self.client):
            answer = self.client.invoke(FunctionName=function_name, Qualifier=qualifier,
                                        InvocationType="RequestResponse", Payload=json.dumps(event).encode())
        raw = answer["Payload"].read()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode(errors="replace")
        return Invocation(answer.get("StatusCode", 0), answer.get("FunctionError"), payload)


def check_case(case: SmokeCase, result: Invocation) -> str | None:
    """None if the answer is clean, else what was wrong."""
    if result.function_error:
        return f"function error {result.function_error}: {json.dumps(result.payload)[:300]}"
    if result.status_code != 200:
        return f"invoke answered {result.status_code}"
    if case.expect_status is not None:
        got = result.payload.get("statusCode") if isinstance(result.payload, dict) else None
        if got != case.expect_status:
            return f"expected HTTP {case.expect_status}, got {got}: {json.dumps(result.payload)[:300]}"
    return None


# -- changing the stack ----------------------------------------------------------------------------
class StackConfigurator(Protocol):
    def active(self, service: str) -> str | None:
        """The slot the stack's config makes active (None: cannot tell)."""
        ...

    def set_active(self, service: str, slot: str) -> None: ...

    def up(self) -> None: ...


class AutomationStack:
    """The Pulumi Automation API on the project's own folder (where Pulumi.yaml is)."""

    def __init__(self, stack: str, work_dir: Path, progress: Callable[[str], None]):
        from pulumi import automation

        self.automation = automation
        self.stack = automation.select_stack(stack_name=stack, work_dir=str(work_dir))
        self.progress = progress

    def active(self, service: str) -> str | None:
        try:
            return self.stack.get_config(CONFIG_KEY.format(service=service), path=True).value
        except self.automation.CommandError:  # not set: infra/config.py's default
            return DEFAULT_ACTIVE

    def set_active(self, service: str, slot: str) -> None:
        self.stack.set_config(CONFIG_KEY.format(service=service),
                              self.automation.ConfigValue(value=slot), path=True)

    def up(self) -> None:
        # --refresh: in gradual stacks the aliases' versions are ignore_changes and would otherwise be
        # sent from Pulumi's state, undoing what collections-release (and this flip's prepare) did.
        self.stack.up(on_output=self.progress, refresh=True)


def manual_commands(stack: str, service: str, slot: str) -> list[str]:
    return [
        f"pulumi config set --path --stack {stack} '{CONFIG_KEY.format(service=service)}' {slot}",
        f"pulumi up --refresh --stack {stack}",
    ]


@dataclass
class FlipResult:
    service: str
    outcome: str  # flipped | noop | commands
    slot: str
    version: str = ""  # what the slot's alias serves
    smoke: list[dict[str, Any]] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)  # seconds: prepare, up, verify


def project_dir() -> Path:
    return Path(__file__).resolve().parent.parent


def smoke(outputs: StackOutputs, service: ServiceOutputs, function: str, invoker: Invoker,
          progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """Every trigger kind's synthetic event through the slot's alias; SmokeFailed names every failure."""
    name, report, failures = service.name, [], []
    for case in smoke_cases(outputs, service):
        started = time.perf_counter()
        answer = invoker.invoke(function, service.alias_name, case.event)
        problem = check_case(case, answer)
        report.append({"kind": case.kind, "check": case.description, "ok": problem is None,
                       "problem": problem, "ms": round((time.perf_counter() - started) * 1000)})
        progress(f"{name}: smoke {case.kind} on {function}:{service.alias_name}: "
                 + ("ok" if problem is None else f"FAILED: {problem}"))
        if problem:
            failures.append(f"{case.kind}: {problem}")
    if failures:
        raise SmokeFailed(f"{name}: {function}:{service.alias_name} failed its smoke test: " + "; ".join(failures))
    return report


def _provisioned_concurrency(lambda_client: Any, service: ServiceOutputs, function: str, clock: Clock,
                             poll_s: float, timeout_s: float, progress: Callable[[str], None]) -> None:
    if service.provisioned_concurrency <= 0:
        return
    if not concurrency.wait_ready(lambda_client, function, service.alias_name, clock, poll_s=poll_s,
                                  timeout_s=timeout_s, progress=progress):
        raise ReleaseError(
            f"{service.name}: the service runs with provisioned concurrency, but {function}:{service.alias_name} "
            "has none: all traffic would land on cold environments. Run `pulumi up` (the program configures it "
            "on every slot) and flip again"
        )


def flip(
    outputs: StackOutputs,
    service: ServiceOutputs,
    to: str,
    invoker: Invoker,
    configurator: Callable[[], StackConfigurator] | None,
    progress: Callable[[str], None] = print,
    *,
    lambda_client: Any,
    version: str = "latest",
    back: bool = False,
    clock: Clock | None = None,
    poll_s: float = 10,
    pc_timeout_s: float = 900,
) -> FlipResult:
    if to not in SLOTS:
        raise ReleaseError(f"--to must be one of {', '.join(SLOTS)}, got {to!r}")
    name, clock = service.name, clock or SystemClock()
    if to == service.active_slot:
        progress(f"{name}: {to} is already the active slot; nothing to flip")
        return FlipResult(name, "noop", to)
    function = service.slot_function(to)
    traffic = Traffic(lambda_client, function, service.alias_name)
    result = FlipResult(name, "flipped", to)
    stack = configurator() if configurator is not None else None
    configured = stack.active(name) if stack is not None else None
    if configured == to:
        # The outputs say another slot is active, the stack's config says `to` already is: the outputs
        # predate the last flip. Going "back" from them would re-apply the slot consumers are on now.
        raise ReleaseError(
            f"{name}: the stack's config already makes {to} active, but the outputs given say "
            f"{service.active_slot}: they are older than the last flip. Read them from Pulumi (--stack "
            f"{outputs.stack}) and run the command again"
        )

    started = time.perf_counter()
    if back:
        alias = traffic.alias()  # as it was left: not moved, not smoke-tested (a way back must be quick)
        result.version = alias.version
        progress(f"{name}: back to {to} ({function}:{service.alias_name} {alias.describe()}, as it was left)")
        _provisioned_concurrency(lambda_client, service, function, clock, poll_s, pc_timeout_s, progress)
    else:
        target = traffic.resolve(version)
        alias = traffic.alias()
        if (alias.version, alias.weights) != (target, {}):
            alias = traffic.point(target)
            progress(f"{name}: prepared {function}:{service.alias_name} on v{target}")
        result.version = target
        _provisioned_concurrency(lambda_client, service, function, clock, poll_s, pc_timeout_s, progress)
        result.smoke = smoke(outputs, service, function, invoker, progress)
    result.phases["prepare"] = time.perf_counter() - started

    if stack is None:
        result.outcome = "commands"
        result.commands = manual_commands(outputs.stack, name, to)
        progress(f"{name}: {to} is prepared (v{result.version}). The Pulumi CLI is not installed here; to move the "
                 "consumers, run:\n  " + "\n  ".join(result.commands))
        return result
    started = time.perf_counter()
    progress(f"{name}: setting {CONFIG_KEY.format(service=name)} = {to} and running pulumi up --refresh")
    stack.set_active(name, to)
    stack.up()
    result.phases["up"] = time.perf_counter() - started

    started = time.perf_counter()
    now = traffic.alias()
    if now.version != result.version or now.weights:
        raise ReleaseError(f"{name}: after the up, {function}:{service.alias_name} serves {now.describe()}, not "
                           f"v{result.version}; go back with `collections-release flip --back --service {name}`")
    try:
        smoke(outputs, service, function, invoker, progress)
    except SmokeFailed as error:
        raise SmokeFailed(f"{error}. Consumers are on {to} now; go back with "
                          f"`collections-release flip --back --service {name} --stack {outputs.stack}`") from None
    result.phases["verify"] = time.perf_counter() - started
    progress(f"{name}: {to} is now the active slot, v{result.version} (back: "
             f"collections-release flip --back --service {name} --stack {outputs.stack})")
    return result


def default_configurator(stack: str, progress: Callable[[str], None]) -> Callable[[], StackConfigurator] | None:
    """The Automation API where the Pulumi CLI exists, else None (commands are printed)."""
    if shutil.which("pulumi") is None:
        return None
    return lambda: AutomationStack(stack, project_dir(), progress)
