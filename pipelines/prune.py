"""`prune`: delete old versions of a function that nothing can route to any more.

Kept: the newest N, every version an alias routes to (primary or weighted, any alias), the
recorded stable and previous versions, and every version with provisioned concurrency. Deleting
those would break a rollback or make AWS refuse anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines import concurrency
from pipelines.context import ServiceContext
from pipelines.errors import ReleaseError


@dataclass
class PruneResult:
    service: str
    function: str
    kept: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)  # kept version -> why


def referenced(ctx: ServiceContext, function: str) -> dict[str, str]:
    """version -> why it must stay."""
    reasons: dict[str, str] = {}
    for alias in ctx.traffic_for(function).aliases():
        reasons.setdefault(alias.version, f"alias {alias.name}")
        for version in alias.weights:
            reasons.setdefault(version, f"alias {alias.name} weight")
    record = ctx.records.read(function)
    if record is not None:
        reasons.setdefault(record.stable, "recorded stable")
        if record.previous:
            reasons.setdefault(record.previous, "recorded previous (rollback target)")
    held = ctx.lock().current()
    if held is not None and held.target:
        reasons.setdefault(held.target, f"target of the shift locked by {held.owner}")
    if ctx.service.provisioned_concurrency > 0:
        for qualifier in concurrency.referenced_versions(ctx.lambda_client, function):
            if qualifier.isdigit():
                reasons.setdefault(qualifier, "provisioned concurrency")
    return reasons


def prune(ctx: ServiceContext, keep: int, slot: str | None = None, dry_run: bool = False) -> PruneResult:
    if keep < 1:
        raise ReleaseError("--keep must be at least 1")
    function = ctx.service.slot_function(slot) if slot else ctx.service.function_name
    traffic = ctx.traffic_for(function)
    versions = traffic.versions()
    reasons = referenced(ctx, function)
    for version in versions[-keep:]:
        reasons.setdefault(version, f"newest {keep}")
    result = PruneResult(ctx.service.name, function)
    for version in versions:
        if version in reasons:
            result.kept.append(version)
            result.reasons[version] = reasons[version]
            continue
        if not dry_run:
            traffic.delete_version(version)
        result.deleted.append(version)
    verb = "would delete" if dry_run else "deleted"
    ctx.progress(f"{ctx.service.name}: {function}: {verb} {', '.join(result.deleted) or 'nothing'}; kept "
                 + ", ".join(f"{v} ({result.reasons[v]})" for v in result.kept))
    return result
