"""The preview guard: stop a change that would replace or delete what consumers use.

Input: `pulumi preview --json` (a PreviewDigest: "steps", each with "op", "urn", and "oldState" /
"newState" carrying "type"). A step whose op replaces or deletes a resource of a consumed or exported
type (functions, aliases, API integrations and routes, EventBridge rules, targets and bus, the
bucket, the user pool, the database) fails the guard unless `--allow` names its URN or its name.
Lambda permissions have no in-place update: a flip replaces them by design, so they pass.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.errors import Blocked, ReleaseError

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
        if self.blocked:
            lines.append(
                "These resources are used by other resources, stack outputs or clients: replacing or deleting "
                "them breaks them (and, with explicit names, means downtime). Change the program so they are "
                "updated in place (for a package-type move use a blue/green flip), or, if it is really "
                "intended, rerun with --allow URN_OR_NAME."
            )
        else:
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


def check(preview: dict[str, Any], allow: list[str] | None = None) -> GuardReport:
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
    return report


def check_file(path: str, allow: list[str] | None = None) -> GuardReport:
    file = Path(path)
    if not file.is_file():
        raise ReleaseError(f"{path}: no such file")
    try:
        preview = json.loads(file.read_text())
    except json.JSONDecodeError as error:
        raise ReleaseError(f"{path} is not JSON ({error}); produce it with `pulumi preview --json > {path}`") from None
    return check(preview, allow)


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
