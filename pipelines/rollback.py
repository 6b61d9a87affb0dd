"""`rollback` and `promote`: one alias update each, no Pulumi run, no waiting.

rollback: a shift under way (weights on the alias) goes back to its stable version; a completed
release goes back to the version that was stable before it. Either way the record then says the
alias's version is stable and nothing is older, so a second rollback changes nothing (idempotent,
and never more than one release back). promote: a shift under way finishes now.
Neither takes the shift lock: they must work while a shift runs, and a running shift notices the
alias moved under it and stops.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.context import ServiceContext
from pipelines.errors import NotFound
from pipelines.records import StableRecord


@dataclass
class AliasMove:
    service: str
    outcome: str  # moved | noop
    before: str
    after: str
    version: str


def rollback(ctx: ServiceContext) -> AliasMove:
    traffic, fn, name = ctx.traffic, ctx.service.function_name, ctx.service.name
    alias = traffic.alias()
    record = ctx.records.read(fn)
    if alias.canary is not None:
        target = record.stable if record else alias.version
    elif record is not None and alias.version != record.stable:
        target = record.stable  # moved outside a shift (e.g. by hand): back to what was recorded
    elif record is not None and record.previous:
        target = record.previous
    elif record is not None:
        ctx.progress(f"{name}: already on the stable version {alias.version}; nothing to roll back")
        return AliasMove(name, "noop", alias.describe(), alias.describe(), alias.version)
    else:
        raise NotFound(
            f"{name}: no stable version recorded for {fn} and no shift under way; nothing to roll back to "
            "(records are written by `shift`)"
        )
    after = traffic.point(target)
    ctx.records.write(StableRecord(function=fn, stable=target, previous="", at=ctx.clock.now(), by="rollback"))
    ctx.progress(f"{name}: rolled back: {alias.describe()} -> {after.describe()}")
    return AliasMove(name, "moved", alias.describe(), after.describe(), target)


def promote(ctx: ServiceContext) -> AliasMove:
    traffic, fn, name = ctx.traffic, ctx.service.function_name, ctx.service.name
    alias = traffic.alias()
    if alias.canary is None:
        ctx.progress(f"{name}: no shift under way ({alias.describe()}); nothing to promote")
        return AliasMove(name, "noop", alias.describe(), alias.describe(), alias.version)
    target, _ = alias.canary
    after = traffic.point(target)
    ctx.records.write(StableRecord(function=fn, stable=target, previous=alias.version, at=ctx.clock.now(),
                                   by="promote"))
    ctx.progress(f"{name}: promoted: {alias.describe()} -> {after.describe()}")
    return AliasMove(name, "moved", alias.describe(), after.describe(), target)
