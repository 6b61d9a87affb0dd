"""The preview guard: stop a change that would replace or delete what consumers use.

Input: `pulumi preview --json` (a PreviewDigest: "steps", each with "op", "urn", and "oldState" /
"newState" carrying "type"). A step whose op replaces or deletes a resource of a consumed or exported
type (functions, aliases, API integrations and routes, EventBridge rules, targets and bus, the
bucket, the user pool, the database) fails the guard unless `--allow` names its URN or its name.
Lambda permissions have no in-place update: a flip replaces them by design, so they pass.

With the stack's outputs (`--outputs`/`--stack`), the guard also compares every update of a
gradual service's alias with what AWS runs now. In gradual stacks the alias's version and weights
are `ignore_changes`, and Pulumi's engine then sends them from its *state*: step_generator.go sets
every ignored input back to its old value (processIgnoreChanges) before the step is made, so the
step's newState.inputs are exactly what UpdateAlias will receive. Without a refresh that state is
the version the alias was created at, and any other change to the alias (a description, a tag)
would silently undo the last release. Such a step is blocked until the preview is refreshed.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pipelines.errors import Blocked, ReleaseError
from pipelines.traffic import AliasState

# Ops that make a resource (its ARN, its id) go away. `replace` is the logical step that
# `create-replacement` / `delete-replaced` spell out; `discard*` are deletes without a provider call.
DESTRUCTIVE_OPS = {
    "replace", "create-replacement", "delete-replaced", "delete", "discard", "discard-replaced",
    "read-replacement", "import-replacement",
}

# Resource types whose identity is consumed (by ARN or id) by another resource, a stack output or a
# client. Both the current (aws v7) and older token spellings are listed.
PROTECTED_TYPES = {
    "aws:lambda/function:Function": "function",
    "aws:lambda/alias:Alias": "alias",
    "aws:apigatewayv2/api:Api": "HTTP API",
    "aws:apigatewayv2/stage:Stage": "API stage",
    "aws:apigatewayv2/integration:Integration": "API integration",
    "aws:apigatewayv2/route:Route": "API route",
    "aws:apigatewayv2/authorizer:Authorizer": "API authorizer",
    "aws:cloudwatch/eventRule:EventRule": "EventBridge rule",
    "aws:cloudwatch/eventTarget:EventTarget": "EventBridge target",
    "aws:cloudwatch/eventBus:EventBus": "event bus",
    "aws:s3/bucket:Bucket": "bucket",
    "aws:s3/bucketV2:BucketV2": "bucket",
    "aws:cognito/userPool:UserPool": "user pool",
    "aws:cognito/userPoolClient:UserPoolClient": "user pool client",
    "aws:rds/instance:Instance": "database",
    "aws:rds/cluster:Cluster": "database",
    "aws:rds/clusterInstance:ClusterInstance": "database",
    "aws:sqs/queue:Queue": "queue",
    "aws:ecr/repository:Repository": "image repository",
    "aws:secretsmanager/secret:Secret": "secret",
}
EXPECTED_TYPES = {"aws:lambda/permission:Permission"}  # replaced on every flip, by design


@dataclass(frozen=True)
class Finding:
    op: str
    urn: str
    type: str
    what: str
    reasons: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]


@dataclass
class GuardReport:
    steps: int
    blocked: list[Finding]
    allowed: list[Finding]
    expected: list[Finding]

    @property
    def ok(self) -> bool:
        return not self.blocked

    def render(self) -> str:
        lines = [f"preview guard: {self.steps} step(s) checked"]
        for title, findings in (("BLOCKED", self.blocked), ("allowed by --allow", self.allowed),
                                ("expected (permission swaps)", self.expected)):
            if findings:
                lines.append(f"{title}:")
                for f in findings:
                    because = f" (because of: {', '.join(f.reasons)})" if f.reasons else ""
                    lines.append(f"  {f.op:<18} {f.what:<18} {f.name}{because}\n  {'':<18} {f.urn}")
        if any(f.what == "live alias" for f in self.blocked):
            lines.append(
                "A gradual stack's alias version and weights belong to collections-release; Pulumi would send "
                "the ones in its state. Refresh first (`pulumi preview --refresh`, `pulumi up --refresh`), so "
                "the state holds what AWS runs."
            )
        if any(f.what != "live alias" for f in self.blocked):
            lines.append(
                "These resources are used by other resources, stack outputs or clients: replacing or deleting "
                "them breaks them (and, with explicit names, means downtime). Change the program so they are "
                "updated in place (for a package-type move use a blue/green flip), or, if it is really "
                "intended, rerun with --allow URN_OR_NAME."
            )
        if not self.blocked:
            lines.append("OK: nothing that consumers use is replaced or deleted")
        return "\n".join(lines)


def _type(step: dict[str, Any]) -> str:
    for state in ("newState", "oldState"):
        value = (step.get(state) or {}).get("type")
        if value:
            return value
    # urn:pulumi:stack::project::parent$type::name -> the last type in the chain
    parts = step.get("urn", "").split("::")
    return parts[-2].rsplit("$", 1)[-1] if len(parts) >= 4 else ""


def _allowed(finding: Finding, allow: list[str]) -> bool:
    return any(finding.urn == a or finding.name == a or fnmatch.fnmatchcase(finding.urn, a) for a in allow)


ALIAS_TYPE = "aws:lambda/alias:Alias"
UPDATING_OPS = {"update", "replace", "create-replacement"}  # ops that send the alias's inputs to AWS


class LiveAliases(Protocol):
    """What AWS runs now, for the functions of the stack's gradual services."""

    def gradual(self, function_name: str) -> bool: ...

    def read(self, function_name: str, alias: str) -> AliasState | None:
        """The alias as AWS runs it; None where it cannot be known (the update is then blocked)."""
        ...


