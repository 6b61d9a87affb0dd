"""`status`: what each service's alias serves now, and what could change it."""

from __future__ import annotations

from typing import Any

from pipelines import concurrency
from pipelines.context import ServiceContext
from pipelines.errors import ReleaseError


def service_status(ctx: ServiceContext) -> dict[str, Any]:
    svc = ctx.service
    alias = ctx.traffic.alias()
    versions = ctx.traffic.versions()
    record = ctx.records.read(svc.function_name)
    held = ctx.lock().current()
    if svc.provisioned_concurrency > 0:
        try:
            config = concurrency.status(ctx.lambda_client, svc.function_name, svc.alias_name)
            pc = {"requested": svc.provisioned_concurrency,
                  "status": config.get("Status", "?") if config else "not configured",
                  "available": config.get("AvailableProvisionedConcurrentExecutions") if config else None}
        except ReleaseError as error:
            pc = {"requested": svc.provisioned_concurrency, "status": f"unknown ({error})"}
    else:
        pc = {"requested": 0, "status": "none"}
    return {
        "service": svc.name,
        "active_slot": svc.active_slot,
        "function": svc.function_name,
        "release_mode": svc.release_mode,
        "alias": svc.alias_name,
        "alias_version": alias.version,
        "weights": alias.weights,
        "routing": alias.describe(),
        "newest_version": versions[-1] if versions else None,
        "stable": record.stable if record else None,
        "previous": record.previous if record else None,
        "lock": ({"owner": held.owner, "expires": held.expires(), "purpose": held.purpose} if held else None),
        "provisioned_concurrency": pc,
        "alarms": [{"name": a.name, "state": a.state} for a in ctx.alarms.states()],
    }


def table(rows: list[dict[str, Any]]) -> str:
    columns = ("service", "slot", "mode", "routing", "newest", "stable", "pc", "alarms", "lock")
    cells = [
        (
            r["service"], r["active_slot"], r["release_mode"], r["routing"], str(r["newest_version"]),
            str(r["stable"] or "-"), str(r["provisioned_concurrency"]["status"]),
            ", ".join(f"{a['name']}={a['state']}" for a in r["alarms"]) or "-",
            (r["lock"]["owner"] if r["lock"] else "-"),
        )
        if "error" not in r
        else (r["service"], "-", "-", f"ERROR: {r['error']}", "-", "-", "-", "-", "-")
        for r in rows
    ]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)
