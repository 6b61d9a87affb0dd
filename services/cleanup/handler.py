"""Lambda entry point of cleanup: a schedule (EventBridge rule or EventBridge Scheduler).

Accepts both schedule payloads (see services.core.contracts.ScheduledInvocation); a detail of
{"dry_run": true} runs without changing anything. The logic is imported on the first event (at init when
Lambda captures it: services/core/coldstart.py).
"""

from __future__ import annotations

from typing import Any

from services.core import coldstart
from services.core.observability import for_function

observe = for_function("cleanup")
coldstart.preload("services.core.contracts", "services.cleanup.logic")  # at init only when Lambda captures it
logger = observe.logger


@observe.handler
def handler(event: Any, context: Any = None) -> dict[str, Any]:
    from services.core.contracts import ScheduledInvocation  # pydantic: loaded with the first event, as the logic

    invocation = ScheduledInvocation.from_event(event)
    from services.cleanup.logic import run

    coldstart.init_over()  # the first event's imports are done: the work runs with the collector on

    counts = run(dry_run=invocation.dry_run)
    logger.info("cleanup counts", extra={**counts, "trigger": invocation.source})
    return counts