def _planned(inputs: dict[str, Any]) -> tuple[str, dict[str, float]]:
    weights = ((inputs.get("routingConfig") or {}).get("additionalVersionWeights")) or {}
    return str(inputs.get("functionVersion", "")), {str(v): float(w) for v, w in weights.items() if float(w) > 0}


def live_alias_moves(steps: list[dict[str, Any]], live: LiveAliases) -> list[Finding]:
    """Updates of a gradual alias that would send another version or weights than AWS runs."""
    moves: list[Finding] = []
    for step in steps:
        if step.get("op") not in UPDATING_OPS or _type(step) != ALIAS_TYPE:
            continue
        inputs = (step.get("newState") or {}).get("inputs") or {}
        function, alias = inputs.get("functionName"), inputs.get("name")
        if not function or not alias or not live.gradual(function):
            continue
        version, weights = _planned(inputs)
        now = live.read(function, alias)
        if now is None:
            moves.append(Finding(step["op"], step.get("urn", ""), ALIAS_TYPE, "live alias", (
                f"would update {function}:{alias}, but the stack has no outputs yet, so whether it is released "
                "gradually (and what it runs) is unknown; complete the stack's first `pulumi up --refresh`, "
                "then preview again",)))
            continue
        if (version, weights) != (now.version, now.weights):
            planned = AliasState(alias, version, weights).describe()
            moves.append(Finding(step["op"], step.get("urn", ""), ALIAS_TYPE, "live alias", (
                f"would move {function}:{alias} from {now.describe()} (live) to {planned} (Pulumi's state); "
                "run the preview and the up with --refresh",)))
    return moves


def check(preview: dict[str, Any], allow: list[str] | None = None, live: LiveAliases | None = None) -> GuardReport:
    allow = allow or []
    steps = preview.get("steps")
    if not isinstance(steps, list):
        raise ReleaseError("not a `pulumi preview --json` document: no \"steps\" list")
    report = GuardReport(len(steps), [], [], [])
    seen: set[tuple[str, str]] = set()
    for step in steps:
        op, urn = step.get("op", ""), step.get("urn", "")
        if op not in DESTRUCTIVE_OPS:
            continue
        kind = _type(step)
        if kind in EXPECTED_TYPES:
            bucket = report.expected
        elif kind in PROTECTED_TYPES:
            bucket = None
        else:
            continue
        # A replacement shows as replace + create-replacement + delete-replaced: report it once.
        key = (urn, "delete" if op == "delete" else "replace")
        if key in seen:
            continue
        seen.add(key)
        finding = Finding(op, urn, kind, PROTECTED_TYPES.get(kind, "permission"),
                          tuple(step.get("replaceReasons") or ()))
        if bucket is None:
            bucket = report.allowed if _allowed(finding, allow) else report.blocked
        bucket.append(finding)
    for finding in live_alias_moves(steps, live) if live is not None else []:
        (report.allowed if _allowed(finding, allow) else report.blocked).append(finding)
    return report


def check_file(path: str, allow: list[str] | None = None, live: LiveAliases | None = None) -> GuardReport:
    file = Path(path)
    if not file.is_file():
        raise ReleaseError(f"{path}: no such file")
    try:
        preview = json.loads(file.read_text())
    except json.JSONDecodeError as error:
        raise ReleaseError(f"{path} is not JSON ({error}); produce it with `pulumi preview --json > {path}`") from None
    return check(preview, allow, live)


def read_allow_file(path: str) -> list[str]:
    """URNs or names, one per line; `#` starts a comment. A missing file allows nothing."""
    file = Path(path)
    if not file.is_file():
        return []
    entries = (line.split("#", 1)[0].strip() for line in file.read_text().splitlines())
    return [e for e in entries if e]


def enforce(report: GuardReport) -> None:
    if not report.ok:
        raise Blocked(report.render())


class StackLiveAliases:
    """LiveAliases from the stack's outputs (which functions are gradual) and Lambda's GetAlias."""

    def __init__(self, outputs: Any, lambda_client: Any):
        from pipelines.traffic import Traffic

        self._traffic = lambda function, alias: Traffic(lambda_client, function, alias)
        self._gradual = {fn for s in outputs.services.values() if s.release_mode == "gradual"
                         for fn in s.function_names.values()}

    def gradual(self, function_name: str) -> bool:
        return function_name in self._gradual

    def read(self, function_name: str, alias: str) -> AliasState:
        return self._traffic(function_name, alias).alias()


class NoStackOutputs:
    """LiveAliases of a stack whose first `up` has not completed (`pulumi stack output --json` is `{}`).

    A brand-new stack's preview only creates aliases, and creates are not checked: it passes. An
    *update* of an alias while the outputs are still empty (a first `up` that failed half-way) cannot
    be judged, so it is blocked rather than passed.
    """

    def gradual(self, function_name: str) -> bool:
        return True

    def read(self, function_name: str, alias: str) -> AliasState | None:
        return None
